"""GET /metrics: Prometheus' text format from prometheus_client, job and HTTP figures, scrape-time gauges, the token."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import create_app
from tests.conftest import FAST, FakeClock

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client, **headers: str) -> Samples:
    """Return every sample of GET /metrics keyed by (name, labels)."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value."""
    return samples[(name, frozenset(labels.items()))]


def submit(client, role: str = "free", user: str = "alice") -> str:
    """Submit a job through the API; return its id."""
    response = client.post("/translate", json={"role": role}, headers={"X-User-Id": user})
    assert response.status_code == 202
    return response.get_json()["job_id"]


def test_metrics_are_prometheus_text_with_the_documented_families(client) -> None:
    """/metrics answers the Prometheus text format with every metric the README lists, typed as documented."""
    response = client.get("/metrics")
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f.type for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert families == {
        "translation_jobs_submitted": "counter",
        "translation_jobs_finished": "counter",
        "translation_attempt_duration_seconds": "histogram",
        "translation_queue_wait_seconds": "histogram",
        "http_requests": "counter",
        "http_request_duration_seconds": "histogram",
        "translation_queue_depth": "gauge",
        "translation_jobs_running": "gauge",
        "translation_jobs_stored": "gauge",
        "http_long_polls_held": "gauge",
        "http_event_streams_open": "gauge",
        "translation_injected_faults": "counter",
    }
    assert "_created" not in response.get_data(as_text=True)


def test_openmetrics_is_answered_when_the_accept_header_asks_for_it(client) -> None:
    """Accept: application/openmetrics-text gets OpenMetrics, ending with # EOF."""
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


def test_submissions_and_outcomes_are_counted_by_role(client, clock: FakeClock, auth) -> None:
    """Submitted jobs count by role; finished ones by role and outcome (completed, cancelled)."""
    submit(client, "free")
    submit(client, "premium")
    submit(client, "premium")
    cancelled = submit(client, "free")
    client.post(f"/cancel/{cancelled}", headers=auth.ok)
    clock.advance(60)
    samples = scrape(client)
    assert value(samples, "translation_jobs_submitted_total", role="free") == 2
    assert value(samples, "translation_jobs_submitted_total", role="premium") == 2
    assert value(samples, "translation_jobs_finished_total", role="premium", outcome="completed") == 2
    assert value(samples, "translation_jobs_finished_total", role="free", outcome="completed") == 1
    assert value(samples, "translation_jobs_finished_total", role="free", outcome="cancelled") == 1
    assert value(samples, "translation_jobs_finished_total", role="free", outcome="permanently_failed") == 0


def test_attempt_durations_are_observed_by_role_and_outcome(clock: FakeClock) -> None:
    """Each attempt's simulated seconds land in the histogram: completed ones and failed ones apart."""
    app = create_app({**FAST, "ERROR_RATE": 1.0, "MAX_RETRIES": 1, "WORKERS": 1}, clock=clock)
    client = app.test_client()
    submit(client, "free")
    clock.advance(30)
    app.extensions["simulator"].engine.configure({"ERROR_RATE": 0.0})
    submit(client, "premium")
    clock.advance(30)
    samples = scrape(client)
    assert value(samples, "translation_attempt_duration_seconds_count", role="free", outcome="failed") == 2
    assert 0 < value(samples, "translation_attempt_duration_seconds_sum", role="free", outcome="failed") <= 20
    assert value(samples, "translation_attempt_duration_seconds_count", role="premium", outcome="completed") == 1
    assert value(samples, "translation_attempt_duration_seconds_sum", role="premium", outcome="completed") == 5
    assert value(samples, "translation_jobs_finished_total", role="free", outcome="permanently_failed") == 1


def test_cancelling_a_running_job_observes_its_cut_short_attempt(client, clock: FakeClock, auth) -> None:
    """A running job cancelled after 3 s adds a 3 s attempt with outcome cancelled; a queued one adds none."""
    running = submit(client)
    submit(client)
    submit(client)
    queued = submit(client)  # the third job takes the cancelled one's slot; this one stays queued
    clock.advance(3)
    client.post(f"/cancel/{running}", headers=auth.ok)
    client.post(f"/cancel/{queued}", headers=auth.ok)
    samples = scrape(client)
    assert value(samples, "translation_attempt_duration_seconds_count", role="free", outcome="cancelled") == 1
    assert value(samples, "translation_attempt_duration_seconds_sum", role="free", outcome="cancelled") == 3


def test_queue_wait_is_the_time_from_queueing_to_the_attempts_start(clock: FakeClock, auth) -> None:
    """In manual mode a job processed 30 s after its submission waited 30 s; a retry waits from its failure."""
    app = create_app({**FAST, "PROCESSING_MODE": "manual"}, clock=clock)
    client = app.test_client()
    submit(client, "premium")
    clock.advance(30)
    client.post("/process_jobs", headers=auth.ok)
    samples = scrape(client)
    assert value(samples, "translation_queue_wait_seconds_count", role="premium") == 1
    assert value(samples, "translation_queue_wait_seconds_sum", role="premium") == 30
    assert value(samples, "translation_queue_wait_seconds_bucket", role="premium", le="10.0") == 0
    assert value(samples, "translation_queue_wait_seconds_bucket", role="premium", le="30.0") == 1


def test_gauges_read_the_store_at_scrape_time(client, clock: FakeClock) -> None:
    """Queue depth by role, running and stored jobs are what the store holds when scraped, with no request between."""
    for role in ("free", "free", "free", "premium", "premium"):
        submit(client, role)
    samples = scrape(client)  # two free jobs run; one free and both premium ones wait
    assert value(samples, "translation_queue_depth", role="free") == 1
    assert value(samples, "translation_queue_depth", role="premium") == 2
    assert value(samples, "translation_jobs_running") == 2
    clock.advance(10)  # the free jobs complete and the premium ones start, with no request in between
    samples = scrape(client)
    assert value(samples, "translation_queue_depth", role="free") == 1
    assert value(samples, "translation_queue_depth", role="premium") == 0
    assert value(samples, "translation_jobs_running") == 2
    assert value(samples, "translation_jobs_stored") == 5


def test_long_polls_held_and_open_event_streams_are_gauges(app, client) -> None:
    """http_long_polls_held and http_event_streams_open are the gate's and the hub's counts at scrape time."""
    simulator = app.extensions["simulator"]
    assert simulator.long_polls.enter(10)
    streams = [simulator.events.subscribe(), simulator.events.subscribe()]
    samples = scrape(client)
    assert value(samples, "http_long_polls_held") == 1
    assert value(samples, "http_event_streams_open") == 2
    simulator.long_polls.leave()
    for stream in streams:
        stream.close()
    samples = scrape(client)
    assert value(samples, "http_long_polls_held") == 0 and value(samples, "http_event_streams_open") == 0


def test_requests_are_counted_by_route_template_method_and_status(client) -> None:
    """Requests count under their route template (not the path); what no route took (404, 405) under `unmatched`."""
    job_id = submit(client)
    client.get(f"/status/{job_id}")
    client.get(f"/status/{job_id}")
    client.get("/status/00000000-0000-4000-8000-000000000000")
    client.get("/no/such/path")
    client.delete("/healthz")
    samples = scrape(client)
    count = "http_requests_total"
    assert value(samples, count, route="/status/{job_id}", method="GET", status="200") == 2
    assert value(samples, count, route="/status/{job_id}", method="GET", status="404") == 1
    assert value(samples, count, route="/translate", method="POST", status="202") == 1
    assert value(samples, count, route="unmatched", method="GET", status="404") == 1
    assert value(samples, count, route="unmatched", method="DELETE", status="405") == 1
    assert value(samples, "http_request_duration_seconds_count", route="/status/{job_id}", method="GET") == 3
    assert not any("no/such" in str(labels) for _, labels in samples)


def test_injected_faults_are_counted_by_kind(clock: FakeClock) -> None:
    """translation_injected_faults_total{kind} is what the fault injector drew, and /metrics itself is never faulted."""
    app = create_app({**FAST, "FAULT_RATE": 1.0, "FAULT_DELAY": 0.0}, clock=clock)
    client = app.test_client()
    for _ in range(20):
        client.get("/config")
    samples = scrape(client)
    injected = app.extensions["simulator"].faults.injected
    assert sum(injected.values()) == 20
    for kind, count in injected.items():
        assert value(samples, "translation_injected_faults_total", kind=kind) == count


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [(None, 401, "missing_token"), ("Bearer wrong", 401, "invalid_token"), ("Basic abc", 401, "missing_token"),
     ("Bearer scrape-me", 200, None)],
)
def test_a_metrics_token_requires_a_bearer(clock: FakeClock, authorization, status, code) -> None:
    """With METRICS_TOKEN set, /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (401 problem+json otherwise)."""
    client = create_app({**FAST, "METRICS_TOKEN": "scrape-me"}, clock=clock).test_client()
    response = client.get("/metrics", headers={"Authorization": authorization} if authorization else {})
    assert response.status_code == status
    if code:
        assert response.mimetype == "application/problem+json" and response.get_json()["code"] == code
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="metrics"')


def test_the_admin_token_does_not_open_protected_metrics(clock: FakeClock, auth) -> None:
    """The admin token is not the metrics token."""
    client = create_app({**FAST, "METRICS_TOKEN": "scrape-me"}, clock=clock).test_client()
    assert client.get("/metrics", headers=auth.ok).status_code == 401


def test_the_metrics_token_is_never_shown_in_the_config(clock: FakeClock) -> None:
    """GET /config leaves METRICS_TOKEN out, like ADMIN_TOKEN."""
    client = create_app({**FAST, "METRICS_TOKEN": "scrape-me"}, clock=clock).test_client()
    config = client.get("/config").get_json()
    assert "METRICS_TOKEN" not in config and "scrape-me" not in config.values()


def test_apps_keep_their_figures_apart(clock: FakeClock) -> None:
    """Two apps in one process have their own registries: one's submissions never show in the other's metrics."""
    first = create_app(FAST, clock=clock).test_client()
    second = create_app(FAST, clock=clock).test_client()
    submit(first)
    assert value(scrape(second), "translation_jobs_submitted_total", role="free") == 0


def test_the_access_log_line_carries_the_processing_time(client, caplog: pytest.LogCaptureFixture) -> None:
    """Every request's access log line ends with the milliseconds it took to make the answer."""
    with caplog.at_level(logging.INFO, logger="server"):
        client.get("/healthz")
    (line,) = [r.getMessage() for r in caplog.records if '"GET /healthz"' in r.getMessage()]
    assert line.endswith("ms") and float(line.rsplit(" ", 1)[1].removesuffix("ms")) >= 0
