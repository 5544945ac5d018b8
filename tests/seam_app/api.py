"""The probe's one route."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

router = APIRouter(tags=["seam_probe"])


class HelloOut(BaseModel):
    app: str
    sites: int


@router.get("/hello", response_model=HelloOut)
def hello(request: Request) -> HelloOut:
    with request.app.state.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM probe.beacon_site").fetchone()
    return HelloOut(app="seam_probe", sites=row[0] if row else 0)
