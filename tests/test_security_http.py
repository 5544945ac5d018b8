"""Issue 12 over HTTP: a token without expiry, times at the ends of the calendar.

Each test was run against the code before its fix and failed there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

# --------------------------------------------------------------------------- tokens


def test_a_signed_token_without_expiry_is_refused(api, settings, admin_headers) -> None:
    user_id = api.get("/auth/me", headers=admin_headers).json()["id"]
    claims = {"sub": str(user_id), "iat": datetime.now(UTC)}
    forever = jwt.encode(claims, settings.jwt_secret, algorithm=settings.auth.algorithm)
    response = api.get("/auth/me", headers={"Authorization": f"Bearer {forever}"})
    assert response.status_code == 401, response.text
    # The same claims with an expiry in the future are accepted: the signature is fine.
    claims["exp"] = datetime.now(UTC) + timedelta(minutes=5)
    good = jwt.encode(claims, settings.jwt_secret, algorithm=settings.auth.algorithm)
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_the_live_socket_refuses_a_token_without_expiry(api, settings, admin_headers) -> None:
    from starlette.websockets import WebSocketDisconnect

    user_id = api.get("/auth/me", headers=admin_headers).json()["id"]
    forever = jwt.encode({"sub": str(user_id)}, settings.jwt_secret, settings.auth.algorithm)
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        api.websocket_connect(f"/ws/live?token={forever}") as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 4401


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "route, query", [("/devices/X/track", {}), ("/devices/X/series", {"field": "pm25"})]
)
@pytest.mark.parametrize(
    "end", ["0001-01-01T01:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z"]
)
def test_dates_out_of_range_are_422(api, admin_headers, route: str, query: dict, end: str) -> None:
    response = api.get(route, params={**query, "end": end}, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert "supported" in response.json()["detail"]


def test_dates_in_range_still_answer(api, admin_headers) -> None:
    end = datetime.now(UTC).isoformat()
    response = api.get("/devices/X/track", params={"end": end}, headers=admin_headers)
    assert response.status_code in (200, 404), response.text
