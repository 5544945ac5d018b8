"""Map layers served by the platform."""
