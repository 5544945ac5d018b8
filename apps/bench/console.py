"""`bench console`: the command console in headless Chromium with 10,000 units moving live.

The page is measured as a dispatcher would use it: logged in, the whole city on screen, every
unit reporting once a second. Figures: requestAnimationFrame intervals over at least 30 s
(p50/p95, in ms), the WebSocket bytes per second the page receives, and the same with 50,000
units for the "still usable" bound.

The units' states are published on the platform's live topic (``cz/v1/platform/live``), the
announcement the ingest workers make after each committed batch: this measures the page and
the API's fan-out, not ingest (which `bench ingest` measures) — the output says so with
``"feed": "live-topic"``.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from apps.bench.common import BenchEnv, bench_services, serve_api
from gis_core.settings import REPO_ROOT
from realtime.ingest import LIVE_TOPIC
from realtime.mqtt import BrokerAddress, make_client

Log = Callable[[str], None]

CONSOLE_DIR = REPO_ROOT / "web" / "console"
BENCH_SCRIPT = Path(__file__).with_name("console_bench.mjs")
CITY_CENTER = (113.11, 36.19)
UNIT_STATUSES = ("available", "available", "dispatched", "en_route", "en_route", "on_scene")


class LiveFeeder:
    """Moving units published as live announcements, every unit once per ``period`` seconds,
    spread over ``slices`` messages so the load is even (as many ingest batches would be).

    The movement is computed with numpy over a whole slice: at 50,000 units a unit-by-unit
    loop in Python could not keep up on a small machine, and the bench would have measured
    its own feeder."""

    def __init__(
        self,
        mqtt_url: str,
        units: list[tuple[str, str, float, float]],
        *,
        period: float = 1.0,
        slices: int = 10,
        seed: int = 7,
    ) -> None:
        self.mqtt_url = mqtt_url
        self.period = period
        self.slices = max(1, slices)
        rng = np.random.default_rng(seed)
        n = len(units)
        self.ids = [u[0] for u in units]
        self.kinds = [u[1] for u in units]
        self.lon = np.array([u[2] for u in units], dtype=float)
        self.lat = np.array([u[3] for u in units], dtype=float)
        self.heading = rng.uniform(0, 360, n)
        self.speed = rng.uniform(20, 70, n)
        self.status = [UNIT_STATUSES[k] for k in rng.integers(0, len(UNIT_STATUSES), n)]
        self.battery = rng.uniform(40, 100, n)
        self.vehicle = np.array([k == "vehicle" for k in self.kinds], dtype=bool)
        self.rng = rng
        self.published = 0
        self.messages = 0
        self.started_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = make_client(mqtt_url, "console-feed")

    def step(self, idx: np.ndarray, dt: float) -> None:
        """Move the vehicles among ``idx`` along their headings for ``dt`` seconds, turning
        now and then, and back towards the centre when far out."""
        idx = idx[self.vehicle[idx]]
        turn = idx[self.rng.random(len(idx)) < 0.05]
        self.heading[turn] = (self.heading[turn] + self.rng.uniform(-60, 60, len(turn))) % 360
        metres = self.speed[idx] / 3.6 * dt
        rad = np.radians(self.heading[idx])
        self.lat[idx] += metres * np.cos(rad) / 111_320
        self.lon[idx] += metres * np.sin(rad) / (111_320 * np.cos(np.radians(self.lat[idx])))
        dx, dy = CITY_CENTER[0] - self.lon[idx], CITY_CENTER[1] - self.lat[idx]
        out = (np.abs(dx) > 0.8) | (np.abs(dy) > 0.6)
        self.heading[idx[out]] = np.degrees(np.arctan2(dx[out], dy[out])) % 360
        self.battery[idx] = np.maximum(5.0, self.battery[idx] - 0.001)

    def states(self, idx: np.ndarray, ts_ms: int) -> list[list[Any]]:
        """The live states of units ``idx`` at ``ts_ms``, as the ingest workers announce them."""
        lon = np.round(self.lon[idx], 6).tolist()
        lat = np.round(self.lat[idx], 6).tolist()
        speed = np.round(self.speed[idx], 1).tolist()
        heading = np.round(self.heading[idx]).astype(int).tolist()
        battery = np.round(self.battery[idx]).astype(int).tolist()
        out: list[list[Any]] = []
        for k, i in enumerate(idx.tolist()):
            if self.kinds[i] != "vehicle":
                pm25 = round(30 + 60 * (1 + math.sin(ts_ms / 60_000 + i)) / 2, 1)
                out.append(
                    [self.ids[i], self.kinds[i], lon[k], lat[k], ts_ms, None, {"pm25": pm25}]
                )
                continue
            status = self.status[i]
            reading = {"status": status, "speed_kmh": speed[k], "heading_deg": heading[k],
                       "battery_pct": battery[k]}  # fmt: skip
            out.append([self.ids[i], "vehicle", lon[k], lat[k], ts_ms, status, reading])
        return out

    def publish_once(self, slice_no: int | None = None) -> None:
        """Publish one slice (or every unit, when ``slice_no`` is None) right now."""
        ts = int(time.time() * 1000)
        n = len(self.ids)
        idx = np.arange(n) if slice_no is None else np.arange(slice_no, n, self.slices)
        self.step(idx, self.period)
        states = self.states(idx, ts)
        payload = orjson.dumps({"states": states, "online": []})
        self.client.publish(LIVE_TOPIC, payload, qos=0)
        self.published += len(states)
        self.messages += 1

    def rate(self) -> float:
        """States published per second of wall time since start (what was really offered)."""
        elapsed = time.monotonic() - self.started_at
        return self.published / elapsed if self.started_at and elapsed > 0 else 0.0

    def connect(self) -> None:
        address = BrokerAddress.parse(self.mqtt_url)
        self.client.connect(address.host, address.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + 10
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("live feed: the broker did not accept the platform account")
            time.sleep(0.05)

    def _run(self) -> None:
        step = self.period / self.slices
        next_at = time.monotonic()
        k = 0
        while not self._stop.is_set():
            self.publish_once(k % self.slices)
            k += 1
            next_at += step
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        self.connect()
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()


def synthetic_units(n: int, seed: int = 11) -> list[tuple[str, str, float, float]]:
    """``n`` vehicles scattered over the city, denser downtown."""
    rnd = random.Random(seed)
    units = []
    for i in range(n):
        if rnd.random() < 0.6:
            lon = rnd.gauss(CITY_CENTER[0], 0.08)
            lat = rnd.gauss(CITY_CENTER[1], 0.06)
        else:
            lon = rnd.uniform(112.1, 113.6)
            lat = rnd.uniform(35.9, 37.0)
        units.append((f"BV-{i:05d}", "vehicle", lon, lat))
    return units


def ensure_node_modules(log: Log) -> None:
    if not (CONSOLE_DIR / "node_modules" / "playwright-core").is_dir():
        log("installing playwright-core (the library only; the system Chromium is used)")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=CONSOLE_DIR, check=True
        )


def create_bench_user(env: BenchEnv) -> tuple[str, str]:
    from gis_core.db import connect
    from gis_core.identity import create_user

    password = secrets.token_urlsafe(12)
    with connect(env.database_url) as conn:
        create_user(
            conn, username="bench-dispatcher", password=password, roles=["dispatcher"],
            department=None,
        )  # fmt: skip
        conn.commit()
    return "bench-dispatcher", password


def measure_page(
    base: str, username: str, password: str, units: int, seconds: float, log: Log
) -> dict[str, Any]:
    """Run the node/Playwright measurement and return its figures."""
    user_data = Path(os.environ.get("TMPDIR", "/tmp")) / f"cz-bench-chromium-{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "CONSOLE_URL": f"{base}/console",
        "CONSOLE_USER": username,
        "CONSOLE_PASSWORD": password,
        "BENCH_UNITS": str(units),
        "BENCH_SECONDS": str(seconds),
        "CHROMIUM_USER_DATA": str(user_data),
    }
    try:
        proc = subprocess.run(
            ["node", str(BENCH_SCRIPT)],
            cwd=CONSOLE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds + 240,
        )
    finally:
        shutil.rmtree(user_data, ignore_errors=True)
    for line in proc.stderr.splitlines()[-20:]:
        log(f"page: {line}")
    if proc.returncode != 0:
        raise RuntimeError(f"the console measurement failed: {proc.stderr[-800:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def run_level(
    env: BenchEnv, base: str, user: tuple[str, str], units: int, seconds: float, log: Log
) -> dict[str, Any]:
    feeder = LiveFeeder(env.mqtt_url, synthetic_units(units))
    feeder.start()
    try:
        time.sleep(2.0)  # the hub has every unit before the page opens
        log(f"{units:,} units at 1 Hz: measuring the page for {seconds:.0f} s")
        figures = measure_page(base, user[0], user[1], units, seconds, log)
    finally:
        feeder.stop()
    figures["published_states_per_s"] = round(feeder.rate())
    return figures


def load_city(env: BenchEnv, log: Log) -> None:
    """The reference city, small (5 % of synthetic objects, 1 km relief): the page draws a real
    base map and catalog layers under the fleet, not an empty canvas."""
    from gis_core.settings import (
        AuthSettings,
        DatabaseSettings,
        DataSettings,
        MqttSettings,
        PlatformSettings,
        Settings,
    )
    from layers.reference.load import load_dataset

    log("loading the reference city (small) for the base map")
    settings = Settings(
        platform=PlatformSettings(var_dir=env.var_dir),
        database=DatabaseSettings(url=env.database_url),
        mqtt=MqttSettings(url=env.mqtt_url),
        auth=AuthSettings(secret_key=env.jwt_secret),
        data=DataSettings(scale=0.05, dem_resolution_m=1000.0),
    )
    load_dataset(settings, force=True)


def bench_console(log: Log, units: int = 10_000, seconds: float = 30.0) -> dict[str, Any]:
    ensure_node_modules(log)
    with bench_services("console") as env:
        load_city(env, log)
        with serve_api(env) as base:
            user = create_bench_user(env)
            main = run_level(env, base, user, units, seconds, log)
            heavy = run_level(env, base, user, units * 5, min(seconds, 20.0), log)
    return {
        "bench": "console",
        "units": units,
        "frame_p50_ms": main["frame_p50_ms"],
        "frame_p95_ms": main["frame_p95_ms"],
        "ws_bytes_per_s": main["ws_bytes_per_s"],
        "states_per_s": main.get("states_per_s"),
        "published_states_per_s": main["published_states_per_s"],
        "feed": "live-topic",
        "seconds": main["seconds"],
        "frames": main["frames"],
        "drawn_units": main["drawn_units"],
        "long_tasks": main.get("long_tasks"),
        "renderer": main.get("renderer"),
        "heavy_units": units * 5,
        "heavy_frame_p50_ms": heavy["frame_p50_ms"],
        "heavy_frame_p95_ms": heavy["frame_p95_ms"],
        "heavy_ws_bytes_per_s": heavy["ws_bytes_per_s"],
        "heavy_states_per_s": heavy.get("states_per_s"),
        "heavy_published_states_per_s": heavy["published_states_per_s"],
        "heavy_drawn_units": heavy["drawn_units"],
    }
