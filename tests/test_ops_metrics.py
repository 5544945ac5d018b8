"""``GET /metrics``: HTTP figures by route template, ingest figures carried by a real worker's
heartbeat, the pool and live clients, parsed with prometheus_client's own parser."""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gis_core.heartbeat import Heartbeat, HeartbeatError
from gis_core.settings import OpsSettings, Settings
from realtime.ingest import BATCH_SECONDS_BUCKETS, Counters, IngestWorker
from realtime.mqtt import BrokerAddress


def scrape(api: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_requests_are_counted_by_route_template_not_raw_path(api: Any) -> None:
    before = scrape(api)
    for device in ("NO-SUCH-1", "NO-SUCH-2", "NO-SUCH-3"):
        assert api.get(f"/devices/{device}").status_code in (401, 404)
    assert api.get("/no/such/page").status_code == 404
    after = scrape(api)
    statuses = {
        labels
        for (name, labels) in after
        if name == "changzhi_http_requests_total" and ("route", "/devices/{device_id}") in labels
    }
    assert statuses, "the template /devices/{device_id} is the label"
    counted = sum(
        after[("changzhi_http_requests_total", labels)]
        - before.get(("changzhi_http_requests_total", labels), 0)
        for labels in statuses
    )
    assert counted == 3
    assert not any("NO-SUCH" in str(labels) for _, labels in after)
    unmatched = ("changzhi_http_requests_total", "<unmatched>")
    assert any(name == unmatched[0] and ("route", unmatched[1]) in labels for name, labels in after)
    count = value(
        after, "changzhi_http_request_duration_seconds_count", method="GET", route="/metrics"
    )
    assert count is not None and count >= 1  # the first scrape, timed by the second


def test_pool_and_live_clients(api: Any, settings: Settings, admin_headers: dict) -> None:
    samples = scrape(api)
    assert value(samples, "changzhi_db_pool_max") == settings.database.pool_max
    assert value(samples, "changzhi_db_pool_min") == settings.database.pool_min
    assert value(samples, "changzhi_db_pool_requests_waiting") == 0
    requests = value(samples, "changzhi_db_pool_requests_num_total")
    assert requests is not None and requests >= 1  # the admin's login took a connection
    assert value(samples, "changzhi_live_clients") == 0
    token = admin_headers["Authorization"].split()[1]
    with api.websocket_connect(f"/ws/live?token={token}") as ws:
        ws.receive_text()  # the hello: the client is registered by now
        assert value(scrape(api), "changzhi_live_clients") == 1
    deadline = time.monotonic() + 5
    while value(scrape(api), "changzhi_live_clients") != 0:
        assert time.monotonic() < deadline, "the closed console is still counted"
        time.sleep(0.05)


def test_every_installed_worker_kind_is_listed_even_when_none_runs(api: Any) -> None:
    samples = scrape(api)
    assert value(samples, "changzhi_workers_alive", app="platform", role="ingest") is not None
    assert (
        value(samples, "changzhi_workers_alive", app="dispatch", role="dispatch-monitor")
        is not None
    )


def test_batch_latency_histogram_buckets() -> None:
    counters = Counters()
    for seconds in (0.004, 0.005, 0.0051, 20.0):  # below, at, just above the first bound
        counters.time_batch(seconds)
    figures = counters.figures(queued=7)
    counts = figures["batch_seconds"]["counts"]
    assert counts[0] == 2 and counts[1] == 1 and counts[-1] == 1
    assert len(counts) == len(BATCH_SECONDS_BUCKETS) + 1
    assert figures["batch_seconds"]["sum"] == pytest.approx(20.0141)
    assert figures["queued"] == 7


def test_a_real_ingest_workers_figures_reach_metrics(api: Any, settings: Settings) -> None:
    quick = Settings(
        platform=settings.platform,
        database=settings.database,
        # A share group of its own: the session's "ingest" group may hold messages queued for
        # it by earlier modules' workers, which would join this worker's counts.
        mqtt=settings.mqtt.model_copy(update={"share_group": "opstest"}),
        auth=settings.auth,
        ops=OpsSettings(heartbeat_s=0.2, stale_after_s=30),
    )
    worker = IngestWorker(quick, "opstest")
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    broker = BrokerAddress.parse(settings.mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(broker.username, broker.password)
    client.connect(broker.host, broker.port)
    client.loop_start()
    name = "ingest@opstest"
    try:
        deadline = time.monotonic() + 10
        while (
            value(
                scrape(api),
                "changzhi_worker_up",
                app="platform",
                role="ingest",
                worker=name,
                host=worker.heartbeat.host,
            )
            != 1
        ):
            assert time.monotonic() < deadline, "the worker never beat"
            time.sleep(0.1)
        # What the worker got on subscribing (statuses, earlier modules' leftovers) is counted
        # before our messages; the checks below are on what ours added.
        time.sleep(1.0)
        labels = {"worker": name}
        before = scrape(api)
        received0 = value(before, "changzhi_ingest_received_total", **labels) or 0
        stored0 = value(before, "changzhi_ingest_stored_total", **labels) or 0
        unknown0 = (
            value(before, "changzhi_ingest_dead_letters_total", reason="unknown_device", **labels)
            or 0
        )
        # A device nobody registered: every message a dead letter, reason unknown_device, even
        # one that is not JSON (the device is checked first).
        for seq in range(3):
            client.publish(
                "cz/v1/air/OPS-NOBODY-1/telemetry",
                f'{{"ts": 1764900000000, "seq": {seq}, "pm25": 30}}',
                qos=1,
            ).wait_for_publish(5)
        client.publish("cz/v1/air/OPS-NOBODY-1/telemetry", b"{not json", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(api)
            unknown = value(
                samples, "changzhi_ingest_dead_letters_total", reason="unknown_device", **labels
            )
            if unknown is not None and unknown - unknown0 == 4:
                break
            assert time.monotonic() < deadline, unknown
            time.sleep(0.1)
        assert value(samples, "changzhi_ingest_received_total", **labels) - received0 == 4
        assert value(samples, "changzhi_ingest_stored_total", **labels) - stored0 == 0
        batches = value(samples, "changzhi_ingest_batches_total", **labels)
        assert batches is not None and batches >= 1
        assert value(samples, "changzhi_ingest_batch_duration_seconds_count", **labels) == batches
        assert value(samples, "changzhi_ingest_queue_depth", **labels) == 0
    finally:
        client.loop_stop()
        client.disconnect()
        worker.stop()
        runner.join(20)
    # A clean stop takes the worker off the list: it is not reported stalled.
    samples = scrape(api)
    assert not any(("worker", name) in labels for _, labels in samples)


def test_heartbeat_needs_names(db_url: str) -> None:
    with pytest.raises(HeartbeatError, match="role and a worker name"):
        Heartbeat(db_url, "", "x")
    with pytest.raises(HeartbeatError, match="role and a worker name"):
        Heartbeat(db_url, "ingest", "  ")


def test_a_heartbeat_against_an_absent_database_reports_failure_not_crash() -> None:
    beat = Heartbeat("postgresql://nobody@127.0.0.1:1/none", "ingest", "ingest@nowhere")
    assert beat.beat({"stored": 1}) is False
