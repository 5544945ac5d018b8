"""A lean MQTT v5 load generator for the ingest benchmarks: many devices' QoS 1 publishes from
one process, pre-encoded.

The devices of a real deployment are on their own hardware; in ``bench ingest`` they share this
2-core machine with the broker, the database and the workers. paho spends about 30 µs of
Python per ``publish()`` (message-info objects, locks, a wake-up of its network thread), so
publishing through it ate CPU the system under test needed and capped the measured rate at
what the publishers could send. Here each message is encoded once into PUBLISH bytes and
written in large slices on a plain socket; PUBACKs are counted by a reader thread, and the
broker's Receive Maximum bounds what is in flight — the same flow control paho applies.
It speaks only what the benchmark needs: CONNECT with user name and password, QoS 1 PUBLISH
without properties, PUBACK, DISCONNECT.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["LeanPublisher", "encode_publish"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def encode_publish(topic: bytes, payload: bytes, mid: int) -> bytes:
    """A QoS 1 PUBLISH (MQTT v5, no properties) for an already length-prefixed topic."""
    body_len = len(topic) + 3 + len(payload)
    return b"\x32" + _varint(body_len) + topic + struct.pack("!HB", mid, 0) + payload


@dataclass
class _Acks:
    count: int = 0
    error: str | None = None


class LeanPublisher:
    def __init__(
        self, host: str, port: int, username: str | None, password: str | None, client_id: str
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
        body = _utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + b"\x00"
        body += _utf8(client_id)
        if username:
            body += _utf8(username)
        if password:
            body += _utf8(password)
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        self.receive_maximum = self._connack()
        self.sock.settimeout(None)
        self.acks = _Acks()
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()
        self.sent = 0

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def _read_packet(self) -> tuple[int, bytes]:
        header = self._read_exact(1)[0]
        length, shift = 0, 0
        while True:
            digit = self._read_exact(1)[0]
            length += (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        return header, self._read_exact(length)

    def _connack(self) -> int:
        header, body = self._read_packet()
        if header != 0x20 or len(body) < 2 or body[1] != 0:
            raise ConnectionRefusedError(f"CONNACK refused (reason {body[1] if body else '?'})")
        pos, props_end = 2, None
        length, shift = 0, 0
        while True:
            digit = body[pos]
            pos += 1
            length += (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        props_end = pos + length
        receive_maximum = 65535
        while pos < props_end:  # only Receive Maximum (0x21) matters here; skip the rest
            ident = body[pos]
            pos += 1
            if ident == 0x21:
                receive_maximum = struct.unpack_from("!H", body, pos)[0]
                pos += 2
            elif ident in (0x24, 0x25, 0x28, 0x29, 0x2A, 0x01, 0x17, 0x19):
                pos += 1
            elif ident in (0x13, 0x22):
                pos += 2
            elif ident in (0x11, 0x27):
                pos += 4
            elif ident in (0x12, 0x1A, 0x1C, 0x1F, 0x15, 0x16):
                size = struct.unpack_from("!H", body, pos)[0]
                pos += 2 + size
            elif ident == 0x26:
                for _ in range(2):
                    size = struct.unpack_from("!H", body, pos)[0]
                    pos += 2 + size
            else:
                break
        return receive_maximum

    def _read_acks(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
                pos = 0
                while len(buf) - pos >= 2:
                    length = buf[pos + 1]  # PUBACKs are 2–4 bytes: one length byte
                    if len(buf) - pos < 2 + length:
                        break
                    if buf[pos] & 0xF0 == 0x40:
                        self.acks.count += 1
                    pos += 2 + length
                buf = buf[pos:]
        except OSError as exc:
            self.acks.error = str(exc)

    def publish_many(self, packets: Iterable[bytes], slice_size: int = 200) -> None:
        """Write pre-encoded PUBLISH packets, keeping in flight under the Receive Maximum."""
        window = max(1, min(self.receive_maximum, 60000) - slice_size)
        pending: list[bytes] = []
        for packet in packets:
            pending.append(packet)
            if len(pending) >= slice_size:
                self._write(pending, window)
                pending = []
        if pending:
            self._write(pending, window)

    def _write(self, packets: list[bytes], window: int) -> None:
        while self.sent - self.acks.count > window:
            if self.acks.error:
                raise ConnectionError(self.acks.error)
            time.sleep(0.0005)
        self.sock.sendall(b"".join(packets))
        self.sent += len(packets)

    def wait_acked(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.acks.count < self.sent and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.acks.count >= self.sent

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        finally:
            self.sock.close()
