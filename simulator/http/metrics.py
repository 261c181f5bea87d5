"""Prometheus metrics of one app, with prometheus_client: what the engine did, what the HTTP layer served.

Counters and histograms are fed as things happen: the engine's changes through `JobEngine.observe`
(in the transaction that makes them), requests from the app's after-request hook. Everything that is
state — queue depth, running jobs, held long-polls, open event streams, injected faults — is read at
scrape time by a collector, in O(1) whatever the number of stored jobs. Each app has its own registry,
so apps in one process (the tests) never share figures. Times are in seconds, simulated time for the
engine's figures (the same as real time in a running server).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from simulator.domain import ROLES, Job

if TYPE_CHECKING:
    from simulator.http.context import Simulator

#: Attempts take seconds to minutes (TRANSLATION_DELAY 15 s by default, premium half of it).
ATTEMPT_BUCKETS = (0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1800)
#: A queued job may wait from nothing (a free slot) to hours (manual mode, a long queue).
QUEUE_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
#: Most answers take milliseconds; long-polls are held up to MAX_WAIT (25 s by default).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OUTCOMES = ("completed", "permanently_failed", "cancelled")
UNMATCHED_ROUTE = "unmatched"  # a request no route took (404, 405), so that scanners cannot add series

# No `_created` series beside every counter and histogram: the Prometheus text format does not need them,
# and they would double what each scrape sends (a process-wide switch of prometheus_client's public API).
disable_created_metrics()


class Metrics:
    """The app's registry and the metrics the app and engine feed."""

    def __init__(self, simulator: Simulator) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.submitted = Counter("translation_jobs_submitted", "Jobs accepted by POST /translate.", ["role"],
                                 registry=registry)
        self.finished = Counter("translation_jobs_finished", "Jobs that reached a final status.",
                                ["role", "outcome"], registry=registry)
        self.attempt_duration = Histogram(
            "translation_attempt_duration_seconds",
            "Time from an attempt's start to its end: completed, failed (retried or not) or cancelled.",
            ["role", "outcome"], buckets=ATTEMPT_BUCKETS, registry=registry)
        self.queue_wait = Histogram(
            "translation_queue_wait_seconds",
            "Time a job waited in the queue before an attempt started (first attempts and retries).",
            ["role"], buckets=QUEUE_WAIT_BUCKETS, registry=registry)
        self.requests = Counter("http_requests", "HTTP requests answered, by route template, method and status.",
                                ["route", "method", "status"], registry=registry)
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time to make each answer, by route template (for /events: until the stream starts).",
            ["route", "method"], buckets=REQUEST_BUCKETS, registry=registry)
        for role in ROLES:  # every series exists from the start, at 0, so rate() sees the first one
            self.submitted.labels(role)
            for outcome in OUTCOMES:
                self.finished.labels(role, outcome)
        registry.register(_StateCollector(simulator))
        self._queued_since: dict[str, float] = {}
        self._engine = simulator.engine
        simulator.engine.observe(self._on_change)

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """Count one answered request and the time it took."""
        route = route or UNMATCHED_ROUTE
        self.requests.labels(route, method, str(status)).inc()
        self.request_duration.labels(route, method).observe(seconds)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """Return the registry in the format `accept` asks for (Prometheus text, or OpenMetrics) and its type."""
        self._engine.advance()  # what fell due since the last request is counted before the counters are read
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def _on_change(self, kind: str, job: Job, at: float) -> None:
        """Feed the job counters and histograms from one engine change (in the engine's transaction)."""
        role = job.role
        if kind == "submitted":
            self.submitted.labels(role).inc()
            self._queued_since[job.job_id] = at
        elif kind in ("started", "retried"):
            # A job queued before this process started (a reopened store) has no known queueing time.
            queued = self._queued_since.pop(job.job_id, job.created_at if job.attempts == 1 else None)
            if queued is not None:
                self.queue_wait.labels(role).observe(max(0.0, at - queued))
        elif kind == "failed":
            self.attempt_duration.labels(role, "failed").observe(max(0.0, at - job.attempt_started_at))
            self._queued_since[job.job_id] = at
        elif kind == "removed":  # POST /admin/reset removes queued jobs too
            self._queued_since.pop(job.job_id, None)
        elif kind in OUTCOMES:
            self.finished.labels(role, kind).inc()
            if kind == "cancelled":
                if job.job_id in self._queued_since:  # cancelled while queued: no attempt was cut short
                    del self._queued_since[job.job_id]
                    return
                outcome = "cancelled"
            else:
                outcome = "completed" if kind == "completed" else "failed"
            self.attempt_duration.labels(role, outcome).observe(max(0.0, at - job.attempt_started_at))


class _StateCollector:
    """Gauges and counters read at scrape time from the store and the HTTP layer's own counts."""

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator

    def collect(self) -> Iterator[Metric]:
        """Yield the queue depth, running and stored jobs, held long-polls, open streams, injected faults."""
        simulator = self._simulator
        depths = simulator.engine.depths()
        queued = GaugeMetricFamily("translation_queue_depth", "Jobs waiting in the queue, by role.",
                                   labels=["role"])
        for role in ROLES:
            queued.add_metric([role], depths[role])
        yield queued
        yield GaugeMetricFamily("translation_jobs_running", "Jobs being translated now.", value=depths["running"])
        yield GaugeMetricFamily("translation_jobs_stored", "Jobs stored (any status).", value=depths["stored"])
        yield GaugeMetricFamily("http_long_polls_held", "Status requests held as long-polls now.",
                                value=simulator.long_polls.held)
        yield GaugeMetricFamily("http_event_streams_open", "GET /events streams open now.",
                                value=simulator.events.open_streams)
        faults = CounterMetricFamily("translation_injected_faults", "Faults injected on purpose (FAULT_RATE), "
                                     "by kind.", labels=["kind"])
        for kind, count in simulator.faults.injected.items():
            faults.add_metric([kind], count)
        yield faults
