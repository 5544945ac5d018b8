"""The ingest worker's MQTT client (realtime.bulk_mqtt) against the real broker: it delivers
exactly what paho's own path delivers, its bulk acknowledgements settle a persistent session,
and its buffered reads keep packets whole however they are split; and the other end of
the no-loss contract: simulated devices resend what the broker says nobody received."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from realtime.bulk_mqtt import BufferedSocket, BulkClient
from realtime.mqtt import BrokerAddress, make_client
from tests.support import wait_until


class Consumer:
    """A BulkClient with a persistent session and manual acks, recording what it gets."""

    def __init__(self, url: str, client_id: str, topic: str) -> None:
        self.url, self.topic = url, topic
        self.got: list[tuple[str, bytes, int, int, str]] = []  # topic, payload, mid, qos, path
        self.lock = threading.Lock()
        client = make_client(url, "bulk", client_id=client_id, client_class=BulkClient)
        assert isinstance(client, BulkClient)
        client.manual_ack_set(True)
        client.on_bulk_message = self._bulk
        client.on_message = self._paho
        client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client = client

    def _bulk(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        with self.lock:
            self.got.append((topic, payload, mid, qos, "bulk"))

    def _paho(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload), msg.mid, msg.qos, "paho"))

    def start(self) -> None:
        address = BrokerAddress.parse(self.url)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        self.client.connect(address.host, address.port, clean_start=False, properties=props)
        self.client.loop_start()
        wait_until(self.client.is_connected, what="consumer connected")
        time.sleep(0.2)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher(url: str) -> mqtt.Client:
    address = BrokerAddress.parse(url)
    client = make_client(url, "bulkpub")
    client.max_inflight_messages_set(1000)
    client.connect(address.host, address.port)
    client.loop_start()
    wait_until(client.is_connected, what="publisher connected")
    return client


@pytest.fixture
def url(throwaway: Any) -> str:
    return str(throwaway.mosquitto.url)


def test_delivers_what_paho_delivers_by_the_right_path(url: str) -> None:
    topic = f"bulktest/{uuid.uuid4().hex[:8]}"
    consumer = Consumer(url, f"bulk-{uuid.uuid4().hex[:8]}", f"{topic}/#")
    consumer.start()
    pub = publisher(url)
    try:
        with_props = Properties(PacketTypes.PUBLISH)
        with_props.UserProperty = ("source", "test")
        sent = [
            (f"{topic}/plain", b'{"a": 1}', 1, None),
            (f"{topic}/qos0", b"zero", 0, None),
            (f"{topic}/empty", b"", 1, None),
            (f"{topic}/props", b"with properties", 1, with_props),
            (f"{topic}/中文", "长治".encode(), 1, None),
        ]
        for t, payload, qos, props in sent:
            pub.publish(t, payload, qos=qos, properties=props).wait_for_publish(10)
        wait_until(lambda: len(consumer.got) == len(sent), what="all delivered")
        got = {g[0]: g for g in consumer.got}
        for t, payload, qos, _ in sent:
            assert got[t][1] == payload and got[t][3] == qos
        assert got[f"{topic}/props"][4] == "paho"  # properties keep paho's full decoding
        assert {got[t][4] for t, *_ in sent if not t.endswith("props")} == {"bulk"}
        assert got[f"{topic}/qos0"][2] == 0 and got[f"{topic}/plain"][2] > 0
    finally:
        pub.disconnect()
        pub.loop_stop()
        consumer.stop()


def test_bulk_acks_settle_the_session_and_unacked_come_back(url: str) -> None:
    """5,000 QoS 1 messages through buffered reads, whole and in order; acknowledge the
    first 3,000 in bulk writes of 500; reconnect the persistent session: exactly the other
    2,000 come again."""
    topic = f"bulkack/{uuid.uuid4().hex[:8]}"
    client_id = f"bulk-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(url, client_id, topic)
    consumer.start()
    pub = publisher(url)
    total, acked = 5000, 3000
    for i in range(total):
        info = pub.publish(topic, b"%06d" % i + b"x" * (i % 700), qos=1)
    info.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()
    done = 0
    while done < acked:
        wait_until(lambda: len(consumer.got) >= done + 500, what=f"past {done}")  # noqa: B023
        consumer.client.ack_many(g[2] for g in consumer.got[done : done + 500])
        done += 500
    wait_until(lambda: len(consumer.got) >= acked + 1000, what="the next window")
    time.sleep(0.3)
    numbers = [int(g[1][:6]) for g in consumer.got]
    assert numbers == list(range(len(numbers)))  # whole and in order
    assert all(g[4] == "bulk" for g in consumer.got)
    consumer.stop()

    again = Consumer(url, client_id, topic)
    again.start()
    wait_until(lambda: len(again.got) >= total - acked, what="unacknowledged redelivered")
    time.sleep(0.5)
    assert sorted(int(g[1][:6]) for g in again.got) == list(range(acked, total))
    again.client.ack_many(g[2] for g in again.got)
    time.sleep(0.3)
    again.stop()


class Trickle:
    """A fake socket handing out a byte stream in fixed-size pieces, then 'would block'."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.pieces = [data[i : i + piece] for i in range(0, len(data), piece)]

    def recv(self, n: int) -> bytes:
        if not self.pieces:
            raise BlockingIOError
        return self.pieces.pop(0)[:n] if len(self.pieces[0]) <= n else self._split(n)

    def _split(self, n: int) -> bytes:
        head, self.pieces[0] = self.pieces[0][:n], self.pieces[0][n:]
        return head


@pytest.mark.parametrize("piece", [1, 3, 4096])
def test_buffered_socket_serves_reads_of_any_size_in_order(piece: int) -> None:
    data = bytes(range(256)) * 40
    sock = BufferedSocket(Trickle(data, piece))  # type: ignore[arg-type]
    out = b""
    sizes = [1, 1, 2, 5, 700, 3]
    i = 0
    while True:
        try:
            chunk = sock.recv(sizes[i % len(sizes)])
        except BlockingIOError:
            break
        assert 0 < len(chunk) <= sizes[i % len(sizes)]
        out += chunk
        i += 1
    assert out == data and sock.pending() == 0


def test_simulated_devices_resend_what_nobody_received(url: str) -> None:
    """A simulated device whose reading the broker says nobody received (PUBACK 0x10, as in
    the moment after a broker restart before the ingest workers re-subscribe) sends it again,
    and it arrives once somebody listens."""
    from sensors.transport import Pool

    address = BrokerAddress.parse(url)
    topic = f"resend/{uuid.uuid4().hex[:8]}"
    acks: list[bool] = []
    pool = Pool(url, on_ack=lambda link, ok: acks.append(ok))
    link = pool.add("dev", address.username or "", address.password, shared=True)
    pool.connect_all(timeout=10)
    assert pool.publish(link, topic, b"first reading")
    deadline = time.monotonic() + 5
    while not link.resend and time.monotonic() < deadline:
        pool.poll(0.05)
    assert link.resend and not acks  # nobody subscribed: held for resending, not counted

    got: list[bytes] = []
    sub = make_client(url, "resend-sub")
    sub.on_message = lambda c, u, msg: got.append(bytes(msg.payload))
    sub.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    sub.connect(address.host, address.port)
    sub.loop_start()
    try:
        time.sleep(0.5)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            pool.poll(0.05)
        deadline = time.monotonic() + 3
        while not acks and time.monotonic() < deadline:
            pool.poll(0.05)
    finally:
        sub.disconnect()
        sub.loop_stop()
        pool.close()
    assert got == [b"first reading"] and acks == [True] and not link.resend


def test_whole_device_publishes_are_taken_from_the_buffer_and_the_rest_left_to_paho() -> None:
    """The drain takes QoS 0/1 PUBLISHes without properties straight from the read buffer
    (short and 3-byte remaining lengths), and stops, leaving the buffer where it was, at a
    packet with properties or one not wholly received: those are paho's to read."""
    from apps.bench.ingest import _wire
    from apps.bench.loadgen import _varint, encode_publish

    client = BulkClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    got: list[tuple[str, bytes, int, int]] = []
    client.on_bulk_message = lambda *message: got.append(message)  # type: ignore[assignment]
    sock = BufferedSocket(Trickle(b"", 1))  # type: ignore[arg-type]

    def body(topic: str, payload: bytes, props: bytes) -> bytes:
        return _wire(topic) + _varint(len(props)) + props + payload

    small = encode_publish(_wire("cz/v1/air/A1/telemetry"), b'{"pm25": 3}', 7)
    big = encode_publish(_wire("长治/t"), b"y" * 20_000, 8)
    qos0 = b"\x30" + _varint(len(body("q/0", b"zero", b""))) + body("q/0", b"zero", b"")
    with_props = b"\x32" + _varint(len(_wire("p/1")) + 2 + 3 + 1) + _wire("p/1")
    with_props += b"\x00\x09" + b"\x02\x01\x01" + b"p"  # mid 9, payload format indicator
    assert len(big) - len(_wire("长治/t")) - 3 - 20_000 == 4  # header + 3 length bytes

    sock._buf, sock._pos = small + big + qos0 + with_props + small, 0
    assert client._drain_publishes(sock)
    assert got == [
        ("cz/v1/air/A1/telemetry", b'{"pm25": 3}', 7, 1),
        ("长治/t", b"y" * 20_000, 8, 1),
        ("q/0", b"zero", 0, 0),
    ]
    assert sock._pos == len(small + big + qos0)  # stopped at the packet with properties
    assert not client._drain_publishes(sock)
    sock._pos += len(with_props)  # (paho reads that one)
    assert client._drain_publishes(sock) and got[-1][2] == 7
    assert sock.pending() == 0

    for cut in (1, 2, len(big) - 1):  # a packet not wholly received stays for paho
        sock._buf, sock._pos = big[:cut], 0
        assert not client._drain_publishes(sock) and sock._pos == 0
    assert len(got) == 4


def test_the_paho_internals_bulk_mqtt_relies_on_exist() -> None:
    """pyproject pins paho-mqtt to >=2.0,<3 for these: a paho that renames one fails here,
    by name, before any message is lost to it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    for method in ("_handle_publish", "_create_socket", "_packet_queue", "loop_read"):
        assert callable(getattr(client, method, None)), f"paho.mqtt.client.Client.{method}"
    for attribute in (
        "_in_packet",
        "_sock",
        "_ssl",
        "_protocol",
        "_manual_ack",
        "_msgtime_mutex",
        "_last_bytes_received",
    ):
        assert hasattr(client, attribute), f"paho.mqtt.client.Client.{attribute}"
    assert set(client._in_packet) >= {"command", "packet"}
    assert callable(mqtt.time_func)
    assert isinstance(mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, mqtt.MQTTErrorCode)
