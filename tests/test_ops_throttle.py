"""Login throttling: slowed then refused (429, Retry-After) per address and per account,
audited, refused without hashing, shared by several API processes through the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gis_core import identity
from gis_core.db import connect
from gis_core.identity import create_user
from gis_core.settings import AuthSettings, Settings
from gis_core.throttle import ThrottleError, ThrottlePolicy, throttle_keys
from web.app import create_app

PASSWORD = "correct horse battery staple"


def test_lock_grows_from_one_second_and_stops_at_the_lockout() -> None:
    policy = ThrottlePolicy(free_failures=5, window_s=900, lockout_s=900)
    failures = np.array([0, 4, 5, 6, 7, 8, 15, 16, 10_000])
    # 5 free; the 6th locks 1 s, then doubling: 2, 4, ... 512 (15th); 1024 > 900 is capped.
    expected = [0, 0, 0, 1, 2, 4, 512, 900, 900]
    assert policy.lock_seconds(failures).tolist() == expected
    slower = ThrottlePolicy(free_failures=1, first_lock_s=10, lockout_s=30)
    assert slower.lock_seconds(np.array([1, 2, 3, 4])).tolist() == [0, 10, 20, 30]
    with pytest.raises(ThrottleError, match="negative"):
        policy.lock_seconds(np.array([-1]))


def test_a_first_lock_longer_than_the_lockout_is_refused() -> None:
    with pytest.raises(ValueError, match="FIRST_LOCK_S cannot exceed"):
        AuthSettings(throttle_first_lock_s=60, throttle_lockout_s=30)


def test_keys_name_the_address_and_the_account_whatever_its_case() -> None:
    assert throttle_keys("10.0.0.7", " Root-Admin ") == ["addr:10.0.0.7", "user:root-admin"]
    assert throttle_keys(None, "x") == ["user:x"]


@pytest.fixture(scope="module")
def throttled_settings(settings: Settings) -> Settings:
    return Settings(
        platform=settings.platform,
        database=settings.database,
        mqtt=settings.mqtt,
        auth=AuthSettings(
            secret_key=settings.auth.secret_key,
            throttle_free_failures=2,
            throttle_window_s=60,
            throttle_first_lock_s=10,  # long enough to see under any load; time is moved
            throttle_lockout_s=30,
        ),
    )


@pytest.fixture(scope="module")
def apps(throttled_settings: Settings, db_url: str) -> Iterator[list[Any]]:
    """Two API processes' worth of application (each its own pool) on one database."""
    with ExitStack() as stack:
        yield [stack.enter_context(TestClient(create_app(throttled_settings))) for _ in range(2)]


@pytest.fixture
def account(db_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"throttle-{request.node.name[-20:]}".replace("[", "-").replace("]", "")
    with connect(db_url) as conn:
        create_user(conn, username=name, password=PASSWORD, roles=["viewer"], department=None)
        conn.commit()
    yield name
    with connect(db_url) as conn:
        conn.execute("DELETE FROM auth.login_throttle")  # the audit trail keeps the account
        conn.commit()


def retry_after_s(response: Any) -> int:
    # Whole seconds, rounded up: one less when a second has begun since the lock (a slow box).
    return int(response.headers["Retry-After"])


def unlock_everything(db_url: str) -> None:
    """As if the locks had run out (rather than sleeping through them)."""
    with connect(db_url) as conn:
        conn.execute("UPDATE auth.login_throttle SET blocked_until = now()")
        conn.commit()


def login(app: Any, address: str, username: str, password: str) -> Any:
    app._transport.client = (address, 40000)  # the caller's address, as the proxy gives it
    return app.post("/auth/token", data={"username": username, "password": password})


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts Argon2 verifications (the real function still runs)."""
    calls = [0]
    real = identity.verify_password

    def counting(password_hash: str, password: str) -> bool:
        calls[0] += 1
        return real(password_hash, password)

    monkeypatch.setattr(identity, "verify_password", counting)
    return calls


def test_an_account_is_slowed_then_refused_without_hashing_and_audited(
    apps: list[Any], account: str, hashes: list[int], db_url: str
) -> None:
    api = apps[0]
    for _ in range(2):  # the free failures
        assert login(api, "10.1.0.1", account, "wrong").status_code == 401
    assert login(api, "10.1.0.1", account, "wrong").status_code == 401  # 3rd: locks 10 s
    assert hashes[0] == 3
    refused = login(api, "10.1.0.2", account, PASSWORD)  # another address, the right password
    assert refused.status_code == 429
    assert retry_after_s(refused) in {9, 10}
    assert "too many failed logins" in refused.json()["detail"]
    assert hashes[0] == 3, "a refused attempt must not cost a hash"
    with connect(db_url) as conn:
        audited = conn.execute(
            "SELECT client, detail->>'username' FROM auth.audit_log"
            " WHERE action = 'login_throttled' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert audited == ("10.1.0.2", account)
    unlock_everything(db_url)
    assert login(api, "10.1.0.2", account, "wrong").status_code == 401  # 4th: locks 20 s
    refused = login(api, "10.1.0.3", account, PASSWORD)
    assert refused.status_code == 429 and retry_after_s(refused) in {19, 20}
    unlock_everything(db_url)
    assert login(api, "10.1.0.3", account, "wrong").status_code == 401  # 5th: 40 s, capped
    refused = login(api, "10.1.0.3", account, PASSWORD)
    assert refused.status_code == 429 and retry_after_s(refused) in {29, 30}
    unlock_everything(db_url)
    assert login(api, "10.1.0.3", account, PASSWORD).status_code == 200
    # The success cleared the account: two more failures are free again.
    for _ in range(2):
        assert login(api, "10.1.0.4", account, "wrong").status_code == 401
    assert login(api, "10.1.0.4", account, PASSWORD).status_code == 200


def test_an_address_is_refused_by_every_api_process(
    apps: list[Any], account: str, hashes: list[int]
) -> None:
    first, second = apps
    for n in range(3):  # three accounts, none existing, one address
        assert login(first, "10.2.0.9", f"nobody-{n}", "guess").status_code == 401
    refused = login(second, "10.2.0.9", account, PASSWORD)
    assert refused.status_code == 429, "the other process sees the lock"
    assert hashes[0] == 3  # the unknown accounts cost a dummy hash each; the refusal none
    assert login(second, "10.2.0.10", account, PASSWORD).status_code == 200


def test_failures_further_apart_than_the_window_start_afresh(
    apps: list[Any], account: str, db_url: str
) -> None:
    api = apps[0]
    for _ in range(2):
        assert login(api, "10.3.0.1", account, "wrong").status_code == 401
    with connect(db_url) as conn:  # the last failure just beyond the 60 s window
        conn.execute(
            "UPDATE auth.login_throttle SET last_failure_at = now() - interval '61 seconds'"
        )
        conn.commit()
    assert login(api, "10.3.0.1", account, "wrong").status_code == 401  # 1st again: free
    assert login(api, "10.3.0.1", account, PASSWORD).status_code == 200
