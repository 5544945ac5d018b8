"""Device credentials for the broker.

Each device logs in to MQTT as its own id with a password derived from the platform's device
secret (HMAC-SHA256), so the broker's password file can be rebuilt from the registry at any
time and no plaintext password is stored. The broker's ACL lets a device publish only under
its own topics, and only a registered gateway on the gateway topic family.
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


def gateway_ids(conn: psycopg.Connection) -> list[str]:
    """The registered gateways (devices of kind ``gateway``)."""
    rows = conn.execute("SELECT id FROM iot.device WHERE kind = 'gateway' ORDER BY id").fetchall()
    return [gateway_id for (gateway_id,) in rows]


class UnknownDevices(ValueError):
    """Devices named for a gateway that are not in the registry (or are gateways)."""


def register_gateway(conn: psycopg.Connection, gateway_id: str, device_ids: list[str]) -> int:
    """Register ``gateway_id`` as a gateway and put ``device_ids`` behind it (in the caller's
    transaction); returns how many devices it now carries. Devices behind another gateway
    move to this one; a broker account follows at the next provisioning."""
    if not gateway_id or len(gateway_id) > 64 or any(c in gateway_id for c in "/+#"):
        raise ValueError(f"gateway id {gateway_id!r}: 1..64 characters, none of / + #")
    found = conn.execute("SELECT kind FROM iot.device WHERE id = %s", (gateway_id,)).fetchone()
    if found is not None and found[0] != "gateway":
        raise ValueError(f"{gateway_id} is registered as a {found[0]} device, not a gateway")
    conn.execute(
        "INSERT INTO iot.device (id, kind) VALUES (%s, 'gateway') ON CONFLICT (id) DO NOTHING",
        (gateway_id,),
    )
    moved = conn.execute(
        "UPDATE iot.device SET gateway_id = %s WHERE id = ANY(%s) AND kind <> 'gateway'"
        " RETURNING id",
        (gateway_id, device_ids),
    ).fetchall()
    missing = sorted(set(device_ids) - {r[0] for r in moved})
    if missing:
        raise UnknownDevices(
            f"not registered (or gateways themselves): {', '.join(missing[:10])}"
            + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        )
    row = conn.execute(
        "SELECT count(*) FROM iot.device WHERE gateway_id = %s", (gateway_id,)
    ).fetchone()
    return int(row[0]) if row else 0
