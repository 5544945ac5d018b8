"""The application seam: what an application brings, and which applications are installed.

An application is a package (``apps/<name>/`` for the ones shipped) whose ``__init__`` defines
``APP = Application(...)``. Everything it contributes is a field of that record, each optional:
its HTTP router, its command-line group, its catalog layers, its device kinds, its background
workers, its migrations, its reference-data synthesizer, its console panel and its
benchmarks. The shared packages (``gis_core``, ``realtime``, ``layers``, ``web``, ``sensors``)
read the installed list from here and never name an application: like Django's
``INSTALLED_APPS``, the list is configuration (``CHANGZHI_APPS``), resolved by import path.

>>> from gis_core.application import DeviceKind, TelemetryField
>>> rain = DeviceKind("rain", "雨量站", "Rain gauges", (TelemetryField("mm", "num", 0, 500),))
>>> rain.spec["mm"]
('num', 0, 500)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from gis_core.layer import Layer
from gis_core.models import KIND_PATTERN

# The package whose sub-packages are the shipped applications; a name in CHANGZHI_APPS without
# a dot is looked up here, a dotted one is imported as it is (an application kept elsewhere).
APPS_PACKAGE = "apps"
ALL = "all"
# Words of the platform's own MQTT topic families (realtime.topics), never device kinds.
RESERVED_KINDS = frozenset({"alarms", "events", "platform", "gateway", "owntracks"})

FieldType = Literal["num", "int", "str", "bool|str"]
# The console's marker shapes (web/console/live-gl.js draws them in this order).
Shape = Literal["arrow", "circle", "diamond", "square", "dot", "triangle"]
SHAPES: tuple[str, ...] = ("arrow", "circle", "diamond", "square", "dot", "triangle")


class SeamError(RuntimeError):
    """An installation the platform refuses to start with; the message names the culprit."""


# "package.module:attribute", the form of every deferred target.
TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def target(spec: str) -> Any:
    """The object ``"package.module:attribute"`` names, imported now; a SeamError naming
    ``spec`` (one line) when the module does not import or lacks the attribute.

    >>> target("gis_core.application:SeamError") is SeamError
    True
    """
    if not TARGET.match(spec):
        raise SeamError(f"{spec!r} is not a target: write it as 'package.module:attribute'")
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure to import is the application's, named here
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SeamError(f"{spec}: {module_name} does not import ({reason})") from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise SeamError(f"{spec}: {module_name} has no {name!r}") from None


def deferred(spec: str) -> Callable[..., Any]:
    """A stand-in for ``"package.module:attribute"`` that imports it on first call, so a
    descriptor names its router, command group, layers, workers and benches without importing
    them (and what they import) when the platform only lists the applications.

    Called, the stand-in calls the target with the arguments when it is a function, and
    returns the target itself otherwise (an ``APIRouter``, a class). A target that does not
    import raises a one-line SeamError naming it. The format is checked at once.

    >>> router = deferred("gis_core.application:SeamError")
    >>> router() is SeamError
    True
    >>> deferred("gis_core.plane:router")()
    Traceback (most recent call last):
    ...
    gis_core.application.SeamError: gis_core.plane:router: gis_core.plane has no 'router'
    """
    if not TARGET.match(spec):
        raise SeamError(f"{spec!r} is not a target: write it as 'package.module:attribute'")
    found: list[Any] = []

    def load(*args: Any, **kwargs: Any) -> Any:
        if not found:
            found.append(target(spec))
        obj = found[0]
        if inspect.isroutine(obj):
            return obj(*args, **kwargs)
        if args or kwargs:
            raise SeamError(f"{spec} is not a function; it takes no arguments")
        return obj

    load.__name__ = load.__qualname__ = f"deferred({spec})"
    load.__doc__ = f"Imports and uses {spec} (see gis_core.application.deferred)."
    return load


@dataclass(frozen=True)
class TelemetryField:
    """One field of a kind's readings: its type and valid range (inclusive), unit and labels."""

    name: str
    type: FieldType
    min: float | None = None  # for "str": the longest length allowed is ``max``
    max: float | None = None
    unit: str = ""
    label_zh: str = ""
    label_en: str = ""


@dataclass(frozen=True)
class Threshold:
    """A threshold rule on one field, evaluated by the ingest workers and drawn by the console.

    ``test``: ``above`` (value > limit), ``below`` (value < limit), ``outside`` (not within
    ``[low, high]``) or ``truthy`` (any non-empty value, e.g. a fault string). The limit is
    ``limit``, or the device's site threshold ``site_key``, or its permit limit ``permit_key``
    (the rule is skipped when the device has none). With ``hysteresis`` a value must move 5 %
    back past the limit before the alarm clears. Messages are ``str.format`` templates with
    ``name``, ``value`` and ``limit``.
    """

    rule: str
    field: str
    test: Literal["above", "below", "outside", "truthy"]
    message_zh: str
    message_en: str
    limit: float | None = None
    low: float | None = None
    high: float | None = None
    site_key: str | None = None
    permit_key: str | None = None
    severity: int = 2
    hysteresis: bool = True


@dataclass(frozen=True)
class DeviceKind:
    """A kind of field device, defined once: validation, rules, simulator, overview and the
    console's legend all read this."""

    name: str
    label_zh: str
    label_en: str
    fields: tuple[TelemetryField, ...]
    interval_s: int = 60  # expected interval between readings
    thresholds: tuple[Threshold, ...] = ()
    shape: Shape = "circle"
    color: str = "#36cfc9"
    mobile: bool = False  # a moving unit: every reading carries its position
    primary_field: str | None = None  # the figure shown for a station (overview, replay)
    department: str | None = None  # who owns these devices by default
    id_prefix: str = ""  # device ids of the reference data: PREFIX-<district>-NNN
    vendors: tuple[str, ...] = ()
    # The simulator's model of one fixed device of this kind, as "module:Class" (imported only
    # by the simulator): a subclass of sensors.stations.StationModel.
    simulator: str | None = None

    @cached_property
    def spec(self) -> dict[str, tuple[str, float | None, float | None]]:
        return {f.name: (f.type, f.min, f.max) for f in self.fields}

    def describe(self) -> dict[str, Any]:
        """What the console and ``GET /apps`` are told of this kind."""
        return {
            "name": self.name,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "interval_s": self.interval_s,
            "shape": self.shape,
            "shape_index": SHAPES.index(self.shape),
            "color": self.color,
            "mobile": self.mobile,
            "primary_field": self.primary_field,
            "fields": [
                {
                    "name": f.name,
                    "type": f.type,
                    "min": f.min,
                    "max": f.max,
                    "unit": f.unit,
                    "label_zh": f.label_zh,
                    "label_en": f.label_en,
                }
                for f in self.fields
            ],
            "thresholds": [
                {
                    "rule": t.rule,
                    "field": t.field,
                    "test": t.test,
                    "limit": t.limit,
                    "low": t.low,
                    "high": t.high,
                    "site_key": t.site_key,
                    "permit_key": t.permit_key,
                    "severity": t.severity,
                }
                for t in self.thresholds
            ],
        }


@dataclass(frozen=True)
class SynthContext:
    """What an application's reference-data synthesizer is given: the city's data folder
    (``city.json``, boundaries, rivers), the run's seed and scale, and the refined DEM."""

    city_dir: Path
    city: str
    seed: int
    scale: float
    dem_path: Path | None = None


@dataclass(frozen=True)
class Panel:
    """A console panel: an ES module under the application's ``console/`` folder exporting
    ``mount(ctx)``, with its strings (``{"zh": {...}, "en": {...}}``) and who sees it."""

    id: str
    module: str  # file name inside the application's console folder, e.g. "dispatch.js"
    title_zh: str
    title_en: str
    roles: tuple[str, ...] = ()  # empty: every logged-in user
    strings: str | None = None  # JSON file of strings inside the console folder


@dataclass(frozen=True)
class Worker:
    """A background process ``changzhi up`` starts: ``spawn()`` starts it and returns the
    function that stops it."""

    name: str
    spawn: Callable[[], Callable[[], None]]


@dataclass(frozen=True)
class Application:
    """What one application brings to the platform. Every field but the names is optional."""

    name: str
    title_zh: str
    title_en: str
    description: str = ""
    # A function returning the application's fastapi.APIRouter, mounted under /<name>.
    router: Callable[[], Any] | None = None
    # A function registering the application's command group on the root typer.Typer.
    cli: Callable[[Any], None] | None = None
    layers: Callable[[], Iterable[Layer]] | None = None
    kinds: tuple[DeviceKind, ...] = ()
    # Live events pushed to consoles: the event types this application publishes on the
    # generic event topic (``realtime.topics.event_topic(name)``).
    events: tuple[str, ...] = ()
    workers: tuple[Worker, ...] = ()
    # The folder of its Alembic revisions (a branch labelled with the application's name).
    migrations: Path | None = None
    # Its SQLAlchemy models module (imported so the schema has one source of truth).
    models: str | None = None
    # Reference data: ``synthesize(conn, context)`` runs in the load's transaction after the
    # core dataset is in, and returns the rows it wrote per table (reproducible by the seed;
    # it replaces its own rows, which the core's TRUNCATE does not reach).
    synthesize: Callable[[Any, SynthContext], Mapping[str, int]] | None = None
    console: Path | None = None  # the folder holding its panels' modules and strings
    panels: tuple[Panel, ...] = ()
    roles: tuple[str, ...] = ()  # who may use it (empty: every logged-in user)
    benches: Mapping[str, Callable[..., dict[str, Any]]] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title_zh": self.title_zh,
            "title_en": self.title_en,
            "description": self.description,
            "prefix": f"/{self.name}" if self.router else None,
            "layers": [layer.id for layer in (self.layers() if self.layers else ())],
            "kinds": [kind.name for kind in self.kinds],
            "events": list(self.events),
            "panels": [
                {
                    "id": p.id,
                    # Relative to the console's static root (served by the platform).
                    "module": f"apps/{self.name}/{p.module}",
                    "strings": f"apps/{self.name}/{p.strings}" if p.strings else None,
                    "title_zh": p.title_zh,
                    "title_en": p.title_en,
                    "roles": list(p.roles),
                }
                for p in self.panels
            ],
            "roles": list(self.roles),
            "benches": sorted(self.benches),
        }


class Installed:
    """The installed applications, checked for clashes, and what they bring together."""

    def __init__(self, applications: Sequence[Application]) -> None:
        self.applications = tuple(applications)
        names = [a.name for a in self.applications]
        self._check_unique("application", [(n, n) for n in names])
        for app in self.applications:
            missing = [d for d in app.depends_on if d not in names]
            if missing:
                raise SeamError(
                    f"application {app.name!r} needs {', '.join(missing)}, which "
                    "CHANGZHI_APPS does not install"
                )
            for what, folder in (("migrations", app.migrations), ("console", app.console)):
                if folder is not None and not folder.is_dir():
                    raise SeamError(
                        f"application {app.name!r}: its {what} folder {folder} is missing"
                    )
        self._check_unique("device kind", [(k.name, a.name) for a in self for k in a.kinds])
        for app in self.applications:
            for kind in app.kinds:
                if not re.fullmatch(KIND_PATTERN, kind.name) or kind.name in RESERVED_KINDS:
                    raise SeamError(
                        f"application {app.name!r}: {kind.name!r} cannot be a device kind "
                        f"(lower-case words, not one of {', '.join(sorted(RESERVED_KINDS))})"
                    )
        self._check_unique(
            "route prefix", [(f"/{a.name}", a.name) for a in self if a.router is not None]
        )
        self._check_unique("benchmark", [(b, a.name) for a in self for b in a.benches])
        self.kinds: dict[str, DeviceKind] = {k.name: k for a in self for k in a.kinds}
        owned = [(layer, a.name) for a in self if a.layers for layer in a.layers()]
        self._check_unique("layer id", [(layer.id, owner) for layer, owner in owned])
        self.layers: list[Layer] = [layer for layer, _ in owned]

    @staticmethod
    def _check_unique(what: str, items: Iterable[tuple[str, str]]) -> None:
        seen: dict[str, str] = {}
        for key, owner in items:
            if key in seen:
                raise SeamError(f"{what} {key!r} is claimed by both {seen[key]!r} and {owner!r}")
            seen[key] = owner

    def __iter__(self) -> Any:
        return iter(self.applications)

    def __contains__(self, name: object) -> bool:
        return any(a.name == name for a in self.applications)

    def get(self, name: str) -> Application:
        for app in self.applications:
            if app.name == name:
                return app
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.applications]

    def kind_owner(self, kind: str) -> str | None:
        for app in self.applications:
            if any(k.name == kind for k in app.kinds):
                return app.name
        return None


def shipped() -> list[str]:
    """The shipped applications: sub-packages of ``apps`` that define ``APP``."""
    package = importlib.import_module(APPS_PACKAGE)
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.ispkg and _defines_app(f"{APPS_PACKAGE}.{info.name}"):
            found.append(info.name)
    return found


def _defines_app(module_name: str) -> bool:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return isinstance(getattr(module, "APP", None), Application)


def resolve(spec: str) -> list[str]:
    """``CHANGZHI_APPS`` to module names: ``all``, names, dotted paths, comma-separated;
    ``all,-flood`` leaves one out."""
    wanted: list[str] = []
    left_out: set[str] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == ALL:
            wanted.extend(n for n in shipped() if n not in wanted)
        elif item.startswith("-"):
            left_out.add(item[1:].strip())
        elif item not in wanted:
            wanted.append(item)
    return [n for n in wanted if n not in left_out]


def load(spec: str) -> Installed:
    applications = []
    for name in resolve(spec):
        module_name = name if "." in name else f"{APPS_PACKAGE}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise SeamError(
                    f"CHANGZHI_APPS names {name!r}, but there is no application "
                    f"{module_name!r} (shipped: {', '.join(shipped())})"
                ) from None
            raise
        app = getattr(module, "APP", None)
        if not isinstance(app, Application):
            raise SeamError(f"{module_name!r} is not an application (it defines no APP)")
        applications.append(app)
    return Installed(applications)


_lock = threading.Lock()
_installed: dict[str, Installed] = {}


def installed(spec: str | None = None) -> Installed:
    """The installed applications for ``spec`` (default: ``CHANGZHI_APPS`` as it is now, read
    without caching the other settings), loaded once per process and spec."""
    if spec is None:
        from gis_core.settings import PlatformSettings

        spec = PlatformSettings().apps
    with _lock:
        found = _installed.get(spec)
        if found is None:
            found = _installed[spec] = load(spec)
        return found


def device_kinds(spec: str | None = None) -> Mapping[str, DeviceKind]:
    return installed(spec).kinds
