"""The events of a finished job, and the outbox that turns them into deliveries with the final transition.

A finished job makes two events:

- HeyGen's `video_translate.success` / `video_translate.fail`: `{"event_type", "event_data":
  {video_translate_id, url | message, callback_id, output_language}}` (docs.heygen.com, "Using HeyGen's
  webhook events");
- the native `job.completed` / `job.permanently_failed` / `job.cancelled`, in Standard Webhooks' payload
  structure: `{"type", "timestamp", "data": <the job's wire view>}`.

Destinations: the job's own `callback_url` gets the event of the API it was submitted through (HeyGen's
for the v2/v3 routes, the native one for `POST /translate`); each enabled endpoint the job's user
registered gets every event it subscribed to (all of them when it named none).

`Outbox` is an engine observer: it runs inside the store transaction of the job's final transition, so
the deliveries are written (with the SQLite store: committed) together with the transition, or not at all.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.domain.job import Job, iso
from simulator.domain.view import job_view
from simulator.heygen import views as heygen_views
from simulator.store.records import Delivery

if TYPE_CHECKING:
    from simulator.store.base import Store

HEYGEN_EVENTS = ("video_translate.success", "video_translate.fail")
NATIVE_EVENTS = ("job.completed", "job.permanently_failed", "job.cancelled")
EVENT_TYPES = HEYGEN_EVENTS + NATIVE_EVENTS
FINAL_KINDS = {"completed", "permanently_failed", "cancelled"}


class Doorbell:
    """Wakes the deliverer when there is something to send (a new delivery, a retry, a freed worker)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._rung = False

    def ring(self) -> None:
        """Wake the deliverer (or have its next wait return at once)."""
        with self._condition:
            self._rung = True
            self._condition.notify_all()

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for a ring; forget the ring."""
        with self._condition:
            if not self._rung and timeout > 0:
                self._condition.wait(timeout)
            self._rung = False


def dumps(payload: dict[str, Any]) -> str:
    """Return an event's JSON body, compact; the same bytes are signed and sent on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def job_events(job: Job, at: float, result_url: str | None) -> dict[str, dict[str, Any]]:
    """Return the payloads a job that just finished at `at` makes, by event type (HeyGen's and the native one)."""
    view = job_view(job, at, None, None)
    heygen_type, heygen_payload = heygen_views.event(view, job.meta, result_url)
    native_type = f"job.{job.status.value}"
    return {heygen_type: heygen_payload, native_type: {"type": native_type, "timestamp": iso(at), "data": view}}


class Outbox:
    """Engine observer: writes a finished job's deliveries in the transaction of its final transition."""

    def __init__(self, store: Store, result_url: Callable[[Job], str], doorbell: Doorbell) -> None:
        self._store = store
        self._result_url = result_url
        self._doorbell = doorbell

    def __call__(self, kind: str, job: Job, at: float) -> None:
        """Put the deliveries of a job's final transition (other changes make none)."""
        if kind not in FINAL_KINDS:
            return
        events = job_events(job, at, self._result_url(job) if kind == "completed" else None)
        meta = job.meta or {}
        destinations: list[tuple[str | None, str, str]] = []  # (endpoint_id, url, event type)
        callback_url = meta.get("callback_url")
        if callback_url:
            native = meta.get("api", "native") == "native"
            wanted = next(t for t in events if t.startswith("job.") == native)
            destinations.append((None, callback_url, wanted))
        for endpoint in self._store.endpoints(job.user_id):
            if endpoint.status != "enabled":
                continue
            for event_type in events:
                if endpoint.events is None or event_type in endpoint.events:
                    destinations.append((endpoint.endpoint_id, endpoint.url, event_type))
        for endpoint_id, url, event_type in destinations:
            self._store.put_delivery(Delivery(
                delivery_id=f"msg_{uuid.uuid4().hex}",
                seq=self._store.next_seq(),
                event_type=event_type,
                job_id=job.job_id,
                user_id=job.user_id,
                endpoint_id=endpoint_id,
                url=url,
                payload=dumps(events[event_type]),
                created_at=at,
                next_attempt_at=at,
            ))
        if destinations:
            self._doorbell.ring()
