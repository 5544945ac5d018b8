"""Configuration, one pydantic-settings class per concern, all read from ``CHANGZHI_*``.

When ``CHANGZHI_DATABASE_URL`` or ``CHANGZHI_MQTT_URL`` is unset the platform uses its embedded
defaults: a private PostGIS cluster and a private Mosquitto under ``var/`` on their own ports,
with credentials generated on first start and kept in ``var/secrets.json``.
"""

from __future__ import annotations

import json
import os
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]

# Secrets nobody may run a non-development platform with.
_WEAK_SECRETS = {"", "secret", "changeme", "change-me", "changzhi", "development", "test"}


class Mode(StrEnum):
    development = "development"
    production = "production"


class PlatformSettings(BaseSettings):
    """Where the platform keeps its state, and which mode it runs in."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_", extra="ignore")

    mode: Mode = Mode.development
    var_dir: Path = REPO_ROOT / "var"
    data_dir: Path = REPO_ROOT / "data" / "changzhi"
    city: str = "changzhi"
    # The installed applications: "all", names of apps/ packages or dotted module paths,
    # comma-separated; "all,-traffic" leaves one out (gis_core.application).
    apps: str = "all"
    # The unprivileged account that runs the embedded PostgreSQL and Mosquitto when we are root.
    service_user: str = "changzhi"


class EmbeddedSettings(BaseSettings):
    """Ports of the private PostGIS cluster and Mosquitto broker."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_EMBEDDED_", extra="ignore")

    pg_port: int = Field(55432, ge=1024, le=65535)
    mqtt_port: int = Field(18830, ge=1024, le=65535)
    host: str = "127.0.0.1"
    # 双机热备 on one machine: a streaming replica of the embedded cluster on its own port,
    # synchronous, so a commit is on both before anyone is told it is done.
    standby: bool = False
    standby_port: int = Field(55433, ge=1024, le=65535)

    @model_validator(mode="after")
    def _distinct_ports(self) -> EmbeddedSettings:
        if self.standby and self.standby_port == self.pg_port:
            raise ValueError(
                "CHANGZHI_EMBEDDED_STANDBY_PORT must differ from CHANGZHI_EMBEDDED_PG_PORT"
            )
        return self


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHANGZHI_DATABASE_", extra="ignore")

    url: str | None = None
    pool_min: int = Field(2, ge=1)
    pool_max: int = Field(12, ge=1)
    statement_timeout_ms: int = Field(30_000, ge=100)
    # Telemetry history is kept this many days: older readings are refused (bad_ts) and the
    # daily partitions past it are dropped by the ingest workers' maintenance.
    telemetry_retention_days: int = Field(400, ge=2)
    dead_letter_retention_days: int = Field(30, ge=1)

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError("CHANGZHI_DATABASE_POOL_MIN cannot exceed CHANGZHI_DATABASE_POOL_MAX")
        return self


class BackupSettings(BaseSettings):
    """Base backups (``pg_basebackup``) and the WAL archive, for point-in-time restore."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_BACKUP_", extra="ignore")

    # None: ``<var>/backups``. Put it on another disk than the database's.
    dir: Path | None = None
    # When `changzhi db backup` runs from the generated systemd timer (systemd OnCalendar).
    schedule: str = "daily"
    # Base backups kept; WAL older than the oldest kept one is removed with it.
    keep: int = Field(7, ge=1, le=1000)
    # The embedded cluster archives its WAL into <dir>/wal (archive_mode), which point-in-time
    # restore needs; off by default because the archive grows until backups prune it.
    archive: bool = False


class MqttSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHANGZHI_MQTT_", extra="ignore")

    url: str | None = None
    # Ingest workers share one MQTT v5 shared-subscription group so N workers split the load.
    share_group: str = "ingest"
    session_expiry_s: int = Field(3600, ge=0)


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHANGZHI_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    default_limit: int = Field(100, ge=1)
    max_limit: int = Field(10_000, ge=1)
    max_features_per_tile: int = Field(20_000, ge=1)

    @model_validator(mode="after")
    def _limits(self) -> ApiSettings:
        if self.default_limit > self.max_limit:
            raise ValueError("CHANGZHI_API_DEFAULT_LIMIT cannot exceed CHANGZHI_API_MAX_LIMIT")
        return self


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHANGZHI_AUTH_", extra="ignore")

    secret_key: str | None = None
    # Devices' MQTT passwords are derived from this (see realtime.provision).
    device_secret: str | None = None
    algorithm: str = "HS256"
    token_minutes: int = Field(12 * 60, ge=1)  # one dispatcher shift

    @model_validator(mode="after")
    def _lock_bounds(self) -> AuthSettings:
        if self.throttle_first_lock_s > self.throttle_lockout_s:
            raise ValueError(
                "CHANGZHI_AUTH_THROTTLE_FIRST_LOCK_S cannot exceed CHANGZHI_AUTH_THROTTLE_LOCKOUT_S"
            )
        return self

    # Login throttling, per address and per account: this many failures within the window
    # are free; each one after locks the key for first_lock_s, then twice as long each time,
    # up to lockout_s.
    throttle_free_failures: int = Field(5, ge=1)
    throttle_first_lock_s: float = Field(1.0, gt=0.0)
    throttle_window_s: int = Field(900, ge=1)
    throttle_lockout_s: int = Field(900, ge=1)


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class LogSettings(BaseSettings):
    """How the platform's processes log: plain text for a terminal, JSON lines for a collector."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_LOG_", extra="ignore")

    format: LogFormat = LogFormat.text
    # None: the command line's level for text (INFO, DEBUG with --verbose), INFO for JSON.
    level: str | None = None
    # One line per HTTP request (method, route, status, time, request id, user); default:
    # on with JSON, off with text (the terminal of `changzhi up` stays readable).
    requests: bool | None = None

    @property
    def log_requests(self) -> bool:
        return self.format is LogFormat.json if self.requests is None else self.requests

    @model_validator(mode="after")
    def _known_level(self) -> LogSettings:
        if self.level is None:
            return self
        self.level = self.level.upper()
        if self.level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"CHANGZHI_LOG_LEVEL {self.level!r} is not one of DEBUG, INFO, WARNING, "
                "ERROR, CRITICAL"
            )
        return self


class OpsSettings(BaseSettings):
    """Liveness of the long-running workers, as ``/health`` and ``/metrics`` judge it."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_OPS_", extra="ignore")

    heartbeat_s: float = Field(5.0, gt=0.0, le=300.0)
    # A worker whose last heartbeat is older than this is stalled (or dead without a word).
    stale_after_s: float = Field(30.0, gt=0.0)
    # A stalled worker's row is forgotten after this long (a host retired for good).
    forget_after_s: float = Field(3600.0, gt=0.0)

    @model_validator(mode="after")
    def _stale_after_beats(self) -> OpsSettings:
        if self.stale_after_s <= self.heartbeat_s:
            raise ValueError(
                "CHANGZHI_OPS_STALE_AFTER_S must exceed CHANGZHI_OPS_HEARTBEAT_S, or every "
                "worker looks stalled between two beats"
            )
        if self.forget_after_s < self.stale_after_s:
            raise ValueError(
                "CHANGZHI_OPS_FORGET_AFTER_S cannot be below CHANGZHI_OPS_STALE_AFTER_S"
            )
        return self


class DataSettings(BaseSettings):
    """The reference dataset: resolution of the refined DEM and the synthesis seed."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_DATA_", extra="ignore")

    dem_resolution_m: float = Field(90.0, ge=10.0, le=2000.0)
    seed: int = 20201101  # 2020 census reference day
    scale: float = Field(1.0, gt=0.0, le=1.0)  # fraction of synthetic objects (tests use less)


class RunSettings(BaseSettings):
    """What `changzhi up` runs beside the API."""

    model_config = SettingsConfigDict(env_prefix="CHANGZHI_UP_", extra="ignore")

    ingest_workers: int = Field(2, ge=0, le=64)
    simulate: bool = True
    simulate_vehicles: int = Field(300, ge=0)


class SecretStore:
    """Generated credentials of the embedded services, in ``var/secrets.json`` (mode 0600)."""

    def __init__(self, var_dir: Path) -> None:
        self.path = var_dir / "secrets.json"

    def load(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data

    def get_or_create(self, name: str, nbytes: int = 24) -> str:
        data = self.load()
        if name not in data:
            data[name] = secrets.token_urlsafe(nbytes)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2)
            os.replace(tmp, self.path)
        return data[name]


class Settings:
    """All concerns together, with the embedded defaults resolved."""

    def __init__(self, **overrides: Any) -> None:
        self.platform = overrides.get("platform") or PlatformSettings()
        self.embedded = overrides.get("embedded") or EmbeddedSettings()
        self.database = overrides.get("database") or DatabaseSettings()
        self.mqtt = overrides.get("mqtt") or MqttSettings()
        self.api = overrides.get("api") or ApiSettings()
        self.auth = overrides.get("auth") or AuthSettings()
        self.data = overrides.get("data") or DataSettings()
        self.run = overrides.get("run") or RunSettings()
        self.log = overrides.get("log") or LogSettings()
        self.ops = overrides.get("ops") or OpsSettings()
        self.backup = overrides.get("backup") or BackupSettings()
        self.secrets = SecretStore(self.platform.var_dir)

    @property
    def embedded_database(self) -> bool:
        return self.database.url is None

    @property
    def embedded_broker(self) -> bool:
        return self.mqtt.url is None

    @property
    def database_url(self) -> str:
        """libpq URL (``postgresql://...``) of the platform database.

        With several hosts (a primary and its standbys) it asks for the one that takes
        writes, so a fresh connection after a failover finds the promoted standby.
        """
        if self.database.url:
            return read_write(normalize_pg_url(self.database.url))
        password = self.secrets.get_or_create("pg_password")
        hosts = f"{self.embedded.host}:{self.embedded.pg_port}"
        if self.embedded.standby:
            hosts += f",{self.embedded.host}:{self.embedded.standby_port}"
        return read_write(f"postgresql://changzhi:{password}@{hosts}/changzhi")

    @property
    def sqlalchemy_url(self) -> str:
        return sqlalchemy_url(self.database_url)

    @property
    def backup_dir(self) -> Path:
        return self.backup.dir or self.platform.var_dir / "backups"

    @property
    def mqtt_url(self) -> str:
        if self.mqtt.url:
            return self.mqtt.url
        password = self.secrets.get_or_create("mqtt_platform_password")
        return f"mqtt://platform:{password}@{self.embedded.host}:{self.embedded.mqtt_port}"

    @property
    def jwt_secret(self) -> str:
        """The token-signing key; only development may fall back to a generated local one."""
        key = self.auth.secret_key
        if key is not None and key.strip().lower() not in _WEAK_SECRETS and len(key) >= 32:
            return key
        if self.platform.mode is Mode.production:
            raise ConfigError(
                "CHANGZHI_AUTH_SECRET_KEY must be set to a random string of 32+ characters "
                "in production, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if key is not None:
            raise ConfigError("CHANGZHI_AUTH_SECRET_KEY is too weak: use 32+ random characters")
        return self.secrets.get_or_create("jwt_secret", 48)

    @property
    def device_secret(self) -> str:
        return self.auth.device_secret or self.secrets.get_or_create("device_secret", 32)


class ConfigError(RuntimeError):
    """A configuration the platform refuses to run with; the message says what to change."""


def normalize_pg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def pg_hosts(url: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of a libpq URL, in the order libpq tries them."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: the text libpq could not parse
        raise ConfigError(f"not a PostgreSQL connection URL: {exc}") from None
    hosts = str(params.get("host") or "localhost").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts):
        raise ConfigError(f"the database URL names {len(hosts)} hosts but {len(ports)} ports")
    return [(h, int(p or 5432)) for h, p in zip(hosts, ports, strict=True)]


def read_write(url: str) -> str:
    """``url`` with ``target_session_attrs=read-write`` when it names several hosts and does
    not say otherwise: libpq then skips standbys and a host that is down."""
    if len(pg_hosts(url)) < 2 or "target_session_attrs=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "target_session_attrs=read-write"


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy (psycopg dialect) form of a libpq URL; several hosts become repeated
    ``host=`` parameters, the only multi-host form SQLAlchemy parses."""
    from urllib.parse import quote, urlencode

    from psycopg.conninfo import conninfo_to_dict

    url = normalize_pg_url(url)
    hosts = pg_hosts(url)
    if len(hosts) < 2:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    creds = quote(params.pop("user", ""), safe="")
    if "password" in params:
        creds += ":" + quote(params.pop("password"), safe="")
    dbname = quote(params.pop("dbname", ""), safe="")
    params.pop("host", None)
    params.pop("port", None)
    query = [("host", f"{h}:{p}") for h, p in hosts] + sorted(params.items())
    return f"postgresql+psycopg://{creds}@/{dbname}?{urlencode(query)}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
