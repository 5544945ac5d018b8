"""systemd units for a server: one per part, the applications' workers read from their
``Worker`` lists (a new application's get units with no template edited), each unit valid
for systemd (``systemd-analyze verify`` where the machine has it, parsed here always) and
running a command the command line really has."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from apps.platform.deploy import systemd_units, unit_name, write_units
from gis_core.application import Application, Worker, installed
from gis_core.settings import BackupSettings, PlatformSettings, Settings

REPO = Path(__file__).resolve().parents[1]


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as systemd reads it: sections of keys, a key may repeat."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        platform=PlatformSettings(var_dir=tmp_path / "var"),
        backup=BackupSettings(dir=tmp_path / "backups", schedule="*-*-* 02:30:00"),
    )


def test_units_cover_the_api_ingest_every_worker_and_backups(tmp_path: Path) -> None:
    apps = installed("all")
    units = {u.name: parse_unit(u.text) for u in systemd_units(_settings(tmp_path), apps)}
    workers = {unit_name(a.name, w.name) for a in apps for w in a.workers}
    assert "changzhi-dispatch-monitor.service" in workers  # names as an administrator reads
    assert set(units) == {
        "changzhi-api.service",
        "changzhi-ingest.service",
        "changzhi-backup.service",
        "changzhi-backup.timer",
        "changzhi.target",
        *workers,
    }
    wanted = units["changzhi.target"]["Unit"]["Wants"][0].split()
    assert set(wanted) == set(units) - {"changzhi.target", "changzhi-backup.service"}
    assert units["changzhi-backup.timer"]["Timer"]["OnCalendar"] == ["*-*-* 02:30:00"]
    assert units["changzhi-backup.service"]["Service"]["Type"] == ["oneshot"]
    for name, unit in units.items():
        if not name.endswith(".service"):
            continue
        service = unit["Service"]
        assert service["User"] == ["changzhi"] and service["Group"] == ["changzhi"]
        assert service["EnvironmentFile"] == ["/etc/changzhi/changzhi.env"]
        assert str(tmp_path / "var") in service["ReadWritePaths"]
        argv = shlex.split(service["ExecStart"][0])
        assert Path(argv[0]).is_absolute() and os.access(argv[0], os.X_OK), argv
        if name != "changzhi-backup.service":
            assert service["Restart"] == ["on-failure"]
    ingest = shlex.split(units["changzhi-ingest.service"]["Service"]["ExecStart"][0])
    assert ingest[-3:] == ["ingest", "--workers", "2"]
    monitor = shlex.split(units["changzhi-dispatch-monitor.service"]["Service"]["ExecStart"][0])
    assert monitor[-4:] == ["deploy", "worker", "dispatch", "dispatch-monitor"]


def test_a_new_applications_workers_get_units_without_a_template(tmp_path: Path) -> None:
    def never() -> None:  # pragma: no cover - only named, not run
        raise AssertionError("a unit is written, the worker is not started")

    parking = Application(
        "parking",
        "停车",
        "Parking",
        workers=(Worker("parking-occupancy", lambda: never), Worker("sweeper", lambda: never)),
    )
    names = {u.name for u in systemd_units(_settings(tmp_path), [parking])}  # type: ignore[arg-type]
    assert {"changzhi-parking-occupancy.service", "changzhi-parking-sweeper.service"} <= names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    units = systemd_units(_settings(tmp_path), installed("all"))
    paths = write_units(units, tmp_path / "units")
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown key" not in done.stderr and "Invalid" not in done.stderr, done.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGZHI_")}
    return subprocess.run(
        [sys.executable, "-m", "apps.platform.cli", *args],
        capture_output=True,
        text=True,
        env=env | {"COLUMNS": "300"},
        cwd=REPO,
        timeout=120,
    )


def test_the_command_writes_units_and_refuses_unknown_workers(tmp_path: Path) -> None:
    done = _cli("deploy", "systemd", "--out", str(tmp_path / "out"), "--ingest-workers", "3")
    assert done.returncode == 0, done.stderr
    ingest = parse_unit((tmp_path / "out" / "changzhi-ingest.service").read_text())
    assert shlex.split(ingest["Service"]["ExecStart"][0])[-1] == "3"
    for args, says in (
        (("deploy", "worker", "nosuch", "x"), "no installed application 'nosuch'"),
        (("deploy", "worker", "dispatch", "nosuch"), "has no worker 'nosuch'"),
        (("deploy", "systemd", "--out", str(tmp_path), "--ingest-workers", "0"), "between 1"),
    ):
        bad = _cli(*args)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert says in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_the_env_example_names_only_settings_that_exist() -> None:
    """Every variable the documented .env example sets is one the platform reads."""
    from gis_core import settings as s

    example = (REPO / "deploy" / "changzhi.env.example").read_text()
    names = [
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in example.splitlines()
        if "=" in line and line.lstrip("# ").startswith("CHANGZHI_")
    ]
    assert "CHANGZHI_DATABASE_URL" in names and "CHANGZHI_MQTT_URL" in names
    known = set()
    for cls in vars(s).values():
        if isinstance(cls, type) and issubclass(cls, s.BaseSettings) and cls is not s.BaseSettings:
            prefix = cls.model_config.get("env_prefix", "")
            known |= {(prefix + field).upper() for field in cls.model_fields}
    assert set(names) <= known, set(names) - known
