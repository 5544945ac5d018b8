"""The HJ 212-2017 server: pollution-source data loggers connect over TCP and upload.

Each connection runs a :class:`~apps.environment.hj212.PacketReader` (packets split across
reads, several in one read, garbage, a bounded buffer). A packet is authenticated by MN and
password against ``env.outlet`` (passwords are Argon2 hashes; a pair once verified is kept in
memory), its CP factors become one reading of the outlet's emission device (real-time CN 2011
from ``Rtd``, minute CN 2051 from ``Avg``; factors flagged other than ``N`` are not
measurements and go to the dead letters), the logger's own hourly and daily statistics
(2061, 2031) are kept as sent in ``env.hj212_aggregate``, and everything that cannot be used
(bad CRC, bad length, broken body, unknown MN, wrong password, unknown factor, a command the
platform does not take) becomes a dead letter with its reason.

Storage is direct, through the platform's own writer (:func:`realtime.store.write_batch`), in
batches gathered from every connection by one writer task; a packet is answered (CN 9014 when
its Flag asks) only after its batch is committed, so an answered packet is never lost, and a
packet whose batch failed is not answered and the logger sends it again. Publishing to MQTT as
the device would answer the logger before anything is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import psycopg
from psycopg_pool import ConnectionPool

from apps.environment import hj212
from gis_core.identity import verify_password
from realtime.readings import Limits, Reading, Reject, validate
from realtime.store import DeadLetter, write_batch

log = logging.getLogger("changzhi.environment.hj212")

CST = timezone(timedelta(hours=8))  # DataTime is the logger's local (China) time
DEFAULT_PORT = 8212  # HJ 212 has no assigned port; each platform tells its loggers one
IDLE_TIMEOUT_S = 300.0  # a logger silent this long (or stuck mid-packet) is disconnected
MAX_CONNECTIONS = 2000
MAX_BATCH = 2000  # packets per database transaction
REFRESH_S = 5.0  # an unknown MN reloads the outlets at most this often
VALUE_FIELD = {hj212.CN_REALTIME: "Rtd", hj212.CN_MINUTE: "Avg"}
AGGREGATES = (hj212.CN_HOURLY, hj212.CN_DAILY)
# Readings of the emission kind by HJ 212 factor (Appendix B): the kind's field names.
FIELD_OF_FACTOR = {"a21026": "so2_mgm3", "a21002": "nox_mgm3", "a34013": "dust_mgm3",
                   "a00000": "flow_m3h"}  # fmt: skip
# Flue-gas parameters a logger sends beside the pollutants, used for correction, not stored
# as readings of the kind (whose fields are fixed): accepted without a dead letter.
KNOWN_PARAMETERS = frozenset({"a19001", "a01011", "a01012", "a01013", "a01014"})


@dataclass(frozen=True)
class Outlet:
    id: int
    mn: str
    pw_hash: str
    device_id: str | None
    kind: str | None


class Directory:
    """The outlets by MN, reloaded when an unknown MN shows up (at most every few seconds)."""

    def __init__(self, load: Callable[[], list[Outlet]]) -> None:
        self._load = load
        self._by_mn: dict[str, Outlet] = {}
        # mn -> (password, hash) that verified; and one that failed, so a logger repeating a
        # wrong password costs no more hashing. Both hold only while the hash is unchanged.
        self._verified: dict[str, tuple[str, str]] = {}
        self._refused: dict[str, tuple[str, str]] = {}
        self._loaded_at = -REFRESH_S

    def refresh(self) -> None:
        self._by_mn = {o.mn: o for o in self._load()}
        # Only a password changed in the registry must be checked again.
        hashes = {mn: o.pw_hash for mn, o in self._by_mn.items()}
        self._verified = {m: p for m, p in self._verified.items() if p[1] == hashes.get(m)}
        self._refused = {m: p for m, p in self._refused.items() if p[1] == hashes.get(m)}
        self._loaded_at = time.monotonic()

    def find(self, mn: str) -> Outlet | None:
        found = self._by_mn.get(mn)
        if found is None and time.monotonic() - self._loaded_at >= REFRESH_S:
            self.refresh()
            found = self._by_mn.get(mn)
        return found

    def authenticate(self, packet: hj212.Packet) -> Outlet | Reject:
        outlet = self.find(packet.mn)
        if outlet is None:
            return Reject("unknown_mn", f"MN {packet.mn!r} is no registered outlet", packet.mn)
        pair = (packet.pw, outlet.pw_hash)
        if self._verified.get(packet.mn) != pair:
            if self._refused.get(packet.mn) == pair or not verify_password(
                outlet.pw_hash, packet.pw
            ):
                self._refused[packet.mn] = pair
                return Reject("bad_password", f"wrong PW for MN {packet.mn}", outlet.device_id)
            self._verified[packet.mn] = pair
        return outlet


def load_outlets(conn: psycopg.Connection) -> list[Outlet]:
    rows = conn.execute(
        "SELECT o.id, o.mn, o.pw_hash, o.device_id, d.kind FROM env.outlet o"
        " LEFT JOIN iot.device d ON d.id = o.device_id"
    ).fetchall()
    return [Outlet(*r) for r in rows]


@dataclass
class Batch:
    """What one read of one connection produced, and the answers to send once it is stored."""

    readings: list[Reading] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    aggregates: list[tuple[int, str, datetime, str]] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)
    packets: int = 0


def convert(
    packet: hj212.Packet, outlet: Outlet, limits: Limits, topic: str, frame: bytes, batch: Batch
) -> None:
    """One authenticated packet into the batch: a reading, an aggregate or dead letters."""

    def dead(reason: str, detail: str) -> None:
        batch.dead.append(DeadLetter(topic, Reject(reason, detail, outlet.device_id), frame))

    if packet.cn in AGGREGATES:
        if packet.cp.data_time is None:
            return dead("bad_body", f"CN {packet.cn} without DataTime")
        when = packet.cp.data_time.replace(tzinfo=CST)
        factors = orjson.dumps(packet.cp.factors).decode()
        batch.aggregates.append((outlet.id, packet.cn, when, factors))
        return None
    value_field = VALUE_FIELD.get(packet.cn)
    if value_field is None:
        return dead("unsupported_cn", f"CN {packet.cn} is not an upload the platform takes")
    if outlet.device_id is None or outlet.kind is None:
        return dead("no_device", f"outlet {outlet.id} (MN {outlet.mn}) has no monitoring device")
    if packet.cp.data_time is None:
        return dead("bad_body", f"CN {packet.cn} without DataTime")
    values: dict[str, Any] = {}
    unknown: list[str] = []
    flagged: list[str] = []
    for code, fields in packet.cp.factors.items():
        name = FIELD_OF_FACTOR.get(code)
        if name is None:
            if code not in KNOWN_PARAMETERS:
                unknown.append(code)
            continue
        flag = fields.get("Flag", "N")
        if flag != "N":
            flagged.append(f"{code}={flag}({hj212.DATA_FLAGS.get(str(flag), '?')})")
            continue
        if value_field in fields:
            values[name] = fields[value_field]
    if unknown:
        dead("unknown_factor", f"factor codes not registered: {', '.join(sorted(unknown))}")
    if flagged:
        dead("flagged", "not normal data: " + ", ".join(flagged))
    if not values:
        return None if (unknown or flagged) else dead("bad_body", "no factor values")
    ts = packet.cp.data_time.replace(tzinfo=CST)
    obj = {"ts": int(ts.timestamp() * 1000), **values}
    made = validate(obj, outlet.device_id, outlet.kind, datetime.now(CST), limits)
    if isinstance(made, Reject):
        batch.dead.append(DeadLetter(topic, made, frame))
    else:
        batch.readings.append(made)
    return None


class Server:
    """The asyncio TCP server, its connections and the one writer task."""

    def __init__(
        self,
        database_url: str,
        *,
        pool_size: int = 2,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.pool = ConnectionPool(database_url, min_size=1, max_size=pool_size, open=False)
        self.directory = Directory(self._load)
        self.limits = Limits((-180.0, -90.0, 180.0, 90.0))
        self.queue: asyncio.Queue[tuple[Batch, asyncio.Future[None]]] = asyncio.Queue()
        self.connections = 0
        self.stats: dict[str, float] = {
            "packets": 0, "stored": 0, "dead_letters": 0, "aggregates": 0, "batches": 0,
            "store_s": 0.0, "parse_s": 0.0,
        }  # fmt: skip
        self._stats_lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._writer: asyncio.Task[None] | None = None

    def _load(self) -> list[Outlet]:
        with self.pool.connection() as conn:
            return load_outlets(conn)

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (useful with port 0)."""
        self.pool.open(wait=True)
        await asyncio.to_thread(self.directory.refresh)
        self._writer = asyncio.create_task(self._write_loop())
        self._server = await asyncio.start_server(self._serve, host, port, limit=2**16)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self.pool.close()

    # ------------------------------------------------------------------ storing

    def _store(self, batches: list[Batch]) -> None:
        started = time.perf_counter()
        readings = [r for b in batches for r in b.readings]
        dead = [d for b in batches for d in b.dead]
        aggregates = [a for b in batches for a in b.aggregates]
        with self.pool.connection() as conn:
            result = write_batch(conn, readings, dead)
            if aggregates:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO env.hj212_aggregate (outlet_id, cn, data_time, factors)"
                        " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT (outlet_id, cn, data_time)"
                        " DO UPDATE SET factors = excluded.factors, received_at = now()",
                        aggregates,
                    )
            conn.commit()
        self.stats["stored"] += result.stored
        self.stats["dead_letters"] += result.dead_letters
        self.stats["aggregates"] += len(aggregates)
        self.stats["batches"] += 1
        self.stats["store_s"] += time.perf_counter() - started

    async def _write_loop(self) -> None:
        while True:
            first = await self.queue.get()
            items = [first]
            packets = first[0].packets
            while packets < MAX_BATCH and not self.queue.empty():
                item = self.queue.get_nowait()
                items.append(item)
                packets += item[0].packets
            try:
                await asyncio.to_thread(self._store, [b for b, _ in items])
            except Exception as exc:  # the database is away: no answer, the loggers resend
                log.warning("HJ 212 batch not stored: %s", exc)
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                await asyncio.sleep(1.0)
                continue
            for _, future in items:
                if not future.done():
                    future.set_result(None)

    async def submit(self, batch: Batch) -> None:
        """Queue a batch for the writer and wait until it is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put((batch, future))
        await future

    # ------------------------------------------------------------------ connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        topic = f"hj212://{peer[0]}:{peer[1]}" if peer else "hj212://?"
        if self.connections >= self.max_connections:
            writer.close()  # a flood: refuse at once, keep serving the loggers connected
            return
        self.connections += 1
        packets = hj212.PacketReader()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), self.idle_timeout_s)
                except TimeoutError:
                    chunk = b""
                if not chunk:
                    if packets.pending:
                        await self.submit(self._incomplete(topic, packets.pending))
                    return
                # In a thread: a password seen for the first time costs an Argon2 check,
                # which must not stall every other logger's connection.
                batch = await asyncio.to_thread(self.handle, chunk, packets, topic)
                if batch.packets or batch.dead:
                    await self.submit(batch)
                if batch.replies:
                    writer.write(b"".join(batch.replies))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except Exception as exc:  # one logger's trouble never stops the others
            log.warning("HJ 212 connection %s dropped: %s", topic, exc)
        finally:
            self.connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _incomplete(self, topic: str, pending: int) -> Batch:
        batch = Batch()
        reject = Reject("incomplete", f"connection ended {pending} bytes into a packet")
        batch.dead.append(DeadLetter(topic, reject, b""))
        return batch

    def handle(self, chunk: bytes, packets: hj212.PacketReader, topic: str) -> Batch:
        """Parse one read; returns what to store and what to answer."""
        started = time.perf_counter()
        batch = Batch()
        for item, frame in packets.feed_frames(chunk):
            batch.packets += 1
            if isinstance(item, hj212.Hj212Error):
                batch.dead.append(DeadLetter(topic, Reject(item.reason, item.detail), frame))
                continue
            outlet = self.directory.authenticate(item)
            if isinstance(outlet, Reject):
                batch.dead.append(DeadLetter(topic, outlet, frame))
                if item.need_ack:
                    code = 3 if outlet.reason == "bad_password" else 4
                    batch.replies.append(hj212.request_answer(item, qn_rtn=code))
                continue
            convert(item, outlet, self.limits, topic, frame, batch)
            if item.need_ack:
                batch.replies.append(hj212.data_answer(item))
        with self._stats_lock:
            self.stats["packets"] += batch.packets
            self.stats["parse_s"] += time.perf_counter() - started
        return batch


async def serve(database_url: str, host: str, port: int, ready: Callable[[int], None]) -> None:
    """Run the server until cancelled."""
    server = Server(database_url)
    bound = await server.start(host, port)
    ready(bound)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def run(host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> None:
    """The server in this process (the worker ``changzhi up`` starts, and the CLI command)."""
    from gis_core.settings import get_settings

    logging.basicConfig(level=logging.INFO)
    url = get_settings().database_url
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(url, host, port, lambda p: log.info("HJ 212 server on port %d", p)))


def spawn_server() -> Callable[[], None]:
    """Start the server as a process (a Worker of ``changzhi up``); return its stop."""
    from gis_core.processes import spawn

    return spawn(run, name="environment-hj212")
