"""Test harness: a throwaway PostGIS cluster and Mosquitto on free ports, for the session.

Nothing here uses ports 5432/1883 or any server already running on the machine, and nothing
skips: a test that needs a service fails loudly if the service cannot be started.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.platform.services import Throwaway, start_throwaway
from gis_core.db import migrate
from gis_core.settings import (
    AuthSettings,
    DatabaseSettings,
    DataSettings,
    MqttSettings,
    PlatformSettings,
    Settings,
)
from tests.support import WITH_PROBE, own_database

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

# The developer's own configuration must not leak into the tests.
for key in list(os.environ):
    if key.startswith("CHANGZHI_"):
        del os.environ[key]


@pytest.fixture(scope="session")
def throwaway() -> Iterator[Throwaway]:
    handle = start_throwaway("changzhi-test-")
    try:
        yield handle
    finally:
        handle.services.stop()
        shutil.rmtree(handle.root, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(throwaway: Throwaway, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    var_dir = tmp_path_factory.mktemp("var")
    return Settings(
        platform=PlatformSettings(var_dir=var_dir),
        database=DatabaseSettings(url=throwaway.postgres.url),
        mqtt=MqttSettings(url=throwaway.mosquitto.url),
        auth=AuthSettings(secret_key=secrets.token_urlsafe(48)),
        # A small city: 5% of the synthetic objects and a 1 km DEM keep the suite quick.
        data=DataSettings(scale=0.05, dem_resolution_m=1000.0),
    )


@pytest.fixture(scope="session")
def db_url(settings: Settings) -> str:
    migrate(settings.sqlalchemy_url)
    return settings.database_url


@pytest.fixture(scope="session")
def reference(db_url: str, settings: Settings) -> object:
    """The reference dataset, loaded once for the session."""
    from layers.reference.load import load_dataset

    return load_dataset(settings, force=True)  # other modules may have written live rows


@pytest.fixture(scope="session")
def api(db_url: str, settings: Settings) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from web.app import create_app

    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def admin_password(db_url: str) -> str:
    from gis_core.db import connect
    from gis_core.identity import create_user

    password = secrets.token_urlsafe(12)
    with connect(db_url) as conn:
        create_user(
            conn, username="root-admin", password=password, roles=["admin"], department="command"
        )
        conn.commit()
    return password


@pytest.fixture(scope="session")
def admin_headers(api: object, admin_password: str) -> dict[str, str]:
    response = api.post(  # type: ignore[attr-defined]
        "/auth/token", data={"username": "root-admin", "password": admin_password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def probe_settings(settings: Settings, throwaway: Throwaway) -> Iterator[Settings]:
    """The platform with the seam probe installed, on a database of its own (its migration
    branch must not reach the other tests' database)."""
    with own_database(settings, WITH_PROBE, "probe") as probe:
        yield probe
