"""Backups and point-in-time restore on a throwaway cluster that archives its WAL: restoring to
a time brings back exactly the rows committed before it, and every wrong request (a time in
the future, before the first backup, a full backup disk) ends in a clear error with nothing
lost."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from apps.platform.backup import (
    BackupError,
    base_backups,
    choose,
    parse_time,
    prune,
    restore,
    take_backup,
    wal_file,
)
from apps.platform.services import Throwaway, service_account, start_throwaway
from gis_core.settings import BackupSettings, DatabaseSettings, PlatformSettings, Settings

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def archived() -> Iterator[Throwaway]:
    handle = start_throwaway("changzhi-backup-", archive=True)
    try:
        with psycopg.connect(handle.postgres.url) as conn:
            conn.execute(
                "CREATE TABLE reading"
                " (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"
            )
            conn.commit()
        yield handle
    finally:
        handle.services.stop()
        shutil.rmtree(handle.root, ignore_errors=True)


def settings_for(handle: Throwaway, backup_dir: Path | None = None, keep: int = 7) -> Settings:
    return Settings(
        platform=PlatformSettings(var_dir=handle.root / "var"),
        database=DatabaseSettings(url=handle.postgres.url),
        backup=BackupSettings(dir=backup_dir or handle.root / "backups", keep=keep),
    )


def write(url: str, ids: range) -> None:
    with psycopg.connect(url) as conn:
        for i in ids:  # one commit each: recovery stops between commits
            conn.execute("INSERT INTO reading (id) VALUES (%s)", (i,))
            conn.commit()


def archive_now(url: str) -> None:
    """Close the current WAL segment and wait until the archiver has copied it."""
    with psycopg.connect(url, autocommit=True) as conn:
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
            if done is not None and done >= segment:
                return
            time.sleep(0.2)
    raise AssertionError(f"segment {segment} was never archived")


def test_wal_file_names_follow_postgresql() -> None:
    # pg_walfile_name('0/2000028') on timeline 1 with 16 MB segments, and a high LSN.
    assert wal_file(1, "0/2000028", 16 * 1024 * 1024) == "000000010000000000000002"
    assert wal_file(1, "1/FF000000", 16 * 1024 * 1024) == "0000000100000001000000FF"
    assert wal_file(3, "0/0", 64 * 1024 * 1024) == "000000030000000000000000"


def test_restore_to_a_time_has_exactly_the_rows_written_before_it(archived: Throwaway) -> None:
    url = archived.postgres.url
    settings = settings_for(archived)
    write(url, range(1, 11))
    backup = take_backup(settings)
    assert (backup.path / "base.tar.gz").is_file()
    write(url, range(11, 21))
    time.sleep(1.0)  # a clear gap between the last row before the target and the first after
    with psycopg.connect(url) as conn:
        target = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    time.sleep(1.0)
    write(url, range(21, 31))
    archive_now(url)
    with psycopg.connect(url) as conn:
        before = [
            r[0]
            for r in conn.execute("SELECT id FROM reading WHERE at <= %s ORDER BY id", (target,))
        ]
    assert before == list(range(1, 21))  # the source: the same boundary, seen live

    into = archived.root / "restored"
    done = restore(
        settings.backup_dir, target, into, service_account("changzhi"), archived.postgres.password
    )
    try:
        assert done.backup.path == backup.path
        with psycopg.connect(done.cluster.url) as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM reading ORDER BY id")]
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]  # type: ignore[index]
            conn.execute("INSERT INTO reading (id) VALUES (1000)")  # promoted: it takes writes
            conn.commit()
        assert ids == before
        assert in_recovery is False
    finally:
        done.cluster.stop()
        shutil.rmtree(into, ignore_errors=True)
    # The source went on untouched.
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM reading").fetchone()[0] == 30  # type: ignore[index]


def test_restore_refuses_a_time_no_backup_covers(archived: Throwaway) -> None:
    settings = settings_for(archived)
    if not base_backups(settings.backup_dir):
        take_backup(settings)
    first = base_backups(settings.backup_dir)[0]
    with pytest.raises(BackupError, match="no backup covers"):
        choose(settings.backup_dir, first.finished - timedelta(seconds=1))
    assert choose(settings.backup_dir, first.finished) == first  # at the boundary: usable
    with pytest.raises(BackupError, match="in the future"):
        parse_time((first.finished + timedelta(days=1)).isoformat(), now=first.finished)
    with pytest.raises(BackupError, match="not a time"):
        parse_time("yesterday")
    with pytest.raises(BackupError, match="no base backup"):
        choose(archived.root / "nowhere", first.finished)
    full = archived.root / "occupied"
    full.mkdir(exist_ok=True)
    (full / "keep-me").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        restore(settings.backup_dir, first.finished, full, service_account("changzhi"), "")
    assert (full / "keep-me").read_text() == "x"


def _cli(
    handle: Throwaway, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGZHI_")}
    env |= {
        "CHANGZHI_DATABASE_URL": handle.postgres.url,
        "CHANGZHI_MQTT_URL": handle.mosquitto.url,
        "CHANGZHI_VAR_DIR": str(handle.root / "var"),
        "CHANGZHI_BACKUP_DIR": str(handle.root / "backups"),
        "COLUMNS": "300",
    } | extra
    return subprocess.run(
        [sys.executable, "-m", "apps.platform.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def test_cli_backs_up_and_restore_errors_are_one_line(archived: Throwaway) -> None:
    settings = settings_for(archived)
    count = len(base_backups(settings.backup_dir))
    made = _cli(archived, "db", "backup")
    assert made.returncode == 0, made.stderr
    assert "base backup" in made.stdout and "restorable from" in made.stdout
    assert len(base_backups(settings.backup_dir)) == count + 1
    listed = _cli(archived, "db", "backups")
    assert all(b.path.name in listed.stdout for b in base_backups(settings.backup_dir))
    first = base_backups(settings.backup_dir)[0]
    # (A time in the future: test_restore_refuses_a_time_no_backup_covers; each command
    # line costs seconds of imports on a loaded machine.)
    for when, says in (((first.finished - timedelta(hours=1)).isoformat(), "no backup covers"),):
        done = _cli(archived, "db", "restore", "--to", when)
        assert done.returncode == 1, done.stdout + done.stderr
        assert says in done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@contextlib.contextmanager
def full_disk(where: Path) -> Iterator[str]:
    """A backup folder that cannot take a backup: a 1 MB tmpfs (as root), else a folder
    without write permission. Yields how it was made."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True
    )
    try:
        if mounted.returncode == 0:
            yield "tmpfs"
        else:
            where.chmod(0o500)
            yield "read-only"
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(where)], check=True)
        where.chmod(0o700)


def test_backup_on_a_full_disk_fails_clearly_and_loses_nothing(archived: Throwaway) -> None:
    settings = settings_for(archived)
    if not base_backups(settings.backup_dir):
        take_backup(settings)
    kept = [b.path for b in base_backups(settings.backup_dir)]
    with full_disk(archived.root / "tiny") as how:
        tiny = settings_for(archived, backup_dir=archived.root / "tiny")
        with pytest.raises(BackupError) as caught:
            take_backup(tiny)
        if how == "tmpfs":
            assert "No space left on device" in str(caught.value), caught.value
        assert "no backup was made" in str(caught.value)
        assert base_backups(tiny.backup_dir) == []
        assert not list((archived.root / "tiny" / "base").glob("*.partial"))
        env_dir = archived.root / "tiny"
        cli = _cli(archived, "db", "backup", env={"CHANGZHI_BACKUP_DIR": str(env_dir)})
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert "no backup was made" in cli.stderr and "Traceback" not in cli.stderr
    assert [b.path for b in base_backups(settings.backup_dir)] == kept
    with psycopg.connect(archived.postgres.url) as conn:  # the database never noticed
        conn.execute("INSERT INTO reading (id) VALUES (5000)")
        conn.commit()


def test_retention_keeps_the_newest_backups_and_the_wal_they_need(archived: Throwaway) -> None:
    settings = settings_for(archived, keep=1)
    write(archived.postgres.url, range(100, 105))
    take_backup(settings_for(archived))
    archive_now(archived.postgres.url)
    newest = take_backup(settings)  # keep=1: the older ones go
    backups = base_backups(settings.backup_dir)
    assert [b.path for b in backups] == [newest.path]
    segments = sorted(p.name for p in (settings.backup_dir / "wal").iterdir() if len(p.name) == 24)
    assert segments and segments[0] >= newest.start_wal
    assert prune(settings.backup_dir, 1) == []  # nothing more to remove
