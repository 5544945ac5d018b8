"""Issue 12.3: starting the broker never drops the devices' accounts (nor the gateways' ACL).

A broker of its own on a free port: stopping and starting the session's would disturb the
other tests."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from apps.platform.services import Mosquitto, free_port, service_account


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    root = Path(tempfile.mkdtemp(prefix="changzhi-sec-mqtt-"))
    root.chmod(0o755)
    mosquitto = Mosquitto(
        root=root,
        port=free_port(),
        platform_password=secrets.token_urlsafe(12),
        account=service_account("changzhi"),
    )
    try:
        yield mosquitto
    finally:
        mosquitto.stop()
        shutil.rmtree(root, ignore_errors=True)


def login(broker: Mosquitto, user: str, password: str) -> bool:
    """Whether the broker accepts this login."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    answers: list[bool] = []
    client.on_connect = lambda c, u, f, reason, p: answers.append(not reason.is_failure)
    client.connect(broker.host, broker.port)
    deadline = time.monotonic() + 5
    while not answers and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    assert answers, "the broker did not answer"
    return answers[0]


def test_stop_and_start_keep_every_account(broker: Mosquitto) -> None:
    broker.start()
    broker.write_accounts({"DEV-1": "pw-dev-1", "GW-9": "pw-gw-9"}, ["GW-9"])
    broker.reload()
    time.sleep(0.3)
    assert login(broker, "DEV-1", "pw-dev-1")
    assert not login(broker, "DEV-1", "wrong")
    broker.stop()
    broker.start()  # `changzhi services stop` then `start`
    assert login(broker, "DEV-1", "pw-dev-1")
    assert login(broker, "GW-9", "pw-gw-9")
    assert login(broker, "platform", broker.platform_password)
    acl = broker.acl_file.read_text()
    assert "user GW-9" in acl and "topic write cz/v1/gateway/GW-9/telemetry" in acl
    # A new platform password (rotated secret) is taken on start; the devices stay.
    broker.stop()
    broker.platform_password = "rotated-" + secrets.token_urlsafe(8)
    broker.start()
    assert login(broker, "platform", broker.platform_password)
    assert login(broker, "DEV-1", "pw-dev-1")
