"""Many MQTT logins on one thread: paho clients driven by a single selector loop.

A device has its own login (the broker's ACL lets it publish only under its own topics), so a
thousand devices are a thousand MQTT connections. They do not need a thousand threads: every
client's socket is registered with one ``selectors`` loop (epoll on Linux) that calls paho's
``loop_read``/``loop_write``/``loop_misc`` — paho's documented external-loop integration.
Everything that touches the clients (connecting, publishing, callbacks) happens on the loop's
thread; other threads only :meth:`Pool.wake` it.

A login may also listen: its ``subscriptions`` (a vehicle terminal's own command topic) are
made on every connect, and what arrives is handed to the pool's ``on_message`` on the same
thread.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from realtime.mqtt import BrokerAddress, make_client

__all__ = ["BrokerUnreachable", "Link", "Pool"]

log = logging.getLogger(__name__)

KEEPALIVE_S = 60
MAX_INFLIGHT_DEVICE = 100
MAX_INFLIGHT_SHARED = 2000
MAX_BACKLOG = 20_000  # unacknowledged publishes per login before new ones are dropped
NO_MATCHING_SUBSCRIBERS = 0x10  # PUBACK reason: the broker took it, but nobody was subscribed
RESEND_AFTER_S = 0.5
MAX_RESENDS = 10  # then the reading is given up (nothing ingests: the platform is not running)


class BrokerUnreachable(ConnectionError):
    """The broker's address does not answer."""


@dataclass(eq=False)
class Link:
    """One MQTT login: a device, a gateway, or the shared platform account.

    ``state`` is one of ``new``, ``connecting``, ``up``, ``down`` (lost, reconnecting),
    ``refused`` (bad credentials or not authorised: not retried) and ``closed``.
    """

    name: str
    username: str
    password: str | None
    client_id: str
    status_topic: str | None = None  # retained online/offline (Last Will) of a device login
    shared: bool = False
    subscriptions: tuple[str, ...] = ()  # topic filters (QoS 1) made on every connect
    subscribed: bool = False  # the broker granted every subscription of the current connection
    sub_refusal: str | None = None  # why the broker refused a subscription, if it did
    state: str = "new"
    refusal: str | None = None
    inflight: int = 0
    # QoS 1 publishes not yet acknowledged (mid -> topic, payload, resends so far), and those
    # the broker had no subscriber for, to send again (due time, topic, payload, resends).
    unacked: dict[int, tuple[str, bytes, int]] = field(default_factory=dict, repr=False)
    resend: list[tuple[float, str, bytes, int]] = field(default_factory=list, repr=False)
    given_up: int = 0
    backoff_s: float = 1.0
    retry_at: float = 0.0
    client: mqtt.Client | None = field(default=None, repr=False)


class Pool:
    """The logins of a run and the loop that drives them.

    Parameters
    ----------
    url
        The broker (``mqtt://host:port``); its credentials are those of the shared links.
    on_ack
        Called on the loop thread for every acknowledged QoS 1 publish: ``(link, ok)``.
    on_message
        Called on the loop thread for every message a login receives on its subscriptions:
        ``(link, topic, payload)``. Whatever it raises is logged, never fatal to the loop.
    """

    def __init__(
        self,
        url: str,
        on_ack: Callable[[Link, bool], None] | None = None,
        on_message: Callable[[Link, str, bytes], None] | None = None,
    ) -> None:
        self.url = url
        self.address = BrokerAddress.parse(url)
        self.links: list[Link] = []
        self.on_ack = on_ack or (lambda link, ok: None)
        self.on_message = on_message or (lambda link, topic, payload: None)
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._last_misc = 0.0
        self.stopping = False

    # ------------------------------------------------------------------ set-up

    def check_reachable(self, timeout: float = 3.0) -> None:
        """Raise :class:`BrokerUnreachable` unless the broker accepts TCP connections."""
        try:
            with socket.create_connection((self.address.host, self.address.port), timeout):
                pass
        except OSError as exc:
            raise BrokerUnreachable(
                f"cannot reach the MQTT broker at {self.address.host}:{self.address.port}"
                f" ({exc.strerror or exc})"
            ) from exc

    def add(
        self,
        name: str,
        username: str,
        password: str | None,
        *,
        status_topic: str | None = None,
        shared: bool = False,
        run_id: str = "",
        subscriptions: tuple[str, ...] = (),
    ) -> Link:
        """A login to open with :meth:`connect_all`."""
        link = Link(
            name=name,
            username=username,
            password=password,
            client_id=f"sim-{name}-{run_id}"[:64],
            status_topic=status_topic,
            shared=shared,
            subscriptions=subscriptions,
        )
        self.links.append(link)
        return link

    def _client(self, link: Link) -> mqtt.Client:
        client = make_client(self.url, "sim", client_id=link.client_id)
        client.username_pw_set(link.username, link.password)
        client.max_inflight_messages_set(
            MAX_INFLIGHT_SHARED if link.shared else MAX_INFLIGHT_DEVICE
        )
        client.user_data_set(link)
        if link.status_topic:
            # A dropped connection (crash, network) makes the broker announce the device offline;
            # a clean disconnect does not.
            client.will_set(link.status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    def connect_all(
        self, timeout: float = 20.0, should_stop: Callable[[], bool] | None = None
    ) -> None:
        """Open every login and wait (driving the loop) until each is up or refused.

        Raises
        ------
        BrokerUnreachable
            When the broker refuses or drops the TCP connections.
        """
        deadline = time.monotonic() + timeout
        for k, link in enumerate(self.links):
            link.client = self._client(link)
            link.state = "connecting"
            try:
                link.client.connect(self.address.host, self.address.port, keepalive=KEEPALIVE_S)
            except OSError as exc:
                raise BrokerUnreachable(
                    f"cannot reach the MQTT broker at {self.address.host}:{self.address.port}"
                    f" ({exc.strerror or exc})"
                ) from exc
            if k % 50 == 49:
                self.poll(0.0)  # let CONNACKs in while the rest connect
        while time.monotonic() < deadline:
            if all(link.state != "connecting" for link in self.links):
                return
            if should_stop is not None and should_stop():
                return
            self.poll(0.05)

    # ------------------------------------------------------------------ paho callbacks

    def _on_socket_open(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _on_socket_close(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def _on_register_write(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def _on_unregister_write(self, client: mqtt.Client, link: Link, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.modify(sock, selectors.EVENT_READ, client)

    def _on_connect(
        self, client: mqtt.Client, link: Link, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            link.state = "refused"
            link.refusal = str(reason)
            return
        link.state = "up"
        link.backoff_s = 1.0
        link.subscribed = False
        if link.subscriptions:
            # Every connect: the simulator's sessions are clean, and retained orders are
            # delivered again on subscribing, so a reconnected terminal learns its order.
            client.subscribe([(topic, 1) for topic in link.subscriptions])
        if link.status_topic:
            client.publish(link.status_topic, b"online", qos=1, retain=True)
            link.inflight += 1

    def _on_disconnect(
        self, client: mqtt.Client, link: Link, flags: Any, reason: Any, props: Any
    ) -> None:
        link.inflight = 0
        link.unacked.clear()  # clean sessions: what was in flight is gone with the connection
        if link.state == "refused" or self.stopping:
            if link.state != "refused":
                link.state = "closed"
            return
        link.state = "down"
        link.retry_at = time.monotonic() + link.backoff_s
        link.backoff_s = min(link.backoff_s * 2, 30.0)

    def _on_publish(
        self, client: mqtt.Client, link: Link, mid: int, reason: Any, props: Any
    ) -> None:
        link.inflight = max(0, link.inflight - 1)
        sent = link.unacked.pop(mid, None)
        if getattr(reason, "value", 0) == NO_MATCHING_SUBSCRIBERS and sent is not None:
            # As a real v5 device must: nobody took it (the ingest workers re-subscribing after
            # a broker restart), so it goes again shortly — acknowledged only when delivered.
            topic, payload, resends = sent
            if resends < MAX_RESENDS:
                link.resend.append((time.monotonic() + RESEND_AFTER_S, topic, payload, resends + 1))
                return
            link.given_up += 1
        self.on_ack(link, not reason.is_failure)

    def _on_subscribe(
        self, client: mqtt.Client, link: Link, mid: int, reasons: Any, props: Any
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            link.sub_refusal = ", ".join(refused)
            log.warning(
                "the broker refused %s's subscription to %s: %s",
                link.name,
                ", ".join(link.subscriptions),
                link.sub_refusal,
            )
        else:
            link.subscribed = True

    def _on_message(self, client: mqtt.Client, link: Link, msg: mqtt.MQTTMessage) -> None:
        try:
            self.on_message(link, msg.topic, bytes(msg.payload))
        except Exception:  # a bad message must not end the loop every login depends on
            log.exception("a message on %s for %s could not be handled", msg.topic, link.name)

    # ------------------------------------------------------------------ running

    def publish(
        self, link: Link, topic: str, payload: bytes, qos: int = 1, *, resends: int = 0
    ) -> bool:
        """Queue a message on a login; False when the login is not up or is backed up."""
        if link.state != "up" or link.client is None or link.inflight >= MAX_BACKLOG:
            return False
        info = link.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if qos > 0:
            link.inflight += 1
            link.unacked[info.mid] = (topic, payload, resends)
        return True

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for socket events and handle them."""
        for key, mask in self.selector.select(max(0.0, timeout)):
            client = key.data
            if client is None:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE and client.socket() is not None:
                client.loop_write()
        now = time.monotonic()
        if now - self._last_misc >= 1.0:
            self._last_misc = now
            self._housekeeping(now)

    def _housekeeping(self, now: float) -> None:
        for link in self.links:
            client = link.client
            if client is None:
                continue
            if link.resend and link.state == "up":
                due = [r for r in link.resend if r[0] <= now]
                link.resend = [r for r in link.resend if r[0] > now]
                for _, topic, payload, resends in due:
                    if not self.publish(link, topic, payload, resends=resends):
                        link.resend.append((now + RESEND_AFTER_S, topic, payload, resends))
            if link.state == "down" and not self.stopping and now >= link.retry_at:
                try:
                    link.state = "connecting"
                    client.reconnect()
                except OSError:
                    link.state = "down"
                    link.retry_at = now + link.backoff_s
                    link.backoff_s = min(link.backoff_s * 2, 30.0)
            elif client.socket() is not None:
                client.loop_misc()

    def wake(self) -> None:
        """Interrupt a :meth:`poll` from another thread."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def pending(self) -> int:
        """Publishes not yet acknowledged, over all logins that are up."""
        return sum(link.inflight for link in self.links if link.state == "up")

    def close(self, drain_s: float = 3.0) -> None:
        """Wait for outstanding acknowledgements, then disconnect every login cleanly (no Last
        Will is sent) and release the sockets."""
        deadline = time.monotonic() + drain_s
        while self.pending() and time.monotonic() < deadline:
            self.poll(0.05)
        self.stopping = True
        for link in self.links:
            if link.client is not None and link.state in ("up", "connecting"):
                link.client.disconnect()
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and any(
            link.client is not None and link.client.socket() is not None for link in self.links
        ):
            self.poll(0.05)
        for link in self.links:
            sock = link.client.socket() if link.client is not None else None
            if sock is not None:  # the broker never answered the DISCONNECT: just drop it
                self._on_socket_close(link.client, link, sock)  # type: ignore[arg-type]
                sock.close()
            if link.state != "refused":
                link.state = "closed"
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------------ summary

    def counts(self) -> dict[str, int]:
        """Logins by state."""
        out: dict[str, int] = {}
        for link in self.links:
            out[link.state] = out.get(link.state, 0) + 1
        return out
