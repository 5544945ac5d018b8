"""The HJ 212 server over a real socket: packets split and joined across reads, answers after
storage, and every bad packet a dead letter with its reason while good ones keep flowing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from apps.environment import hj212, registry
from apps.environment.hj212_server import Server
from gis_core.db import connect

pytestmark = pytest.mark.services

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 20, 9, 0)  # logger local time


def _upload(mn: str, pw: str, k: int, *, cn: str = "2011", **extra: Any) -> bytes:
    factors: dict[str, dict[str, float | str]] = {
        "a21026": {"Rtd": 10.0 + k, "Flag": "N"},
        "a21002": {"Rtd": 30.0 + k, "Flag": "N"},
        "a00000": {"Rtd": 150000.0, "Flag": "N"},
        "a19001": {"Rtd": 8.5, "Flag": "N"},
        **extra,
    }
    if cn != "2011":
        factors = {c: {"Avg" if f == "Rtd" else f: v for f, v in vals.items()}
                   for c, vals in factors.items()}  # fmt: skip
    return hj212.build_packet(
        cn=cn, mn=mn, pw=pw, qn=f"20261120090000{k:03d}", need_ack=True,
        cp=hj212.data_cp(T0 + timedelta(minutes=k), factors),
    )  # fmt: skip


async def _answers(reader: asyncio.StreamReader, count: int) -> list[hj212.Packet]:
    parser = hj212.PacketReader()
    got: list[hj212.Packet] = []
    while len(got) < count:
        chunk = await asyncio.wait_for(reader.read(4096), 10)
        assert chunk, f"connection closed after {len(got)} of {count} answers"
        got += [p for p in parser.feed(chunk) if isinstance(p, hj212.Packet)]
    return got


@pytest.fixture(scope="module")
def logger(db_url: str, reference: object) -> dict[str, Any]:
    with connect(db_url) as conn:
        outlet_id, device = conn.execute(
            "SELECT id, device_id FROM env.outlet WHERE device_id IS NOT NULL ORDER BY id LIMIT 1"
        ).fetchone()
        mn, pw = registry.set_logger_password(conn, str(outlet_id), None, "212212")
        conn.commit()
    return {"mn": mn, "pw": pw, "device": device, "outlet": outlet_id}


def test_server_stores_answers_and_dead_letters(db_url: str, logger: dict[str, Any]) -> None:
    mn, pw = logger["mn"], logger["pw"]

    async def scenario() -> tuple[list[hj212.Packet], list[hj212.Packet]]:
        server = Server(db_url, idle_timeout_s=2.0)
        port = await server.start("127.0.0.1", 0)
        try:
            # A logger that stops mid-packet (and is timed out) must not hold up the others.
            stuck_r, stuck_w = await asyncio.open_connection("127.0.0.1", port)
            stuck_w.write(_upload(mn, pw, 50)[:40])
            await stuck_w.drain()
            r, w = await asyncio.open_connection("127.0.0.1", port)
            good = b"".join(_upload(mn, pw, k) for k in range(3))
            w.write(good[:25])  # split inside the first packet's header
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(good[25:])  # the rest, with the next two packets in the same read
            await w.drain()
            answers = await _answers(r, 3)
            bad_crc = bytearray(_upload(mn, pw, 10))
            bad_crc[-6:-2] = b"0000"
            w.write(
                bytes(bad_crc)
                + _upload("NOSUCHMN0000001", pw, 11)
                + _upload(mn, "wrong", 12)
                + _upload(mn, pw, 13, a99999={"Rtd": 1.0, "Flag": "N"})  # unregistered factor
                + _upload(mn, pw, 14, cn="2061")  # the logger's hourly statistics
                + b"##9x99garbage\r\n"
            )
            await w.drain()
            # Answers: unknown MN 9011 QnRtn=4, wrong PW 9011 QnRtn=3, then 9014 twice.
            more = await _answers(r, 4)
            w.close()
            assert await stuck_r.read() == b""  # the stuck logger was disconnected
            await asyncio.sleep(0.2)
            return answers, more
        finally:
            await server.stop()

    answers, more = asyncio.run(scenario())
    assert [a.cn for a in answers] == ["9014"] * 3
    assert [a.qn for a in answers] == [f"20261120090000{k:03d}" for k in range(3)]
    assert [(a.cn, a.cp.params.get("QnRtn")) for a in more] == [
        ("9011", "4"),
        ("9011", "3"),
        ("9014", None),
        ("9014", None),
    ]
    with connect(db_url) as conn:
        stored = conn.execute(
            "SELECT ts, reading->>'so2_mgm3', reading->>'nox_mgm3', reading ? 'a19001'"
            " FROM iot.telemetry WHERE device_id = %s AND ts >= %s AND ts < %s ORDER BY ts",
            (
                logger["device"],
                T0.replace(tzinfo=CST),
                (T0 + timedelta(hours=1)).replace(tzinfo=CST),
            ),
        ).fetchall()
        reasons = [r[0] for r in conn.execute(
            "SELECT reason FROM iot.dead_letter WHERE topic LIKE 'hj212://%%' ORDER BY id"
        ).fetchall()]  # fmt: skip
        hourly = conn.execute(
            "SELECT factors->'a21026'->>'Avg' FROM env.hj212_aggregate WHERE outlet_id = %s"
            " AND cn = '2061'",
            (logger["outlet"],),
        ).fetchone()
    minutes = [int((ts.astimezone(CST).replace(tzinfo=None) - T0).total_seconds() // 60)
               for ts, *_ in stored]  # fmt: skip
    assert minutes == [0, 1, 2, 13]
    assert [float(s[1]) for s in stored] == [10.0, 11.0, 12.0, 23.0]
    assert float(stored[0][2]) == 30.0 and stored[0][3] is False
    assert hourly is not None and float(hourly[0]) == 24.0
    for reason in ("bad_crc", "unknown_mn", "bad_password", "unknown_factor", "bad_length",
                   "incomplete"):  # fmt: skip
        assert reason in reasons, (reason, reasons)


def test_flagged_and_out_of_range_factors_are_dead_letters(
    db_url: str, logger: dict[str, Any]
) -> None:
    mn, pw = logger["mn"], logger["pw"]

    async def scenario() -> None:
        server = Server(db_url)
        port = await server.start("127.0.0.1", 0)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(
                _upload(mn, pw, 30, a21026={"Rtd": 10.0, "Flag": "M"})  # maintenance
                + _upload(mn, pw, 31, a21026={"Rtd": -5.0, "Flag": "N"})  # negative
            )
            await w.drain()
            await _answers(r, 2)
            w.close()
        finally:
            await server.stop()

    asyncio.run(scenario())
    with connect(db_url) as conn:
        rows = conn.execute(
            "SELECT reason, detail FROM iot.dead_letter WHERE reason IN ('flagged', 'bad_value')"
            " AND topic LIKE 'hj212://%%'"
        ).fetchall()
        kept = conn.execute(
            "SELECT reading ? 'so2_mgm3', reading->>'nox_mgm3' FROM iot.telemetry"
            " WHERE device_id = %s AND ts = %s",
            (logger["device"], (T0 + timedelta(minutes=30)).replace(tzinfo=CST)),
        ).fetchone()
    assert any(r[0] == "flagged" and "maintenance" in r[1] for r in rows)
    assert any(r[0] == "bad_value" and "so2_mgm3" in r[1] for r in rows)
    assert kept == (False, "60.0") or kept == (False, "60")  # NOx kept, flagged SO2 left out
