"""A paho client for high-rate consumers: buffered reads and acknowledgements in bulk.

paho-mqtt reads each packet with several ``recv`` calls (the command byte, each byte of the
remaining length, then the body), runs one ``select`` per packet, and sends each manual
acknowledgement as its own packet with its own wake-up of the network thread. At ingest rates
(tens of thousands of messages a second) those system calls and wake-ups were a third of an
ingest worker's CPU (py-spy, ``changzhi bench ingest``). This client changes only that:

- the socket is wrapped in a read buffer that exposes ``pending()``, the hook paho already
  uses for TLS sockets, so paho drains every buffered packet before it selects again;
- :meth:`BulkClient.ack_many` queues the PUBACKs of a whole committed batch as one write;
- a PUBLISH at QoS 0/1 without MQTT v5 properties (what devices send) goes straight to
  ``on_bulk_message(topic, payload, mid, qos)`` when one is set, without paho building a
  ``Properties`` object, an ``MQTTMessage`` and walking its callback tree for it (together half
  of the network thread's time). Whole ones already in the read buffer are parsed there in
  one pass, without paho's per-packet reads. Anything else — properties, QoS 2, an
  undecodable topic, automatic acknowledgement — takes paho's own path to ``on_message``.

Everything else — the protocol, sessions, reconnects, callbacks — is paho's own. The hooks
used (``_create_socket``, ``_handle_publish``, ``_packet_queue``) are private to paho, so the
dependency is pinned to the 2.x line, and tests/test_bulk_mqtt.py checks this client delivers
and acknowledges exactly what paho's own path does.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["BufferedSocket", "BulkClient", "BulkSink"]

READ_CHUNK = 256 * 1024
_PUBACK = struct.Struct("!BBH")
PUBACK = 0x40


class BufferedSocket:
    """A non-blocking socket whose reads come from a buffer refilled ``READ_CHUNK`` at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            # Raises BlockingIOError when nothing is there, as paho expects; b"" on close.
            self._buf = self._sock.recv(READ_CHUNK)
            self._pos = 0
        end = self._pos + bufsize
        chunk = self._buf[self._pos : end]
        self._pos = min(end, len(self._buf))
        return chunk

    def send(self, data: bytes | bytearray | memoryview) -> int:
        return self._sock.send(data)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._buf, self._pos = b"", 0
        self._sock.close()

    def __getattr__(self, name: str) -> Any:  # setblocking, settimeout, getpeername, ...
        return getattr(self._sock, name)


BulkSink = Callable[[str, bytes, int, int], None]


class BulkClient(mqtt.Client):
    """paho's client with buffered reads and batched acknowledgements (see the module)."""

    on_bulk_message: BulkSink | None = None

    def _takes(self, header: int) -> bool:
        """Whether a PUBLISH with this fixed-header byte may skip paho's own handling."""
        qos = (header & 0x06) >> 1
        return (
            self.on_bulk_message is not None
            and self._protocol == mqtt.MQTTv5
            and (qos == 0 or (qos == 1 and self._manual_ack))
        )

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        simple = _simple_publish(packet, 0, len(packet), qos) if self._takes(header) else None
        if simple is None or self.on_bulk_message is None:
            return super()._handle_publish()
        topic, mid, payload = simple
        self.on_bulk_message(topic, bytes(packet[payload:]), mid, qos)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if isinstance(sock, socket.socket) and not self._ssl:
            return BufferedSocket(sock)
        return sock  # TLS and WebSocket transports keep paho's own reads

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # paho reads one packet per call; drain what the buffer already holds before the
        # next select(), which would not see it: device publishes straight from the buffer,
        # anything else (or a packet not wholly there yet) packet by packet through paho.
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = self._sock
            if not isinstance(sock, BufferedSocket) or sock.pending() == 0:
                break
            if self._in_packet["command"] == 0 and self._drain_publishes(sock):
                continue
            rc = super().loop_read(max_packets)
        return rc

    def _drain_publishes(self, sock: BufferedSocket) -> bool:
        """Hand every whole, property-less QoS 0/1 PUBLISH at the head of the buffer to
        ``on_bulk_message``, without paho's per-packet reads; stop at anything else. True when
        some were taken."""
        sink = self.on_bulk_message
        if sink is None:
            return False
        buf, start, size = sock._buf, sock._pos, len(sock._buf)
        pos = start
        while pos + 2 <= size:
            header = buf[pos]
            if header & 0xF0 != 0x30 or not self._takes(header):
                break
            i, length, shift = pos + 1, 0, 0
            while i < size and i - pos <= 4:  # remaining length: at most 4 bytes
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            else:
                break  # not all there yet, or malformed: paho's path decides
            end = i + length
            qos = (header & 0x06) >> 1
            simple = _simple_publish(buf, i, end, qos) if end <= size else None
            if simple is None:
                break  # incomplete, or with v5 properties (or malformed): paho's path
            topic, mid, payload = simple
            pos = sock._pos = end
            sink(topic, buf[payload:end], mid, qos)
        if pos == start:
            return False
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return True

    def ack_many(self, mids: Iterable[int]) -> None:
        """Acknowledge QoS 1 messages (``manual_ack`` on) with one queued write."""
        packet = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
        if packet:
            self._packet_queue(PUBACK, packet, 0, 1)


def _simple_publish(
    data: bytes | bytearray, start: int, end: int, qos: int
) -> tuple[str, int, int] | None:
    """The topic, packet id and payload offset of the PUBLISH body ``data[start:end]``, when
    it has no MQTT v5 properties and a UTF-8 topic; None sends it down paho's own path."""
    topic_end = start + 2 + int.from_bytes(data[start : start + 2], "big")
    props = topic_end + (2 if qos else 0)
    if props >= end or data[props] != 0:  # v5 properties present (or malformed)
        return None
    try:
        topic = data[start + 2 : topic_end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    mid = int.from_bytes(data[topic_end:props], "big") if qos else 0
    return topic, mid, props + 1
