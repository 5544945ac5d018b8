"""`bench ingest`, `bench ingest-batch` and `bench latency`: MQTT to PostGIS, measured end to end
on this machine with the broker, the database and the workers all on it.

- ingest: single-reading messages at QoS 1 from many devices, publish to committed, with lost
  and duplicated counts, beside the raw broker rate (``mosquitto_sub`` reading a stream of the
  same messages, in the same run);
- ingest-batch: gateway batches, readings per second, beside a plain ``COPY`` of the same rows
  into a table with the same indexes;
- latency: publish to WebSocket delivery at a fixed rate, p50/p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from apps.bench.common import (
    BenchEnv,
    admin_token,
    bench_services,
    median,
    percentile,
    serve_api,
)
from realtime.mqtt import BrokerAddress

Log = Callable[[str], None]
CENTER = (113.11, 36.19)


def register_devices(
    env: BenchEnv, count: int, kind: str = "vehicle", prefix: str = "B"
) -> list[str]:
    ids = [f"{prefix}-{i:05d}" for i in range(count)]
    with psycopg.connect(env.database_url) as conn:
        with conn.cursor().copy("COPY iot.device (id, kind, expected_interval_s) FROM STDIN") as cp:
            for device_id in ids:
                cp.write_row((device_id, kind, 3600))
        conn.commit()
    return ids


def _publisher(
    url: str,
    topics: list[str],
    count: int,
    start_seq: int,
    rate: float,
    batch: int,
    ready: Any,
    go: Any,
    done: Any,
) -> None:
    """A publishing process: ``count`` messages round-robin over ``topics`` (QoS 1), each one
    encoded when its slice is due (its ``ts`` is the time it is sent). It starts, connects and
    says so on ``ready``, then waits for ``go``: a process's start-up is not the platform's time.
    """
    from apps.bench.loadgen import LeanPublisher, encode_publish

    address = BrokerAddress.parse(url)
    publisher = LeanPublisher(
        address.host, address.port, address.username, address.password, f"benchpub-{os.getpid()}"
    )
    if batch > 1:
        # gateway: the topic is the gateway's, the body carries its devices' readings. A real
        # gateway builds its body elsewhere; here the body is made once per gateway and only
        # its time and counter are filled in, so the generator takes little of the two cores.
        wire_topics = [_wire(f"cz/v1/gateway/{t}/telemetry") for t in topics]
        bodies = [
            orjson.dumps(
                {
                    f"{t}-{d}": [{"ts": _TS_MARK, "seq": _SEQ_MARK, "pm25": 30.0}]
                    for d in range(batch)
                }
            )
            for t in topics
        ]
    else:
        wire_topics = [_wire(t) for t in topics]
    ready.put(os.getpid())
    go.wait()
    cpu0 = time.process_time()
    sent = 0
    t0 = time.perf_counter()
    # At a stated rate, slices of 10 ms: thousands of devices reporting at their own moments
    # make a smooth stream, not a burst every tenth of a second.
    slice_size = max(1, min(500, int(rate * 0.01))) if rate > 0 else 500
    while sent < count:
        n = min(slice_size, count - sent)
        now_ms = int(time.time() * 1000)
        packets = []
        for k in range(sent, sent + n):
            seq = start_seq + k
            if batch > 1:
                payload = (
                    bodies[k % len(bodies)]
                    .replace(b"%d" % _TS_MARK, b"%d" % now_ms)
                    .replace(b"%d" % _SEQ_MARK, b"%d" % seq)
                )
            else:
                payload = orjson.dumps(
                    {
                        "ts": now_ms,
                        "seq": seq,
                        "lon": CENTER[0] + (seq % 997) * 1e-4,
                        "lat": CENTER[1] + (seq % 991) * 1e-4,
                        "speed_kmh": 30.0,
                    }
                )
            packets.append(
                encode_publish(wire_topics[k % len(wire_topics)], payload, k % 65535 + 1)
            )
        publisher.publish_many(packets)
        sent += n
        if rate > 0:
            ahead = sent / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
    publisher.wait_acked(120)
    elapsed = time.perf_counter() - t0
    publisher.close()
    done.put((sent, elapsed, time.process_time() - cpu0))


_TS_MARK = -7_777_777_777_777  # placeholders no real time or counter can equal
_SEQ_MARK = -8_888_888_888_888


def _wire(topic: str) -> bytes:
    raw = topic.encode()
    return len(raw).to_bytes(2, "big") + raw


@dataclass(frozen=True)
class Published:
    sent: int
    started: float  # perf_counter() when the publishers were told to go
    seconds: float  # of the slowest publisher, to its last acknowledgement
    cpu_s: float  # the publishers' CPU while publishing (their start-up excluded)
    last_seq: dict[str, int]  # the last counter sent on each topic


def _last_seqs(topics: list[str], count: int, start_seq: int) -> dict[str, int]:
    """What ``_publisher`` sends last on each of its topics (round-robin, seq = start + k)."""
    last: dict[str, int] = {}
    for k in range(max(0, count - len(topics)), count):
        last[topics[k % len(topics)]] = start_seq + k
    return last


def publish(
    url: str,
    topics: list[str],
    total: int,
    *,
    processes: int = 2,
    rate: float = 0,
    batch: int = 1,
    seq_base: int = 0,
    on_start: Callable[[], None] | None = None,
) -> Published:
    """Publish ``total`` messages from ``processes`` processes, all started and connected
    before any sends (``on_start`` runs just before they are told to go)."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, done = ctx.Queue(), ctx.Event(), ctx.Queue()
    share = total // processes
    procs = []
    last_seq: dict[str, int] = {}
    for p in range(processes):
        mine = topics[p::processes] or topics
        n = share if p < processes - 1 else total - share * (processes - 1)
        for topic, seq in _last_seqs(mine, n, seq_base + p * 10**9).items():
            last_seq[topic] = max(seq, last_seq.get(topic, seq))
        proc = ctx.Process(
            target=_publisher,
            args=(url, mine, n, seq_base + p * 10**9, rate / processes, batch, ready, go, done),
        )
        proc.start()
        procs.append(proc)
    for _ in procs:
        ready.get(timeout=120)
    if on_start is not None:
        on_start()
    started = time.perf_counter()
    go.set()
    results = [done.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(30)
    return Published(
        sent=sum(r[0] for r in results),
        started=started,
        seconds=max(r[1] for r in results),
        cpu_s=sum(r[2] for r in results),
        last_seq=last_seq,
    )


@contextmanager
def workers(env: BenchEnv, count: int) -> Iterator[list[int]]:
    """``count`` ingest worker processes; yields their pids."""
    import psutil

    from realtime.ingest import spawn_workers

    before = {p.pid for p in psutil.Process().children()}
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.env().items() if k.startswith("CHANGZHI_")})
    try:
        stops = spawn_workers(count, prefix="bench")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        time.sleep(2.0)  # connected and subscribed
        pids = [
            p.pid
            for p in psutil.Process().children()
            if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())
        ]
        yield pids
    finally:
        for stop in stops:
            stop()


def cpu_meter(env: BenchEnv, worker_pids: list[int]) -> Any:
    """Where the CPU goes: the broker, the database (postmaster and backends), the workers."""
    from apps.bench.cpu import CpuMeter

    def postgres() -> list[int]:
        pid_file = env.throwaway.postgres.data_dir / "postmaster.pid"
        return [int(pid_file.read_text().split()[0])]

    def broker() -> list[int]:
        pid = env.throwaway.mosquitto.pid()
        return [pid] if pid else []

    return CpuMeter({"broker": broker, "database": postgres, "workers": lambda: worker_pids})


def cpu_breakdown(
    spent: dict[str, float], publishers_s: float, messages: int, cores: int
) -> dict[str, Any]:
    """CPU µs per message by part, and the rate those costs allow on ``cores`` cores."""
    per = {name: seconds / messages * 1e6 for name, seconds in spent.items()}
    per["publishers"] = publishers_s / messages * 1e6
    total = sum(per.values())
    return {
        "cpu_us_per_msg": {name: round(us, 1) for name, us in per.items()},
        "cpu_us_per_msg_total": round(total, 1),
        "cpu_bound_msgs_per_s": round(cores * 1e6 / total) if total else None,
        "cores": cores,
    }


def stored_rows(conn: psycopg.Connection, like: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM iot.telemetry WHERE device_id LIKE %s", (like,)
    ).fetchone()
    conn.commit()
    return int(row[0]) if row else 0


LAST_REACHED = """
SELECT count(*) FROM unnest(%s::text[], %s::bigint[]) AS f(device_id, seq)
JOIN iot.device_state st ON st.device_id = f.device_id AND st.seq >= f.seq
"""


def wait_stored(
    env: BenchEnv, like: str, expected: int, last: dict[str, int], timeout: float
) -> tuple[int, float]:
    """Wait until ``expected`` rows are stored; (rows, when the last of them was seen).

    Counting the history is a scan of everything stored so far, too heavy to repeat often
    while the platform is being measured. So the finish is watched on the live state, a row
    per device: once every device's state has reached the last counter sent to it (``last``),
    the history is counted, and again until it is complete or stops growing (then what is
    missing is lost)."""
    devices, seqs = list(last), list(last.values())
    deadline = time.monotonic() + timeout
    with psycopg.connect(env.database_url) as conn:
        reached, seen_at, moved_at = -1, time.perf_counter(), time.perf_counter()
        while time.monotonic() < deadline and seen_at - moved_at < 20:
            row = conn.execute(LAST_REACHED, (devices, seqs)).fetchone()
            conn.commit()
            seen_at = time.perf_counter()
            if row and row[0] != reached:
                reached, moved_at = row[0], seen_at
            if reached >= len(devices):
                break
            time.sleep(0.02)
        count, counted_at = stored_rows(conn, like), seen_at
        while count < expected and time.monotonic() < deadline:
            time.sleep(0.05)
            now_count = stored_rows(conn, like)
            if now_count > count:
                count, counted_at = now_count, time.perf_counter()
            elif time.perf_counter() - counted_at > 20:
                break  # no progress for 20 s: what is missing is lost
    return count, counted_at


def raw_broker_rate(env: BenchEnv, total: int, processes: int) -> float:
    """Messages per second that ``mosquitto_sub`` receives of a stream like the ingest one."""
    address = BrokerAddress.parse(env.mqtt_url)
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            address.host,
            "-p",
            str(address.port),
            "-u",
            address.username or "",
            "-P",
            address.password or "",
            "-t",
            "bench/raw/#",
            "-q",
            "1",
            "-C",
            str(total),
            "-V",
            "mqttv5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    topics = [f"bench/raw/{i}" for i in range(200)]
    published = publish(env.mqtt_url, topics, total, processes=processes)
    try:
        sub.wait(timeout=300)
    except subprocess.TimeoutExpired:
        sub.kill()
    return total / (time.perf_counter() - published.started)


def bench_ingest(
    log: Log,
    messages: int = 300_000,
    devices: int = 2000,
    worker_count: int = 2,
    publishers: int = 2,
) -> dict[str, Any]:
    with bench_services("ingest") as env:
        ids = register_devices(env, devices)
        log(f"raw broker rate: {messages // 2:,} messages through mosquitto_sub")
        raw = raw_broker_rate(env, messages // 2, publishers)
        log(f"  {raw:,.0f} msgs/s")
        topics = [f"cz/v1/vehicle/{d}/telemetry" for d in ids]
        with workers(env, worker_count) as pids:
            log(f"ingest: {messages:,} single-reading messages, {worker_count} workers")
            meter = cpu_meter(env, pids)
            published = publish(
                env.mqtt_url, topics, messages, processes=publishers, on_start=meter.start
            )
            sent = published.sent
            last = {t.split("/")[3]: seq for t, seq in published.last_seq.items()}
            count, t_last = wait_stored(env, "B-%", sent, last, timeout=900)
            spent = meter.stop()
        elapsed = t_last - published.started
        cpu = cpu_breakdown(spent, published.cpu_s, max(count, 1), os.cpu_count() or 1)
        log(f"  CPU µs per message: {cpu['cpu_us_per_msg']}")
        with psycopg.connect(env.database_url) as conn:
            dup = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM iot.telemetry WHERE device_id LIKE 'B-%'"
                " GROUP BY device_id, seq HAVING count(*) > 1) d"
            ).fetchone()
            dead = conn.execute("SELECT count(*) FROM iot.dead_letter").fetchone()
    rate = count / elapsed
    log(f"  stored {count:,} of {sent:,} in {elapsed:.1f} s: {rate:,.0f} msgs/s")
    return {
        "bench": "ingest",
        "msgs_per_s": round(rate),
        "sent": sent,
        "stored": count,
        "lost": sent - count,
        "duplicated": int(dup[0]) if dup else 0,
        "dead_letters": int(dead[0]) if dead else 0,
        "raw_broker_msgs_per_s": round(raw),
        "ratio_to_raw_broker": round(rate / raw, 3),
        "workers": worker_count,
        "devices": devices,
        "qos": 1,
        **cpu,
        "ratio_to_cpu_bound": round(rate / cpu["cpu_bound_msgs_per_s"], 3)
        if cpu["cpu_bound_msgs_per_s"]
        else None,
    }


def bench_ingest_batch(
    log: Log, messages: int = 4000, per_message: int = 100, worker_count: int = 2
) -> dict[str, Any]:
    with bench_services("ingest-batch") as env:
        gateways = [f"G{g:03d}" for g in range(20)]
        devices = [f"{g}-{k}" for g in gateways for k in range(per_message)]
        with psycopg.connect(env.database_url) as conn:
            # Registered as gateways with their devices behind them: ingest refuses a
            # gateway's batch for any other device.
            with conn.cursor().copy(
                "COPY iot.device (id, kind, expected_interval_s, gateway_id) FROM STDIN"
            ) as cp:
                for g in gateways:
                    cp.write_row((g, "gateway", 600, None))
                for d in devices:
                    cp.write_row((d, "air", 600, d.split("-")[0]))
            conn.commit()
        total = messages * per_message
        with workers(env, worker_count) as pids:
            log(f"ingest-batch: {messages:,} gateway messages x {per_message} readings")
            meter = cpu_meter(env, pids)
            published = publish(
                env.mqtt_url,
                gateways,
                messages,
                processes=2,
                batch=per_message,
                on_start=meter.start,
            )
            sent = published.sent
            last = {
                f"{gateway}-{d}": seq
                for gateway, seq in published.last_seq.items()
                for d in range(per_message)
            }
            count, t_last = wait_stored(env, "G%", sent * per_message, last, timeout=900)
            spent = meter.stop()
        rate = count / (t_last - published.started)
        cpu = cpu_breakdown(spent, published.cpu_s, max(count, 1), os.cpu_count() or 1)
        log(f"  {rate:,.0f} readings/s; CPU µs per reading: {cpu['cpu_us_per_msg']}")
        copy_rate = plain_copy_rate(env, total)
        log(f"  plain COPY of the same rows: {copy_rate:,.0f} rows/s")
    return {
        "bench": "ingest-batch",
        "readings_per_s": round(rate),
        "sent_readings": sent * per_message,
        "stored": count,
        "lost": sent * per_message - count,
        "copy_rows_per_s": round(copy_rate),
        "ratio_to_copy": round(rate / copy_rate, 3),
        "readings_per_message": per_message,
        # the same breakdown as bench ingest, per reading rather than per message
        "cpu_us_per_reading": cpu["cpu_us_per_msg"],
        "cpu_bound_readings_per_s": cpu["cpu_bound_msgs_per_s"],
    }


def plain_copy_rate(env: BenchEnv, rows: int) -> float:
    """COPY the same shape of rows into a table with the telemetry table's indexes."""
    with psycopg.connect(env.database_url) as conn:
        conn.execute("CREATE TABLE bench_copy (LIKE iot.telemetry INCLUDING DEFAULTS)")
        conn.execute("CREATE UNIQUE INDEX ON bench_copy (device_id, ts, seq) NULLS NOT DISTINCT")
        conn.execute("CREATE INDEX ON bench_copy USING gist (geom)")
        conn.commit()
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        with conn.cursor().copy(
            "COPY bench_copy (device_id, kind, ts, seq, geom, reading) FROM STDIN"
        ) as cp:
            for i in range(rows):
                cp.write_row(
                    (
                        f"G-{i % 2000}",
                        "air",
                        now,
                        i,
                        "0101000020E6100000A4703D0AD7475C4052B81E85EB184240",
                        '{"pm25": 30.0}',
                    )
                )
        conn.commit()
        return rows / (time.perf_counter() - t0)


def bench_latency(
    log: Log, rate: float = 10_000, seconds: float = 30, devices: int = 1000, worker_count: int = 2
) -> dict[str, Any]:
    import websockets

    with bench_services("latency") as env:
        ids = register_devices(env, devices)
        topics = [f"cz/v1/vehicle/{d}/telemetry" for d in ids]
        latencies: list[float] = []
        received_bytes = 0
        with workers(env, worker_count), serve_api(env) as api:
            token = admin_token(env, api)

            async def listen(stop_at: float) -> None:
                nonlocal received_bytes
                url = api.replace("http://", "ws://") + f"/ws/live?token={token}&kinds=vehicle"
                async with websockets.connect(url, max_size=2**26) as ws:
                    await ws.recv()  # hello
                    while time.time() < stop_at:
                        try:
                            text = await asyncio.wait_for(ws.recv(), timeout=1)
                        except TimeoutError:
                            continue
                        now_ms = time.time() * 1000
                        received_bytes += len(text)
                        message = orjson.loads(text)
                        if message.get("type") == "states":
                            latencies.extend(now_ms - item[4] for item in message["items"])

            stop_at = time.time() + seconds + 8
            loop_thread = _run_async_in_thread(listen(stop_at))
            time.sleep(1.0)
            log(f"latency: {rate:,.0f} msgs/s for {seconds:.0f} s to the WebSocket")
            publish(env.mqtt_url, topics, int(rate * seconds), processes=2, rate=rate)
            loop_thread.join(seconds + 30)
    log(
        f"  p50 {median(latencies):.1f} ms p99 {percentile(latencies, 99):.1f} ms "
        f"over {len(latencies):,} delivered states"
    )
    return {
        "bench": "latency",
        "rate": rate,
        "seconds": seconds,
        "p50_ms": round(median(latencies), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "states_delivered": len(latencies),
        "ws_bytes_per_s": round(received_bytes / (seconds + 8)),
        "publish_slice_ms": 10,
        "note": "states are coalesced per device per tick; latency is measured per delivered state",
    }


def _run_async_in_thread(coro: Any) -> Any:
    import threading

    def runner() -> None:
        with contextlib.suppress(Exception):
            asyncio.run(coro)

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    return thread
