"""The application seam: applications are installed by configuration alone, clashes stop the
platform with one line, the shared packages never import an application, and the schema has
one source of truth.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gis_core.application import (
    Application,
    DeviceKind,
    Installed,
    SeamError,
    TelemetryField,
    deferred,
    installed,
    load,
    shipped,
)
from gis_core.db import current_revision, engine, head_revision, migrate
from gis_core.migrations.compare import include_object
from gis_core.models import Base
from gis_core.settings import Settings
from realtime import topics
from realtime.readings import Limits, Reading, kind_rules, parse_message
from tests.support import WITH_PROBE, own_database, wait_until

REPO = Path(__file__).resolve().parents[1]
SHARED = ("gis_core", "realtime", "layers", "web", "sensors")


# ------------------------------------------------------------------ dependencies run one way


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_shared_packages_never_import_an_application() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for package in SHARED
        for path in sorted((REPO / package).rglob("*.py"))
        for line, name in _imports(path)
        if name == "apps" or name.startswith("apps.")
    ]
    assert offenders == []


def test_nothing_imports_the_command_line_as_a_library() -> None:
    cli = REPO / "apps" / "platform" / "cli.py"
    offenders = [
        f"{path.relative_to(REPO)}:{line}"
        for package in (*SHARED, "apps")
        for path in sorted((REPO / package).rglob("*.py"))
        if path != cli
        for line, name in _imports(path)
        if name == "apps.platform.cli"
    ]
    assert offenders == []


# ------------------------------------------------------------------ what is installed


def test_every_shipped_application_and_its_kinds() -> None:
    apps = load("all")
    assert apps.names == shipped()
    assert {"dispatch", "environment", "flood", "registry", "traffic", "water"} <= set(apps.names)
    # The eight kinds of the contract, each defined once, by the application that owns it.
    assert apps.kind_owner("vehicle") == "dispatch"
    assert apps.kind_owner("water_level") == apps.kind_owner("rain") == "flood"
    assert apps.kind_owner("air") == apps.kind_owner("emission") == "environment"
    assert apps.kind_owner("soil") == apps.kind_owner("water_quality") == "water"
    assert apps.kind_owner("signal") == "traffic"
    # Leaving one out removes exactly what it brings.
    without = load("all,-traffic")
    assert "traffic" not in without and "signal" not in without.kinds
    assert set(without.kinds) == set(apps.kinds) - {"signal"}


def _app(name: str, *kinds: str, layers: tuple[str, ...] = ()) -> Application:
    from gis_core.layer import Layer

    def make_layers() -> Iterator[Layer]:
        for layer_id in layers:
            yield Layer(layer_id, "x.y", "甲", "A", "Point", (), group="g")

    return Application(
        name,
        name,
        name,
        kinds=tuple(DeviceKind(k, k, k, (TelemetryField("v", "num"),)) for k in kinds),
        layers=make_layers if layers else None,
    )


def test_clashes_name_the_culprits() -> None:
    with pytest.raises(SeamError, match=r"device kind 'air' is claimed by both 'one' and 'two'"):
        Installed([_app("one", "air"), _app("two", "air")])
    with pytest.raises(SeamError, match=r"layer id 'roads2' is claimed by both 'a' and 'b'"):
        Installed([_app("a", layers=("roads2",)), _app("b", layers=("roads2",))])
    with pytest.raises(SeamError, match=r"application 'x' is claimed by both"):
        Installed([_app("x"), _app("x")])
    with pytest.raises(SeamError, match=r"'alarms' cannot be a device kind"):
        Installed([_app("a", "alarms")])
    with pytest.raises(SeamError, match=r"no application 'apps.nosuch'"):
        load("all,nosuch")
    with pytest.raises(SeamError, match=r"defines no APP"):
        load("tests.support")
    missing = Application("m", "m", "m", migrations=REPO / "tests" / "no-such-folder")
    with pytest.raises(SeamError, match=r"application 'm': its migrations folder .* is missing"):
        Installed([missing])


def test_a_layer_clashing_with_the_core_is_refused() -> None:
    from layers.catalog import builtin_catalog

    with pytest.raises(ValueError, match="'roads' is registered twice"):
        builtin_catalog(_app("roadsy", layers=("roads",)).layers())  # type: ignore[misc]


# ------------------------------------------------------------------ deferred imports

LAZY_MODULE = """
IMPORTED = True
ROUTER = object()


def register(root, *, name="probe"):
    root.append(name)
    return len(root)
"""


def test_a_deferred_target_is_imported_on_first_call_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lazy_probe.py").write_text(LAZY_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe", raising=False)
    register = deferred("lazy_probe:register")
    router = deferred("lazy_probe:ROUTER")
    assert "lazy_probe" not in sys.modules  # naming a target imports nothing
    root: list[str] = []
    # A function is called with the arguments; anything else is handed back as it is.
    assert register(root, name="seam") == 1 and root == ["seam"]
    assert "lazy_probe" in sys.modules
    assert router() is sys.modules["lazy_probe"].ROUTER
    with pytest.raises(SeamError, match=r"^lazy_probe:ROUTER is not a function"):
        router(root)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("apps.dispatch.api.router", r"^'apps\.dispatch\.api\.router' is not a target: write"),
        ("apps.dispatch:", r"is not a target"),
    ],
)
def test_a_malformed_target_is_refused_where_it_is_named(spec: str, message: str) -> None:
    with pytest.raises(SeamError, match=message):
        deferred(spec)


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        (None, "apps.nosuch_app.api:router", r"apps\.nosuch_app\.api does not import \(No module"),
        ("ROUTER = 1\n", "lazy_bad:router", r"^lazy_bad:router: lazy_bad has no 'router'$"),
        (
            "import no_such_lib\n",
            "lazy_bad:router",
            r"^lazy_bad:router: lazy_bad does not import \(No module named 'no_such_lib'\)$",
        ),
        (
            "raise RuntimeError('the gazetteer is missing')\n",
            "lazy_bad:router",
            r"^lazy_bad:router: lazy_bad does not import \(the gazetteer is missing\)$",
        ),
    ],
)
def test_a_target_that_does_not_import_is_one_line_naming_it(
    source: str | None, spec: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source is not None:
        (tmp_path / "lazy_bad.py").write_text(source, encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "lazy_bad", raising=False)
    load = deferred(spec)  # named without complaint: the target is only read when used
    with pytest.raises(SeamError, match=message) as caught:
        load()
    assert len(str(caught.value).splitlines()) == 1 and spec in str(caught.value)


def test_shipped_descriptors_resolve_their_deferred_targets() -> None:
    """Every deferred router, command group and layer list of the converted applications
    imports and is what its field promises."""
    from fastapi import APIRouter

    apps = installed("dispatch,registry,traffic,tests.seam_app")
    for application in apps:
        assert isinstance(application.router(), APIRouter), application.name
        assert callable(application.cli), application.name
    assert {layer.id for layer in apps.get("seam_probe").layers()} == {"beacon_sites"}
    assert "dispatch" in {b for a in apps for b in a.benches}


@pytest.mark.parametrize(
    ("apps", "culprit"),
    [
        ("all,nosuch", "'nosuch'"),
        ("tests.support", "tests.support"),
        ("all,tests.seam_broken", "tests.seam_broken.no_such_module:register"),
    ],
)
def test_the_command_line_refuses_a_wrong_installation_in_one_line(
    apps: str, culprit: str, tmp_path: Path
) -> None:
    env = {**os.environ, "CHANGZHI_APPS": apps, "CHANGZHI_VAR_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "apps.platform.cli", "services", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and culprit in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())


# ------------------------------------------------------------------ one source of truth


def test_autogenerate_finds_nothing_to_do_on_a_migrated_database(db_url: str, settings) -> None:
    migrate(settings.sqlalchemy_url)
    for application in installed():
        if application.models:
            __import__(application.models)
    with engine(settings.sqlalchemy_url).connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_object": include_object,
                "compare_type": True,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "\n".join(map(str, diff))


# ------------------------------------------------------------------ a new application, by config


def test_a_city_without_dispatch_loads_serves_and_ingests(settings: Settings, throwaway) -> None:
    from fastapi.testclient import TestClient

    from layers.reference.load import load_dataset
    from web.app import create_app

    with own_database(settings, "all,-dispatch", "nodispatch") as city:
        report = load_dataset(city, force=True)
        assert report.counts["iot.device"] > 0
        with psycopg.connect(city.database_url) as conn:
            kinds = {r[0] for r in conn.execute("SELECT DISTINCT kind FROM iot.device")}
            units = conn.execute("SELECT count(*), count(device_id) FROM ops.unit").fetchone()
        assert "vehicle" not in kinds and {"air", "water_level"} <= kinds
        assert units is not None and units[0] > 0 and units[1] == 0
        with TestClient(create_app(city)) as client:
            apps = client.get("/apps").json()
            assert "dispatch" not in [a["name"] for a in apps["applications"]]
            assert "vehicle" not in [k["name"] for k in apps["kinds"]]
            assert client.get("/dispatch/incidents/1").status_code == 404
            ids = [c["id"] for c in client.get("/collections").json()["collections"]]
            assert "incidents" not in ids and "districts" in ids
            assert client.get("/health").status_code == 200


def test_the_probe_is_migrated_on_its_own_branch(probe_settings: Settings) -> None:
    # The probe's branch depends on the core's head: a migrated database records the probe's.
    heads = head_revision(WITH_PROBE)
    assert "probe_0001" in heads.split(",") and "0009_road_closures" not in heads.split(",")
    assert current_revision(probe_settings.sqlalchemy_url) == heads
    with psycopg.connect(probe_settings.database_url) as conn:
        core = conn.execute("SELECT to_regclass('ref.road_closure') IS NOT NULL").fetchone()
        assert core == (True,)  # the core's newest revision is in
        assert conn.execute("SELECT count(*) FROM probe.beacon_site").fetchone() == (1,)


def test_the_probe_is_served_listed_and_mounted(probe_settings: Settings, admin_password) -> None:
    from fastapi.testclient import TestClient

    from gis_core.identity import create_user
    from web.app import create_app

    with psycopg.connect(probe_settings.database_url) as conn:
        create_user(
            conn, username="probe", password="probe-pass-1", roles=["viewer"], department=None
        )
        conn.commit()
    with TestClient(create_app(probe_settings)) as client:
        assert client.get("/seam_probe/hello").json() == {"app": "seam_probe", "sites": 1}
        token = client.post(
            "/auth/token", data={"username": "probe", "password": "probe-pass-1"}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        apps = client.get("/apps").json()
        probe = next(a for a in apps["applications"] if a["name"] == "seam_probe")
        assert probe["layers"] == ["beacon_sites"] and probe["kinds"] == ["beacon"]
        assert probe["prefix"] == "/seam_probe"
        beacon = next(k for k in apps["kinds"] if k["name"] == "beacon")
        assert beacon["app"] == "seam_probe" and beacon["thresholds"][0]["limit"] == 800
        # Its layer is a collection like any other, with its features.
        items = client.get("/collections/beacon_sites/items", headers=auth).json()
        assert [f["properties"]["name_zh"] for f in items["features"]] == ["一号信标"]
        # Its panel is served from its own folder under the console's static root.
        page = client.get("/console").text
        static = page.split('src="', 1)[1].split("/app.js", 1)[0]
        panel = client.get(f"{static}/{probe['panels'][0]['module']}")
        assert panel.status_code == 200 and "export function mount" in panel.text
        strings = client.get(f"{static}/{probe['panels'][0]['strings']}").json()
        assert strings["en"]["probe_title"] == "Seam probe"
        assert "/seam_probe/hello" in client.get("/openapi.json").json()["paths"]


def test_the_probe_has_its_command(probe_settings: Settings) -> None:
    env = {**os.environ, "CHANGZHI_APPS": WITH_PROBE}
    done = subprocess.run(
        [sys.executable, "-m", "apps.platform.cli", "seam_probe", "hello"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "seam_probe says hello" in done.stdout


def test_the_probe_kind_is_validated_by_its_own_definition() -> None:
    limits = Limits((111.5, 35.3, 114.2, 37.6), kinds=kind_rules(load(WITH_PROBE).kinds))
    now = datetime.now(UTC)
    good = parse_message(
        topics.telemetry("beacon", "B-1"),
        orjson.dumps({"ts": now.isoformat(), "lux": 12.5}),
        kinds=lambda d: "beacon",
        now=now,
        limits=limits,
    )
    assert [r.values for r in good.readings] == [{"lux": 12.5}] and not good.rejects
    bad = parse_message(
        topics.telemetry("beacon", "B-1"),
        orjson.dumps({"ts": now.isoformat(), "lux": 1001}),
        kinds=lambda d: "beacon",
        now=now,
        limits=limits,
    )
    assert [(r.reason, r.detail) for r in bad.rejects] == [
        ("bad_value", "lux: 1001 outside 0..1000")
    ]
    # Without the probe installed, the kind does not exist.
    plain = Limits((111.5, 35.3, 114.2, 37.6), kinds=kind_rules(load("all").kinds))
    unknown = parse_message(
        topics.telemetry("beacon", "B-1"),
        orjson.dumps({"ts": now.isoformat(), "lux": 1}),
        kinds=lambda d: "beacon",
        now=now,
        limits=plain,
    )
    assert [r.reason for r in unknown.rejects] == ["bad_topic"]
    assert isinstance(good.readings[0], Reading)


def test_the_probe_kind_is_ingested_and_raises_its_alarm(probe_settings: Settings) -> None:
    from realtime.ingest import IngestWorker
    from realtime.mqtt import BrokerAddress, make_client

    with psycopg.connect(probe_settings.database_url) as conn:
        conn.execute(
            "INSERT INTO iot.device (id, kind, name_zh, expected_interval_s)"
            " VALUES ('B-1', 'beacon', '一号信标', 30)"
        )
        conn.commit()
    worker = IngestWorker(
        probe_settings,
        "seam-probe",
        limits=Limits((111.5, 35.3, 114.2, 37.6), kinds=kind_rules(installed(WITH_PROBE).kinds)),
        batch_wait_s=0.02,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(worker.client.is_connected, what="worker connected")
        time.sleep(0.3)
        address = BrokerAddress.parse(probe_settings.mqtt_url)
        publisher = make_client(probe_settings.mqtt_url, "probe-pub")
        publisher.connect(address.host, address.port)
        publisher.loop_start()
        try:
            body = {
                "ts": datetime.now(UTC).isoformat(),
                "seq": 1,
                "lux": 900.0,
                "lon": 113.1,
                "lat": 36.2,
            }
            info = publisher.publish(topics.telemetry("beacon", "B-1"), orjson.dumps(body), qos=1)
            info.wait_for_publish(10)
        finally:
            publisher.disconnect()
            publisher.loop_stop()

        def stored() -> list[tuple]:
            with psycopg.connect(probe_settings.database_url) as conn:
                return conn.execute(
                    "SELECT rule, value, threshold FROM iot.alarm WHERE device_id = 'B-1'"
                ).fetchall()

        assert wait_until(stored, what="the beacon's alarm") == [("beacon.glare", 900.0, 800.0)]
        with psycopg.connect(probe_settings.database_url) as conn:
            reading = conn.execute(
                "SELECT kind, reading->>'lux' FROM iot.device_state WHERE device_id = 'B-1'"
            ).fetchone()
        assert reading == ("beacon", "900.0")
    finally:
        worker.stop()
        thread.join(10)


@pytest.mark.parametrize("module", ["gis_core.application", "gis_core.plane", "realtime.topics"])
def test_the_examples_in_the_docstrings_hold(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
