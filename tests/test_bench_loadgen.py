"""The ingest benchmarks' load generator speaks MQTT the broker accepts: every pre-encoded
QoS 1 publish arrives once, intact, and is acknowledged; the CPU breakdown adds up."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import orjson
import pytest

from apps.bench.ingest import _wire, cpu_breakdown
from apps.bench.loadgen import LeanPublisher, encode_publish
from realtime.mqtt import BrokerAddress, make_client


def test_every_pre_encoded_publish_arrives_once_and_is_acknowledged(throwaway: Any) -> None:
    url = throwaway.mosquitto.url
    address = BrokerAddress.parse(url)
    prefix = f"loadgen/{uuid.uuid4().hex[:8]}"
    got: list[tuple[str, bytes, int]] = []
    lock = threading.Lock()
    sub = make_client(url, "loadgen-sub")

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        with lock:
            got.append((msg.topic, bytes(msg.payload), msg.qos))

    sub.on_message = on_message
    sub.on_connect = lambda c, *a: c.subscribe(f"{prefix}/#", qos=1)
    sub.connect(address.host, address.port)
    sub.loop_start()
    time.sleep(0.5)

    publisher = LeanPublisher(
        address.host, address.port, address.username, address.password, "loadgen-test"
    )
    assert 0 < publisher.receive_maximum <= 65535
    total = 70_000  # past the 65,535 packet ids: ids are reused only once acknowledged
    topics = [_wire(f"{prefix}/{d}/长治") for d in range(7)]
    big = b"x" * 300  # a remaining length over 127 bytes takes two length bytes
    packets = (
        encode_publish(
            topics[i % 7], orjson.dumps({"i": i}) + (big if i % 5 == 0 else b""), i % 65535 + 1
        )
        for i in range(total)
    )
    publisher.publish_many(packets)
    assert publisher.wait_acked(60), f"acked {publisher.acks.count} of {publisher.sent}"
    publisher.close()
    deadline = time.monotonic() + 60
    while len(got) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    sub.disconnect()
    sub.loop_stop()
    assert len(got) == total
    seen = sorted(orjson.loads(p[: p.index(b"}") + 1])["i"] for _, p, _ in got)
    assert seen == list(range(total))
    assert {t for t, _, _ in got} == {f"{prefix}/{d}/长治" for d in range(7)}
    assert all(q == 1 for _, _, q in got)
    assert all(
        p.endswith(big) == (orjson.loads(p[: p.index(b"}") + 1])["i"] % 5 == 0) for _, p, _ in got
    )


def test_wrong_credentials_are_refused_clearly(throwaway: Any) -> None:
    address = BrokerAddress.parse(throwaway.mosquitto.url)
    with pytest.raises(ConnectionRefusedError, match="CONNACK refused"):
        LeanPublisher(address.host, address.port, "nobody", "wrong", "loadgen-bad")


def test_cpu_breakdown_adds_up() -> None:
    out = cpu_breakdown({"broker": 1.0, "database": 2.0, "workers": 3.0}, 4.0, 100_000, 2)
    assert out["cpu_us_per_msg"] == {
        "broker": 10.0,
        "database": 20.0,
        "workers": 30.0,
        "publishers": 40.0,
    }
    assert out["cpu_us_per_msg_total"] == 100.0
    assert out["cpu_bound_msgs_per_s"] == 20_000  # 2 cores / 100 µs
