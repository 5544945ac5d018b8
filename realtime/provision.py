"""Device credentials for the broker.

Each device logs in to MQTT as its own id with a password derived from the platform's device
secret (HMAC-SHA256), so the broker's password file can be rebuilt from the registry at any
time and no plaintext password is stored. The broker's ACL lets a device publish only under
its own topics.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import psycopg


def device_password(secret: str, device_id: str) -> str:
    digest = hmac.new(secret.encode(), device_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:24]


def device_credentials(conn: psycopg.Connection, secret: str) -> dict[str, str]:
    """MQTT username -> password for every registered device."""
    rows = conn.execute("SELECT id FROM iot.device ORDER BY id").fetchall()
    return {device_id: device_password(secret, device_id) for (device_id,) in rows}
