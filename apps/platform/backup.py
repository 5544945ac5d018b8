"""Backups with point-in-time restore, PostgreSQL's own way (自动备份).

- A base backup is ``pg_basebackup`` (tar, gzip, the WAL it needs streamed in) into
  ``<backup dir>/base/<UTC time>/``, with what it covers in ``changzhi-backup.json``.
- The WAL archive is ``<backup dir>/wal/``, filled by the server's ``archive_command``
  (``apps.platform.services.archive_settings`` for the embedded cluster; an external server
  is given the same command by its administrator).
- Restore extracts the newest base backup finished before the target into a fresh data
  directory, and PostgreSQL replays the archive up to ``recovery_target_time``.
- Retention keeps the newest ``CHANGZHI_BACKUP_KEEP`` base backups and, with
  ``pg_archivecleanup``, only the WAL the oldest of them needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from gis_core.settings import Settings

from .services import Account, Postgres, ServiceError, conf_quote, free_port, pg_bin

# Microseconds: two backups within one second (a schedule retried, a test) must not share
# a folder.
STAMP = "%Y%m%dT%H%M%S%fZ"
MANIFEST = "changzhi-backup.json"


class BackupError(ServiceError):
    """A backup or restore that could not be done; nothing was changed or lost."""


@dataclass(frozen=True)
class BaseBackup:
    path: Path
    # Server clock: the backup is consistent (restorable) from ``finished`` on.
    started: datetime
    finished: datetime
    start_wal: str  # the first WAL segment it needs: retention keeps it and what follows

    @classmethod
    def read(cls, path: Path) -> BaseBackup:
        meta = json.loads((path / MANIFEST).read_text())
        return cls(
            path,
            datetime.fromisoformat(meta["started"]),
            datetime.fromisoformat(meta["finished"]),
            meta["start_wal"],
        )


def base_backups(backup_dir: Path) -> list[BaseBackup]:
    """The finished base backups, oldest first (a partial one has no manifest)."""
    base = backup_dir / "base"
    if not base.is_dir():
        return []
    found = [BaseBackup.read(p) for p in base.iterdir() if (p / MANIFEST).is_file()]
    return sorted(found, key=lambda b: b.finished)


def wal_file(timeline: int, lsn: str, segment_bytes: int) -> str:
    """The name of the WAL segment holding ``lsn`` (``"0/2000028"``) on ``timeline``."""
    high, low = (int(part, 16) for part in lsn.split("/"))
    per_id = 0x100000000 // segment_bytes
    return f"{timeline:08X}{high:08X}{low // segment_bytes % per_id:08X}"


def _last_line(text: str) -> str:
    """The line that says what went wrong: a tool's first ``error:`` line (pg_basebackup
    follows it with what it cleaned up), else the last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln or "FATAL:" in ln]
    return (errors or lines or ["?"])[0 if errors else -1]


def take_backup(settings: Settings, log: list[str] | None = None) -> BaseBackup:
    """A base backup of the platform database now, then retention; returns the new one."""
    backup_dir = settings.backup_dir
    url = settings.database_url
    try:
        (backup_dir / "base").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot use the backup folder {backup_dir}: {exc.strerror}") from None
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            started = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            seg = conn.execute(
                "SELECT setting::bigint * (CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 "
                "WHEN 'MB' THEN 1048576 END) FROM pg_settings WHERE name = 'wal_segment_size'"
            ).fetchone()[0]  # type: ignore[index]
    except psycopg.OperationalError as exc:
        raise BackupError(f"cannot reach the database to back up: {_last_line(str(exc))}") from None
    stamp = started.astimezone(UTC).strftime(STAMP)
    target = backup_dir / "base" / stamp
    partial = target.with_name(stamp + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [
            pg_bin("pg_basebackup"),
            "-d",
            url,
            "-D",
            str(partial),
            "--format=tar",
            "--gzip",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-password",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"pg_basebackup failed: {_last_line(done.stderr)}; no backup was made")
    try:
        manifest = json.loads((partial / "backup_manifest").read_text())
        ranges = manifest["WAL-Ranges"][0]
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            finished = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        meta = {
            "started": started.isoformat(),
            "finished": finished.isoformat(),
            "start_wal": wal_file(ranges["Timeline"], ranges["Start-LSN"], int(seg)),
            "end_lsn": ranges["End-LSN"],
        }
        (partial / MANIFEST).write_text(json.dumps(meta, indent=2))
        partial.rename(target)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(
            f"could not finish the backup in {backup_dir}: {exc.strerror}; no backup was made"
        ) from None
    except psycopg.OperationalError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(
            f"the database went away during the backup: {_last_line(str(exc))}"
        ) from None
    made = BaseBackup.read(target)
    removed = prune(backup_dir, settings.backup.keep)
    if log is not None and removed:
        log.append(f"removed {len(removed)} base backup(s) past retention")
    return made


def prune(backup_dir: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` base backups and the WAL from the oldest of them on."""
    backups = base_backups(backup_dir)
    old = backups[:-keep] if len(backups) > keep else []
    for backup in old:
        shutil.rmtree(backup.path)
    kept = backups[len(old) :]
    wal = backup_dir / "wal"
    if kept and wal.is_dir():
        done = subprocess.run(
            [pg_bin("pg_archivecleanup"), str(wal), kept[0].start_wal],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise BackupError(f"pg_archivecleanup failed: {_last_line(done.stderr)}")
    return [b.path for b in old]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A restore target: ISO 8601; without an offset, this machine's local time."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BackupError(
            f"--to {text!r} is not a time: use ISO 8601, e.g. 2026-12-06T12:30:00+08:00"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # the machine's local zone
    now = now or datetime.now(UTC)
    if when > now:
        raise BackupError(f"--to {when.isoformat()} is in the future: nothing has been written yet")
    return when


def choose(backup_dir: Path, when: datetime) -> BaseBackup:
    """The newest base backup restorable to ``when``."""
    backups = base_backups(backup_dir)
    if not backups:
        raise BackupError(f"no base backup in {backup_dir}: run `changzhi db backup` first")
    usable = [b for b in backups if b.finished <= when]
    if not usable:
        raise BackupError(
            f"no backup covers {when.isoformat()}: the earliest base backup is restorable from "
            f"{backups[0].finished.isoformat()} on"
        )
    return usable[-1]


@dataclass(frozen=True)
class Restored:
    cluster: Postgres
    backup: BaseBackup
    target: datetime


def restore(
    backup_dir: Path,
    when: datetime,
    into: Path,
    account: Account,
    password: str,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> Restored:
    """Restore the cluster as it was at ``when`` into the fresh directory ``into`` and start
    it on ``port`` (a free one by default). ``password`` is the ``changzhi`` role's in the
    backed-up cluster, for :attr:`Postgres.url` (empty when unknown). On failure ``into`` is
    removed; the backups are never written to."""
    backup = choose(backup_dir, when)
    if into.exists() and any(into.iterdir()):
        raise BackupError(f"{into} is not empty: restore goes into a fresh directory")
    wal = backup_dir / "wal"
    into.mkdir(parents=True, exist_ok=True)
    account.own(into)
    cluster = Postgres(
        root=into,
        port=port or free_port(host),
        password=password,
        account=account,
        host=host,
        settings={
            "restore_command": conf_quote(f"cp {wal}/%f %p"),
            "recovery_target_time": conf_quote(when.isoformat()),
            "recovery_target_action": "'promote'",
            # Not ready before the target is reached: `pg_ctl -w` then waits for the end.
            "hot_standby": "off",
            # The copy must not write into the source's archive, nor wait for its standby.
            "archive_mode": "off",
            "synchronous_standby_names": "''",
        },
        ensure_db=False,
    )
    data = cluster.data_dir
    try:
        data.mkdir(parents=True)
        (data.parent / "run").mkdir()
        for path in (data.parent, data, data.parent / "run"):
            account.own(path)
        data.chmod(0o700)
        for archive, where in (("base.tar.gz", data), ("pg_wal.tar.gz", data / "pg_wal")):
            untar = subprocess.run(
                ["tar", "--no-same-owner", "-xzf", str(backup.path / archive), "-C", str(where)],
                capture_output=True,
                text=True,
            )
            if untar.returncode != 0:
                raise BackupError(f"cannot extract {archive}: {_last_line(untar.stderr)}")
        if not (data / "postgresql.conf").exists():
            # A server whose configuration lives outside its data directory (Debian's).
            (data / "postgresql.conf").write_text("include_if_exists = 'changzhi.conf'\n")
            (data / "pg_hba.conf").write_text(
                "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
            )
        for stale in ("postmaster.pid", "standby.signal"):
            (data / stale).unlink(missing_ok=True)
        (data / "recovery.signal").touch()
        for folder, dirs, files in os.walk(data):
            for name in (*dirs, *files):
                account.own(Path(folder) / name)
        cluster.start()
        _wait_recovered(cluster)
    except (ServiceError, OSError) as exc:
        if cluster.initialized and cluster.running():
            cluster.stop()
        detail = str(exc)
        if "recovery ended before configured recovery target was reached" in (
            cluster.log_file.read_text(errors="replace") if cluster.log_file.exists() else ""
        ):
            detail = (
                f"the WAL archive in {wal} does not reach {when.isoformat()} yet (it is "
                "archived segment by segment; try an earlier time, or wait for the next "
                "segment)"
            )
        shutil.rmtree(into, ignore_errors=True)
        raise BackupError(f"restore failed: {detail}; {into} removed, backups untouched") from None
    return Restored(cluster, backup, when)


def _wait_recovered(cluster: Postgres, timeout_s: float = 3600.0) -> None:
    """Wait until recovery has reached the target and the cluster is promoted; raise if the
    server stops on the way (the target was not reached). With ``hot_standby`` off it takes
    connections only once promoted, and ``pg_isready`` tells that without a password."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not cluster.running():
            tail = cluster.log_file.read_text(errors="replace").strip().splitlines()[-2:]
            raise ServiceError("recovery stopped: " + " | ".join(tail))
        ready = subprocess.run(
            [pg_bin("pg_isready"), "-q", "-h", cluster.host, "-p", str(cluster.port)],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise ServiceError(f"recovery did not finish within {timeout_s:.0f} s")
