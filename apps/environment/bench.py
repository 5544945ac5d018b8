"""``changzhi bench environment``: the HJ 212 server against raw TCP, AQI throughput, plume time.

- ``hj212_packets_per_s``: loggers (one connection per outlet, each its own MN and password)
  stream real-time uploads that ask for an answer (after one first packet each, the login:
  its Argon2 password check is timed apart as ``hj212_login_s``); the server (its own
  process) parses, checks CRC and password, stores through the platform's writer, commits and
  answers. The
  rate counts packets from the first byte sent to the last answer received; ``lost`` is the
  packets sent minus the readings found in ``iot.telemetry`` afterwards.
- ``raw_tcp_packets_per_s``: the same packets, clients and machine, to a TCP server (its own
  process, asyncio like the HJ 212 server) that frames each packet by its header and length
  field and answers it with an answer of a 9014's size, without CRC, parsing or storing: the
  ceiling of the transport.
- ``hj212_parse_packets_per_s``: the HJ 212 server's own per-read work (framing, CRC, parsing,
  password, conversion, the answer) on the same packets in one thread of the bench's process,
  without the database: what bounds the server before storage does.
- ``aqi_rows_per_s``: a year of hourly rows for every air station, written to ``iot.telemetry``,
  read back to hourly means and turned into hourly and daily AQI by both editions; the rate is
  station-hours over the whole (read and both reports by both editions).
- ``plume_ms``: one release over a 200 × 200 receptor grid: weather, model, every contour and
  the affected counts (population cells and POIs of the reference data), median of runs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from apps.bench.common import bench_services
from apps.environment import airquality, hj212, registry, release
from apps.platform.services import free_port, wait_for_port

Log = Callable[[str], None]
PACKETS_PER_LOGGER = 1500
WRITE_PACKETS = 50  # packets a logger writes at once (a burst of backlog after a reconnect)
AIR_STATIONS = 30
PLUME_RUNS = 7
PASSWORD = "212212"
ANSWER_TIMEOUT_S = 300.0


def _hj212_process(url: str, port: int) -> None:
    from apps.environment.hj212_server import serve

    asyncio.run(serve(url, "127.0.0.1", port, lambda _: None))


def _raw_process(port: int) -> None:
    """The transport's ceiling, honestly framed: each packet found by its ``##`` and length
    field and its CRLF checked where the length says, then answered with an answer of a 9014's
    size, as the HJ 212 server answers; no CRC, no parsing, no storing."""
    answer = hj212.build_packet(cn=hj212.CN_DATA_ANSWER, mn="0" * 14, pw=PASSWORD,
                                st=hj212.ST_SYSTEM, qn="0" * 17, cp=hj212.CpData())  # fmt: skip

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while chunk := await reader.read(65536):
            buffer += chunk
            framed, at = 0, 0
            while (start := buffer.find(b"##", at)) >= 0 and start + 6 <= len(buffer):
                end = start + 12 + int(buffer[start + 2 : start + 6])
                if end > len(buffer):
                    break
                if buffer[end - 2 : end] == b"\r\n":
                    framed += 1
                at = end
            del buffer[:at]
            if framed:
                writer.write(answer * framed)
                await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, limit=2**16)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _packets(mn: str, count: int, t0: datetime) -> list[bytes]:
    rng = np.random.default_rng(zlib.crc32(mn.encode()))
    so2, nox = rng.uniform(5, 30, count), rng.uniform(20, 45, count)
    out = []
    for k in range(count):
        factors: dict[str, dict[str, float | str]] = {
            "a21026": {"Rtd": round(float(so2[k]), 2), "Flag": "N"},
            "a21002": {"Rtd": round(float(nox[k]), 2), "Flag": "N"},
            "a00000": {"Rtd": 180000.0, "Flag": "N"},
        }
        cp = hj212.data_cp(t0 + timedelta(seconds=30 * k), factors)
        out.append(
            hj212.build_packet(
                cn=hj212.CN_REALTIME, mn=mn, pw=PASSWORD, qn=f"{k:017d}", need_ack=True, cp=cp
            )
        )
    return out


async def _drive(port: int, streams: list[list[bytes]]) -> tuple[float, int]:
    """Send every stream on its own connection; wait for one answer per packet."""

    async def one(packets: list[bytes]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send() -> None:
            for i in range(0, len(packets), WRITE_PACKETS):
                writer.write(b"".join(packets[i : i + WRITE_PACKETS]))
                await writer.drain()

        sender = asyncio.create_task(send())
        answers = 0
        while answers < len(packets):
            try:
                chunk = await asyncio.wait_for(reader.read(65536), ANSWER_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(
                    f"a logger waited {ANSWER_TIMEOUT_S:.0f} s for an answer "
                    f"({answers} of {len(packets)} answered)"
                ) from None
            if not chunk:
                break
            answers += chunk.count(b"\r\n")
        await sender
        writer.close()
        return answers

    started = time.perf_counter()
    answered = await asyncio.gather(*(one(s) for s in streams))
    return time.perf_counter() - started, sum(answered)


def _run_server(target: Callable[..., None], *args: Any, port: int) -> Any:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    if not wait_for_port("127.0.0.1", port, 60):
        process.kill()
        raise RuntimeError(f"the bench server on port {port} did not start")
    return process


def _stop(process: Any) -> None:
    process.terminate()
    process.join(10)
    if process.is_alive():
        process.kill()
        process.join(10)


def _parse_rate(conn: psycopg.Connection, url: str, streams: list[list[bytes]]) -> float:
    """Packets a second the server's own per-read work takes in one thread, without storing:
    framing, CRC, parsing, password (each logger verified once first), conversion, answer."""
    from apps.environment.hj212_server import Directory, Server, load_outlets

    server = Server(url)  # its pool is never opened: nothing here touches the database
    outlets = load_outlets(conn)
    server.directory = Directory(lambda: outlets)
    server.directory.refresh()
    readers = [hj212.PacketReader() for _ in streams]
    for reader, stream in zip(readers, streams, strict=True):
        server.handle(stream[0], reader, "bench")
    reads = [
        (reader, b"".join(stream[i : i + WRITE_PACKETS]))
        for reader, stream in zip(readers, streams, strict=True)
        for i in range(1, len(stream), WRITE_PACKETS)
    ]
    started = time.perf_counter()
    for reader, chunk in reads:
        server.handle(chunk, reader, "bench")
    return sum(len(s) - 1 for s in streams) / (time.perf_counter() - started)


def bench_hj212(conn: psycopg.Connection, url: str, log: Log) -> dict[str, Any]:
    outlets = conn.execute(
        "SELECT id, device_id FROM env.outlet WHERE device_id IS NOT NULL ORDER BY id"
    ).fetchall()
    mns = []
    for outlet_id, _ in outlets:
        mn, _pw = registry.set_logger_password(conn, str(outlet_id), None, PASSWORD)
        mns.append(mn)
    conn.commit()
    t0 = datetime(2026, 12, 1, 0, 0)
    streams = [_packets(mn, PACKETS_PER_LOGGER, t0) for mn in mns]
    sent = sum(len(s) for s in streams)
    log(f"HJ 212: {len(mns)} loggers × {PACKETS_PER_LOGGER} packets")

    # Each logger first logs in with one packet (its password's Argon2 check, once per
    # logger for as long as the server runs), then streams the rest: the rate is the stream's.
    firsts, rests = [s[:1] for s in streams], [s[1:] for s in streams]
    timed = sum(len(s) for s in rests)
    raw_port = free_port()
    raw = _run_server(_raw_process, raw_port, port=raw_port)
    try:
        _, raw_first = asyncio.run(_drive(raw_port, firsts))
        raw_s, raw_answers = asyncio.run(_drive(raw_port, rests))
    finally:
        _stop(raw)
    hj_port = free_port()
    server = _run_server(_hj212_process, url, hj_port, port=hj_port)
    try:
        login_s, hj_first = asyncio.run(_drive(hj_port, firsts))
        hj_s, hj_answers = asyncio.run(_drive(hj_port, rests))
    finally:
        _stop(server)
    hj_answers += hj_first
    parse_rate = _parse_rate(conn, url, streams)
    raw_answers += raw_first
    devices = [d for _, d in outlets]
    first = t0.replace(tzinfo=UTC) - timedelta(hours=8)
    stored = conn.execute(
        "SELECT count(*) FROM iot.telemetry WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s",
        (devices, first, first + timedelta(seconds=30 * PACKETS_PER_LOGGER)),
    ).fetchone()
    stored_n = int(stored[0]) if stored else 0
    log(
        f"HJ 212 {timed / hj_s:,.0f} packets/s ({hj_answers} answers), raw {timed / raw_s:,.0f},"
        f" parsing alone {parse_rate:,.0f}"
    )
    return {
        "loggers": len(mns),
        "sent": sent,
        "answered": hj_answers,
        "stored": stored_n,
        "hj212_packets_per_s": round(timed / hj_s, 1),
        "raw_tcp_packets_per_s": round(timed / raw_s, 1),
        "hj212_parse_packets_per_s": round(parse_rate, 1),
        "hj212_login_s": round(login_s, 2),
        "raw_answered": raw_answers,
        "lost": sent - stored_n,
    }


def bench_aqi(conn: psycopg.Connection, log: Log) -> dict[str, Any]:
    """A year of hourly rows for AIR_STATIONS stations through the API's path."""
    rng = np.random.default_rng(633)
    devices = [f"BENCH-AIR-{i:03d}" for i in range(AIR_STATIONS)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO iot.device (id, kind, department_code, expected_interval_s)"
            " VALUES (%s, 'air', 'environment', 3600) ON CONFLICT DO NOTHING",
            [(d,) for d in devices],
        )
        start = datetime(2025, 12, 1, tzinfo=UTC) - timedelta(hours=8)
        hours = 366 * 24
        with cur.copy("COPY iot.telemetry (device_id, kind, ts, reading) FROM STDIN") as copy:
            for d in devices:
                pm25 = rng.lognormal(3.6, 0.6, hours)
                for h in range(hours):
                    ts = start + timedelta(hours=h)
                    p = float(pm25[h])
                    copy.write_row((d, "air", ts, (
                        f'{{"pm25": {p:.0f}, "pm10": {1.6 * p:.0f}, "so2": {p / 3:.0f},'
                        f' "no2": {p / 2 + 10:.0f}, "o3": {120 - p / 2 if p < 200 else 20:.0f},'
                        f' "co": {p / 80:.1f}}}'
                    )))  # fmt: skip
    conn.commit()
    log(f"AQI: {AIR_STATIONS} stations × {hours} hours written")
    first_day = datetime(2025, 12, 2).date()
    last_day = first_day + timedelta(days=364)
    started = time.perf_counter()
    series = airquality.fetch_hourly(conn, "station", first_day, last_day)
    read_s = time.perf_counter() - started
    counted = 0
    computing = time.perf_counter()
    for period in airquality.PERIODS:
        for standard in (airquality.aqi.HJ633_2012, airquality.aqi.HJ633_2026):
            results, _ = airquality.compute(series, period, standard)
            counted += sum(int(np.isfinite(r.aqi).sum()) for r, _m in results.values())
    total_s = time.perf_counter() - started
    compute_s = time.perf_counter() - computing
    rows = len(series.entities) * (series.hours - airquality.WARMUP_HOURS)
    log(f"AQI: {rows:,} station-hours in {total_s:.2f} s (read {read_s:.2f} s)")
    return {
        "aqi_station_hours": rows,
        "aqi_results": counted,
        "aqi_read_s": round(read_s, 2),
        "aqi_rows_per_s": round(rows / total_s, 1),
        "aqi_compute_rows_per_s": round(rows / compute_s, 1),
    }


def bench_plume(conn: psycopg.Connection, log: Log) -> dict[str, Any]:
    lon, lat = conn.execute(
        "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) AS c FROM ref.admin_area"
        " WHERE level = 'city') x"
    ).fetchone() or (None, None)
    if lon is None:
        return {"plume_ms": None, "note": "no city boundary loaded"}
    spec = release.Release(
        lon=lon, lat=lat, emission_gs=200.0, height_m=60.0, diameter_m=2.5,
        exit_velocity_ms=12.0, exit_temp_c=140.0, wind_ms=2.5, wind_from_deg=315.0,
        temp_c=5.0, cloud_oktas=3.0, at=datetime(2026, 12, 1, 4, tzinfo=UTC),
        thresholds=(1.0, 10.0, 50.0, 150.0), cells=200, half_width_m=10_000.0,
    )  # fmt: skip
    times, model_times = [], []
    result: dict[str, Any] = {}
    for _ in range(PLUME_RUNS):
        started = time.perf_counter()
        result = release.simulate(conn, spec)
        times.append((time.perf_counter() - started) * 1000)
        model_times.append(result["model_ms"])
    affected = [f["properties"]["population"] for f in result["features"]]
    log(f"plume: {statistics.median(times):.1f} ms (model {statistics.median(model_times):.1f})")
    return {
        "plume_ms": round(statistics.median(times), 1),
        "plume_model_ms": round(statistics.median(model_times), 1),
        "plume_population_by_threshold": affected,
    }


def bench_environment(log: Log, **_: Any) -> dict[str, Any]:
    from gis_core.settings import (
        AuthSettings,
        DatabaseSettings,
        DataSettings,
        MqttSettings,
        PlatformSettings,
        Settings,
    )
    from layers.reference.load import load_dataset

    with bench_services("environment") as env:
        settings = Settings(
            platform=PlatformSettings(var_dir=env.var_dir),
            database=DatabaseSettings(url=env.database_url),
            mqtt=MqttSettings(url=env.mqtt_url),
            auth=AuthSettings(secret_key=env.jwt_secret),
            data=DataSettings(scale=0.1, dem_resolution_m=1000.0),
        )
        log("loading the reference data (10 % scale)")
        load_dataset(settings, force=True, progress=log)
        with psycopg.connect(env.database_url) as conn:
            out: dict[str, Any] = {"bench": "environment"}
            out.update(bench_hj212(conn, env.database_url, log))
            out.update(bench_plume(conn, log))
            out.update(bench_aqi(conn, log))
    out["notes"] = [
        "shared, loaded machine: the figures vary run to run",
        "HJ 212 server and raw TCP server each in their own process, clients in the bench's",
        "reference data at 10 % scale (outlets, population cells, POIs)",
        "HJ 212 rates are of the streams after each logger's first packet; the first packets "
        "(one Argon2 password check per logger) take hj212_login_s together",
    ]
    return out
