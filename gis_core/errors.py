"""The platform's domain exceptions. The HTTP layer maps them to status codes in one place."""


class PlatformError(Exception):
    """Base of every error a user can cause; its message is shown to them as is."""

    status = 400


class InvalidInput(PlatformError):
    """A request that is well-formed but asks for something impossible."""

    status = 422


class NotFound(PlatformError):
    status = 404


class Conflict(PlatformError):
    """The request collides with the current state (a unit already assigned, a duplicate)."""

    status = 409


class Forbidden(PlatformError):
    status = 403


class InvalidParameter(PlatformError):
    """A query parameter that cannot be understood (OGC APIs answer these with 400)."""

    status = 400
