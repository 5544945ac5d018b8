"""What every benchmark shares: throwaway services, the API as a real server, percentiles."""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from apps.platform.services import Throwaway, free_port, start_throwaway
from gis_core.db import migrate


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class BenchEnv:
    throwaway: Throwaway
    var_dir: Path
    jwt_secret: str

    @property
    def database_url(self) -> str:
        return self.throwaway.postgres.url

    @property
    def mqtt_url(self) -> str:
        return self.throwaway.mosquitto.url

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHANGZHI_")}
        return {
            **base,
            "CHANGZHI_DATABASE_URL": self.database_url,
            "CHANGZHI_MQTT_URL": self.mqtt_url,
            "CHANGZHI_AUTH_SECRET_KEY": self.jwt_secret,
            "CHANGZHI_VAR_DIR": str(self.var_dir),
        }


@contextmanager
def bench_services(name: str) -> Iterator[BenchEnv]:
    """Durable throwaway PostGIS and Mosquitto, migrated; all removed afterwards."""
    handle = start_throwaway(f"changzhi-bench-{name}-", durable=True)
    var_dir = handle.root / "var"
    var_dir.mkdir()
    env = BenchEnv(handle, var_dir, secrets.token_urlsafe(48))
    try:
        migrate(env.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        yield env
    finally:
        handle.services.stop()
        shutil.rmtree(handle.root, ignore_errors=True)


@contextmanager
def serve_api(env: BenchEnv) -> Iterator[str]:
    """The platform's API as a real uvicorn server (one process, as deployed per core)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "web.app:create_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env.env(),
        stdout=subprocess.DEVNULL,
        # A file, not a pipe: a server whose log nobody reads would block on a full pipe.
        stderr=(env.var_dir / "api.log").open("ab"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", proc)
        yield base
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Terminate, and kill what does not stop in time (a server stuck in a long query)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def admin_token(env: BenchEnv, api: str) -> str:
    """A bearer token of a new administrator of the bench's platform."""
    import psycopg

    from gis_core.identity import create_user

    password = secrets.token_urlsafe(12)
    with psycopg.connect(env.database_url) as conn:
        create_user(conn, username="bench", password=password, roles=["admin"], department=None)
        conn.commit()
    response = httpx.post(f"{api}/auth/token", data={"username": "bench", "password": password})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token
