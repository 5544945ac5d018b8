"""Test harness: a throwaway PostGIS cluster and Mosquitto on free ports, for the session.

Nothing here uses ports 5432/1883 or any server already running on the machine, and nothing
skips: a test that needs a service fails loudly if the service cannot be started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.platform.services import (
    EmbeddedServices,
    Mosquitto,
    Postgres,
    free_port,
    service_account,
)
from gis_core.db import migrate
from gis_core.settings import (
    AuthSettings,
    DatabaseSettings,
    MqttSettings,
    PlatformSettings,
    Settings,
)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

# The developer's own configuration must not leak into the tests.
for key in list(os.environ):
    if key.startswith("CHANGZHI_"):
        del os.environ[key]


@dataclass
class Throwaway:
    root: Path
    services: EmbeddedServices

    @property
    def postgres(self) -> Postgres:
        assert self.services.postgres is not None
        return self.services.postgres

    @property
    def mosquitto(self) -> Mosquitto:
        assert self.services.mosquitto is not None
        return self.services.mosquitto


def start_throwaway(prefix: str) -> Throwaway:
    account = service_account("changzhi")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o755)  # the unprivileged server account must reach it
    services = EmbeddedServices(
        Postgres(
            root=root,
            port=free_port(),
            password=secrets.token_urlsafe(12),
            account=account,
            # Durability is not under test here; speed is welcome.
            settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
        ),
        Mosquitto(
            root=root,
            port=free_port(),
            platform_password=secrets.token_urlsafe(12),
            account=account,
        ),
    )
    services.start()
    return Throwaway(root, services)


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
    )


@pytest.fixture(scope="session")
def db_url(settings: Settings) -> str:
    migrate(settings.sqlalchemy_url)
    return settings.database_url


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
