"""The embedded defaults: a private PostGIS cluster and a private Mosquitto under ``var/``.

Both run on their own ports and never touch the distribution's services. PostgreSQL refuses to
run as root, so when we are root both servers run as an unprivileged system account
(``CHANGZHI_SERVICE_USER``, created on demand) and their directories belong to it.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gis_core.settings import Settings

if TYPE_CHECKING:
    import psycopg

PG_BINDIRS = (Path("/usr/lib/postgresql/15/bin"),)
# The standby's name as the primary knows it (application_name, replication slot,
# synchronous_standby_names).
STANDBY_NAME = "changzhi_standby"


class ServiceError(RuntimeError):
    """A service could not be started, stopped or reached; the message says why and what to do."""


@dataclass(frozen=True)
class Account:
    """The OS account the servers run as (``None`` uid means: the current user)."""

    name: str
    uid: int | None = None
    gid: int | None = None

    def popen_kwargs(self) -> dict[str, object]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.gid if self.gid is not None else -1)

    def can_traverse(self, path: Path) -> bool:
        """Whether every directory from / down to ``path`` is searchable by this account."""
        if self.uid is None:
            return True
        groups = {self.gid} | {g.gr_gid for g in grp.getgrall() if self.name in g.gr_mem}
        for part in [path, *path.parents]:
            if not part.exists():
                continue
            st = part.stat()
            if st.st_uid == self.uid:
                ok = bool(st.st_mode & stat.S_IXUSR)
            elif st.st_gid in groups:
                ok = bool(st.st_mode & stat.S_IXGRP)
            else:
                ok = bool(st.st_mode & stat.S_IXOTH)
            if not ok:
                return False
        return True


def service_account(name: str) -> Account:
    """The account to run servers as: ourselves, or (as root) an unprivileged system user."""
    if os.geteuid() != 0:
        return Account(pwd.getpwuid(os.geteuid()).pw_name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        nologin = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", nologin, name],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise ServiceError(
                f"cannot create system user {name!r}: {result.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid)


def service_root(var_dir: Path, account: Account) -> Path:
    """Where the servers keep their files: ``var/``, or a link from it when the account can't
    reach ``var/`` (a checkout under /root, say)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    services = var_dir / "services"
    if services.is_symlink() or account.can_traverse(var_dir):
        if not services.exists():
            services.mkdir()
        return services.resolve()
    digest = hashlib.sha256(str(var_dir.resolve()).encode()).hexdigest()[:12]
    outside = Path("/var/lib/changzhi") / digest
    outside.mkdir(parents=True, exist_ok=True)
    os.chmod(outside.parent, 0o755)
    services.symlink_to(outside)
    return outside


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(host, port):
            return True
        time.sleep(0.1)
    return False


def pg_bin(name: str) -> str:
    """A PostgreSQL 15 program (``initdb``, ``pg_basebackup``, ...)."""
    bindir = os.environ.get("CHANGZHI_PG_BINDIR")
    return str(_find_binary(name, (Path(bindir),) if bindir else PG_BINDIRS))


def conf_quote(value: str) -> str:
    """A string as a postgresql.conf value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def archive_settings(wal_dir: Path) -> dict[str, str]:
    """WAL archiving into ``wal_dir``, PostgreSQL's own way (``archive_command``): a segment
    is copied under a temporary name and renamed, never overwritten; when the copy fails
    (disk full) PostgreSQL keeps the segment and tries again, so nothing is lost."""
    import shlex

    target = shlex.quote(str(wal_dir)) + "/%f"
    command = f"test ! -f {target} && cp %p {target}.part && mv {target}.part {target}"
    return {
        "archive_mode": "on",
        "archive_command": conf_quote(command),
        # A quiet city still gets a restorable point at least this often.
        "archive_timeout": "'5min'",
    }


def _find_binary(name: str, dirs: tuple[Path, ...] = ()) -> Path:
    for directory in (*dirs, Path("/usr/sbin"), Path("/usr/bin")):
        candidate = directory / name
        if candidate.exists():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ServiceError(f"{name} is not installed; run `make run` (or `make deps`) to install it")


@dataclass
class Postgres:
    """A private PostgreSQL 15 cluster with PostGIS and pgRouting available."""

    root: Path
    port: int
    password: str
    account: Account
    host: str = "127.0.0.1"
    # Durability stays on by default; the throwaway test cluster trades it for speed.
    settings: Mapping[str, str] = field(default_factory=dict)
    # Its folder under ``root``: ``pg`` for the primary, ``pg-standby`` for the replica.
    name: str = "pg"
    # Set for a streaming replica: the cluster it is cloned from and follows.
    primary: Postgres | None = None
    start_timeout_s: int = 60
    # False for a cluster still recovering when `pg_ctl start` returns (a restore).
    ensure_db: bool = True

    @property
    def data_dir(self) -> Path:
        return self.root / self.name / "data"

    @property
    def log_file(self) -> Path:
        return self.root / self.name / "postgres.log"

    def _bin(self, name: str) -> str:
        return pg_bin(name)

    def _run(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**os.environ, **env} if env else None,
            # Own session: a Ctrl-C meant for `changzhi up` must not reach the server directly.
            start_new_session=True,
            **self.account.popen_kwargs(),  # type: ignore[call-overload]
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ServiceError(f"{Path(args[0]).name} failed: {detail[-1] if detail else '?'}")
        return result

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def promoted(self) -> bool:
        """A replica that has been promoted (its ``standby.signal`` is gone)."""
        return (
            self.primary is not None
            and self.initialized
            and not (self.data_dir / "standby.signal").exists()
        )

    def init(self) -> None:
        if self.primary is not None:
            self.clone()
            return
        pg_dir = self.data_dir.parent
        pg_dir.mkdir(parents=True, exist_ok=True)
        (pg_dir / "run").mkdir(exist_ok=True)
        for path in (self.root, pg_dir, pg_dir / "run"):
            self.account.own(path)
        os.chmod(pg_dir, 0o700)
        with tempfile.NamedTemporaryFile("w", dir=pg_dir, delete=False) as fh:
            fh.write(self.password + "\n")
        pwfile = Path(fh.name)
        self.account.own(pwfile)
        try:
            self._run(
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "changzhi",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as conf_fh:
            conf_fh.write("\ninclude_if_exists = 'changzhi.conf'\n")

    def clone(self) -> None:
        """Make this cluster a streaming replica of :attr:`primary`: ``pg_basebackup`` with a
        replication slot, so the primary keeps the WAL the replica has not received yet."""
        primary = self.primary
        assert primary is not None
        if not primary.running():
            raise ServiceError("the primary is not running: a standby is cloned from it")
        pg_dir = self.data_dir.parent
        pg_dir.mkdir(parents=True, exist_ok=True)
        (pg_dir / "run").mkdir(exist_ok=True)
        for path in (self.root, pg_dir, pg_dir / "run"):
            self.account.own(path)
        os.chmod(pg_dir, 0o700)
        with primary.admin() as conn:
            # A slot left by an earlier standby of the same name would hold WAL for ever.
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (STANDBY_NAME,),
            )
        self._run(
            self._bin("pg_basebackup"),
            "-D",
            str(self.data_dir),
            "-h",
            primary.host,
            "-p",
            str(primary.port),
            "-U",
            "changzhi",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--create-slot",
            f"--slot={STANDBY_NAME}",
            "--no-password",
            env={"PGPASSWORD": primary.password},
        )
        (self.data_dir / "standby.signal").touch()
        self.account.own(self.data_dir / "standby.signal")

    def replication_settings(self) -> dict[str, str]:
        """What following :attr:`primary` takes (nothing for a primary)."""
        if self.primary is None:
            return {}
        conninfo = (
            f"host={self.primary.host} port={self.primary.port} user=changzhi "
            f"password={self.password} application_name={STANDBY_NAME}"
        )
        return {
            "primary_conninfo": conf_quote(conninfo),
            "primary_slot_name": conf_quote(STANDBY_NAME),
            "hot_standby": "on",
            # Once promoted there is no standby to wait for: commits must not hang.
            "synchronous_standby_names": "''",
        }

    def write_config(self) -> None:
        lines = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data_dir.parent / 'run'}'",
            "shared_buffers": "'256MB'",
            "max_connections": "200",
            "max_wal_size": "'2GB'",
            "timezone": "'Asia/Shanghai'",
            "log_timezone": "'Asia/Shanghai'",
            "jit": "off",
            **self.settings,
            **self.replication_settings(),
        }
        path = self.data_dir / "changzhi.conf"
        path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
        self.account.own(path)

    def running(self) -> bool:
        if not self.initialized:
            return False
        return (
            self._run(
                self._bin("pg_ctl"), "status", "-D", str(self.data_dir), check=False
            ).returncode
            == 0
        )

    def start(self) -> bool:
        """Start the cluster (initialising it first); returns False if it was already running."""
        if not self.initialized:
            self.init()
        if self.running():
            return False
        if port_in_use(self.host, self.port):
            raise ServiceError(
                f"port {self.port} is in use by another program; "
                "free it or set CHANGZHI_EMBEDDED_PG_PORT to another port"
            )
        self.write_config()
        result = self._run(
            self._bin("pg_ctl"),
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(self.start_timeout_s),
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise ServiceError("PostgreSQL did not start: " + " | ".join(tail))
        if self.ensure_db and (self.primary is None or self.promoted):
            self.ensure_database("changzhi")
        return True

    def reload(self) -> None:
        """Make the running server re-read its configuration."""
        self._run(self._bin("pg_ctl"), "reload", "-D", str(self.data_dir))

    def kill(self) -> None:
        """SIGKILL the postmaster, as a power cut would (tests of failover)."""
        pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> bool:
        if not self.running():
            return False
        self._run(self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
        return True

    @property
    def url(self) -> str:
        return f"postgresql://changzhi:{self.password}@{self.host}:{self.port}/changzhi"

    def admin(self) -> psycopg.Connection:
        """An autocommit connection to the ``postgres`` database as the cluster's owner."""
        import psycopg

        admin = f"postgresql://changzhi:{self.password}@{self.host}:{self.port}/postgres"
        return psycopg.connect(admin, autocommit=True, connect_timeout=5)

    def ensure_database(self, name: str) -> None:
        with self.admin() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class Mosquitto:
    """A private Mosquitto 2 broker: password file, ACL, persistence."""

    root: Path
    port: int
    platform_password: str
    account: Account
    host: str = "127.0.0.1"

    @property
    def dir(self) -> Path:
        return self.root / "mqtt"

    @property
    def pid_file(self) -> Path:
        return self.dir / "mosquitto.pid"

    @property
    def passwd_file(self) -> Path:
        return self.dir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.dir / "acl"

    @property
    def url(self) -> str:
        return f"mqtt://platform:{self.platform_password}@{self.host}:{self.port}"

    def write_config(self) -> None:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        for path in (self.root, self.dir, data):
            self.account.own(path)
        conf = f"""# Generated by changzhi; edits are overwritten on start.
listener {self.port} {self.host}
protocol mqtt
allow_anonymous false
password_file {self.passwd_file}
acl_file {self.acl_file}
persistence true
persistence_location {data}/
autosave_interval 30
# Persistent sessions of the ingest workers may hold a database outage's worth of readings.
max_queued_messages 5000000
max_queued_bytes 0
max_inflight_messages 1000
set_tcp_nodelay true
pid_file {self.pid_file}
log_dest file {self.dir / "mosquitto.log"}
log_type error
log_type warning
log_type notice
connection_messages false
"""
        (self.dir / "mosquitto.conf").write_text(conf)
        if self.passwd_file.exists():
            # Starting the broker never drops accounts: the devices' stay, the platform's is
            # set again (its password comes from the secrets), and the ACL is rewritten with
            # the gateways it already names.
            self._set_password("platform", self.platform_password)
            self._write_acl(self._acl_gateways())
        else:
            self.write_accounts({})

    def write_accounts(self, devices: Mapping[str, str], gateways: Collection[str] = ()) -> None:
        """Write the password file and ACL: the platform's account plus one per device.

        ``devices`` maps a device's MQTT username to its plaintext password; a device may only
        publish under its own topics, and only the ``gateways`` among them on the gateway
        topic family.
        """
        plain = self.dir / "passwd.plain"
        lines = [f"platform:{self.platform_password}"]
        lines += [f"{user}:{password}" for user, password in sorted(devices.items())]
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        hashed = subprocess.run(
            [str(_find_binary("mosquitto_passwd")), "-U", str(plain)],
            capture_output=True,
            text=True,
        )
        if hashed.returncode != 0:
            raise ServiceError(f"mosquitto_passwd failed: {hashed.stderr.strip()}")
        os.replace(plain, self.passwd_file)
        self._write_acl(sorted(set(gateways) & set(devices)))

    def _set_password(self, user: str, password: str) -> None:
        """Add or change one account in the (hashed) password file, leaving the others."""
        done = subprocess.run(
            [str(_find_binary("mosquitto_passwd")), "-b", str(self.passwd_file), user, password],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ServiceError(f"mosquitto_passwd failed: {done.stderr.strip()}")
        os.chmod(self.passwd_file, 0o600)
        self.account.own(self.passwd_file)

    def _acl_gateways(self) -> list[str]:
        """The gateway accounts the current ACL names (its ``user`` sections but the
        platform's)."""
        try:
            lines = self.acl_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [
            line.split(None, 1)[1]
            for line in lines
            if line.startswith("user ") and line.split(None, 1)[1] != "platform"
        ]

    def _write_acl(self, gateways: Collection[str]) -> None:
        acl = ["user platform", "topic readwrite #", ""]
        # A gateway publishes batches on its own gateway topic (ingest then takes only the
        # devices registered behind it) and its status; nothing else of that family.
        for gateway in sorted(gateways):
            acl += [
                f"user {gateway}",
                f"topic write cz/v1/gateway/{gateway}/telemetry",
                f"topic write cz/v1/gateway/{gateway}/status",
                "",
            ]
        acl += [
            # First, so that no grant below reaches the gateway family: `cz/v1/+/%u/...`
            # would otherwise let every device publish gateway batches. A gateway's own
            # grants above are checked before any pattern.
            "pattern deny cz/v1/gateway/#",
            "pattern write cz/v1/+/%u/telemetry",
            "pattern write cz/v1/+/%u/status",
            # One level below the user, as ingest subscribes (`owntracks/+/+`): deeper topics
            # would reach nobody, neither stored nor refused.
            "pattern write owntracks/%u/+",
            # A terminal reads its own orders (apps.dispatch.terminals), nobody else's; the
            # city's alarms are for the platform's own accounts, not for field devices.
            "pattern read cz/v1/+/%u/command",
            "",
        ]
        self.acl_file.write_text("\n".join(acl))
        for path in (self.passwd_file, self.acl_file):
            os.chmod(path, 0o600)
            self.account.own(path)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"mosquitto" in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self) -> bool:
        if self.running():
            return False
        if port_in_use(self.host, self.port):
            raise ServiceError(
                f"port {self.port} is in use by another program; "
                "free it or set CHANGZHI_EMBEDDED_MQTT_PORT to another port"
            )
        self.write_config()
        self.pid_file.unlink(missing_ok=True)  # stale from a crashed run
        result = subprocess.run(
            [str(_find_binary("mosquitto")), "-c", str(self.dir / "mosquitto.conf"), "-d"],
            capture_output=True,
            text=True,
            cwd=self.root,
            start_new_session=True,
            **self.account.popen_kwargs(),  # type: ignore[call-overload]
        )
        if result.returncode != 0 or not wait_for_port(self.host, self.port, 10):
            log = (self.dir / "mosquitto.log").read_text(errors="replace").strip().splitlines()
            raise ServiceError(
                "Mosquitto did not start: " + " | ".join(log[-3:] or [result.stderr])
            )
        return True

    def reload(self) -> None:
        """Make the broker re-read its password file and ACL."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def stop(self, timeout: float = 15.0) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)  # a clean stop saves the persistence file
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


@dataclass
class EmbeddedServices:
    postgres: Postgres | None
    mosquitto: Mosquitto | None
    standby: Postgres | None = None

    def start(self) -> list[str]:
        """Start what is not running; return the names of what this call started."""
        started = []
        if self.standby is not None and self.standby.promoted:
            # The old primary's data ends where the standby took over: starting it would make
            # two primaries that disagree.
            if self.standby.start():
                started.append("standby")
            raise ServiceError(
                f"the standby ({self.standby.data_dir}) was promoted and is now the primary; "
                f"the old primary ({self.postgres.data_dir if self.postgres else '?'}) is "
                'stale: see README "After a failover" to rebuild it as the new standby'
            )
        primary_conf = dict(self.postgres.settings) if self.postgres is not None else {}
        if self.postgres is not None and self.standby is not None and not self.standby.initialized:
            # A synchronous primary waits at every commit for a standby that is not cloned
            # yet (its own CREATE DATABASE included): it starts asynchronous.
            self.postgres.settings = {
                k: v for k, v in primary_conf.items() if k != "synchronous_standby_names"
            }
        if self.postgres is not None and self.postgres.start():
            started.append("postgres")
        if self.standby is not None and self.standby.start():
            started.append("standby")
        if self.postgres is not None and self.standby is not None:
            # Synchronous from now on (also for a primary that ran alone before).
            self.postgres.settings = primary_conf
            self.postgres.write_config()
            self.postgres.reload()
        if self.mosquitto is not None and self.mosquitto.start():
            started.append("mosquitto")
        return started

    def stop(self, names: list[str] | None = None) -> list[str]:
        stopped = []
        wanted = set(names) if names is not None else {"mosquitto", "postgres", "standby"}
        if self.mosquitto is not None and "mosquitto" in wanted and self.mosquitto.stop():
            stopped.append("mosquitto")
        if self.postgres is not None and "postgres" in wanted and self.postgres.stop():
            stopped.append("postgres")
        if self.standby is not None and "standby" in wanted and self.standby.stop():
            stopped.append("standby")
        return stopped


def embedded_services(settings: Settings) -> EmbeddedServices:
    """The embedded services this configuration uses (none where URLs point elsewhere)."""
    account = service_account(settings.platform.service_user)
    root = service_root(settings.platform.var_dir, account)
    postgres = mosquitto = standby = None
    if settings.embedded_database:
        postgres = Postgres(
            root=root,
            port=settings.embedded.pg_port,
            password=settings.secrets.get_or_create("pg_password"),
            account=account,
            host=settings.embedded.host,
            settings=primary_settings(
                standby=settings.embedded.standby,
                wal_dir=wal_archive(settings.backup_dir, account)
                if settings.backup.archive
                else None,
            ),
        )
        if settings.embedded.standby:
            standby = Postgres(
                root=root,
                port=settings.embedded.standby_port,
                password=postgres.password,
                account=account,
                host=settings.embedded.host,
                settings=postgres.settings,
                name="pg-standby",
                primary=postgres,
            )
    if settings.embedded_broker:
        mosquitto = Mosquitto(
            root=root,
            port=settings.embedded.mqtt_port,
            platform_password=settings.secrets.get_or_create("mqtt_platform_password"),
            account=account,
            host=settings.embedded.host,
        )
    return EmbeddedServices(postgres, mosquitto, standby)


def primary_settings(*, standby: bool, wal_dir: Path | None) -> dict[str, str]:
    """A primary's settings: synchronous replication to the standby (a commit returns once
    the standby has it on disk) and WAL archiving for point-in-time restore."""
    conf: dict[str, str] = {}
    if standby:
        conf["synchronous_standby_names"] = conf_quote(STANDBY_NAME)
        conf["synchronous_commit"] = "on"
    if wal_dir is not None:
        conf.update(archive_settings(wal_dir))
    return conf


def wal_archive(backup_dir: Path, account: Account) -> Path:
    """The WAL archive folder under ``backup_dir``, writable by the servers' account."""
    wal = backup_dir / "wal"
    wal.mkdir(parents=True, exist_ok=True)
    account.own(backup_dir)
    account.own(wal)
    return wal


@contextlib.contextmanager
def single_instance(lock_path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock for the life of a command, so a second one refuses clearly."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fh = lock_path.open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise ServiceError(f"{what} is already running (pid {holder}); stop it first") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    try:
        yield
    finally:
        fh.close()
        lock_path.unlink(missing_ok=True)


@dataclass
class Throwaway:
    root: Path
    services: EmbeddedServices

    @property
    def standby(self) -> Postgres:
        assert self.services.standby is not None
        return self.services.standby

    @property
    def postgres(self) -> Postgres:
        assert self.services.postgres is not None
        return self.services.postgres

    @property
    def mosquitto(self) -> Mosquitto:
        assert self.services.mosquitto is not None
        return self.services.mosquitto


def start_throwaway(
    prefix: str, *, durable: bool = False, standby: bool = False, archive: bool = False
) -> Throwaway:
    """A private PostGIS and Mosquitto on free ports in a temporary directory, for tests and
    benchmarks; ``services.stop()`` and removing ``root`` leave nothing behind.

    ``standby`` adds a synchronous streaming replica; ``archive`` archives WAL into
    ``root/backups/wal``. Both keep commits synchronous, as production does.
    """
    account = service_account("changzhi")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o755)  # the unprivileged server account must reach it
    # Tests trade durability for speed; benchmarks measure what production would run. A
    # killed server (not a lost machine) keeps what it committed even without fsync.
    conf = {} if durable else {"fsync": "off", "full_page_writes": "off"}
    if not (durable or standby or archive):
        conf["synchronous_commit"] = "off"
    wal_dir = wal_archive(root / "backups", account) if archive else None
    conf.update(primary_settings(standby=standby, wal_dir=wal_dir))
    primary = Postgres(
        root=root,
        port=free_port(),
        password=secrets.token_urlsafe(12),
        account=account,
        settings=conf,
    )
    replica = (
        Postgres(
            root=root,
            port=free_port(),
            password=primary.password,
            account=account,
            settings=conf,
            name="pg-standby",
            primary=primary,
        )
        if standby
        else None
    )
    services = EmbeddedServices(
        primary,
        Mosquitto(
            root=root,
            port=free_port(),
            platform_password=secrets.token_urlsafe(12),
            account=account,
        ),
        replica,
    )
    services.start()
    return Throwaway(root, services)
