"""The queries behind the core's HTTP routers, one module per router.

Each function takes an explicit psycopg connection and raises the domain errors of
:mod:`gis_core.errors`; none imports FastAPI, so the command line, benches and tests call them
as they are, and a router only wires a request to one of them (tipg's habit). They live here,
beside the routers they serve, because they answer the routers' questions one for one
(``web/routers/telemetry.py`` over ``web/services/telemetry.py``); the domain logic they share
with the command line stays where it was (:mod:`realtime.health`, :mod:`gis_core.identity`,
:mod:`gis_core.heartbeat`, :mod:`gis_core.throttle`).

Routers with no SQL of their own have their service elsewhere: ``auth`` in
:mod:`gis_core.identity` and :mod:`gis_core.throttle`, ``metrics`` in
:mod:`gis_core.heartbeat`, ``applications`` in :mod:`gis_core.application`, ``live`` in
:mod:`realtime.live`.
"""
