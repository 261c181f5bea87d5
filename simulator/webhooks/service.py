"""Webhook endpoints (HeyGen-shaped: add, list, delete) and the delivery log (list, retry), over the store."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from simulator.clock import Clock
from simulator.domain.job import iso
from simulator.settings import RuntimeConfig
from simulator.store.records import DELIVERY_STATUSES, Delivery, Endpoint
from simulator.webhooks.events import EVENT_TYPES, Doorbell
from simulator.webhooks.hosts import check_destination, parse_allowed_hosts
from simulator.webhooks.signing import new_secret

if TYPE_CHECKING:
    from simulator.store.base import Store

MAX_ENDPOINTS_PER_USER = 20


class WebhookError(ValueError):
    """A webhook request that cannot be honoured: `code` says why, `status` is the HTTP status, `param` the field."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


class WebhookService:
    """Registers endpoints for users and shows (and retries) deliveries for the admin."""

    def __init__(
        self,
        store: Store,
        config: RuntimeConfig,
        clock: Clock,
        doorbell: Doorbell,
        catch_up: Callable[[], object] = lambda: None,
    ) -> None:
        self._catch_up = catch_up  # the engine's advance: jobs that ended by now have put their deliveries
        self._store = store
        self._config = config
        self._clock = clock
        self.doorbell = doorbell
        #: Signs deliveries to jobs' own callback_url (WEBHOOK_SECRET, or one derived from a store secret).
        self.callback_secret = ""
        self.callback_secret_generated = False

    # ---------------------------------------------------------------- endpoints (one user's)

    def add_endpoint(self, user_id: str, url: Any, events: Any) -> Endpoint:
        """Register an endpoint for `user_id`; raise WebhookError for a URL not allowed or an unknown event."""
        if not isinstance(url, str) or not url or len(url) > 2048:
            raise WebhookError(400, "invalid_parameter", "'url' is required: an http(s) URL.", "url")
        why = check_destination(url, parse_allowed_hosts(self._config.current.WEBHOOK_ALLOWED_HOSTS))
        if why is not None:
            raise WebhookError(400, "invalid_parameter", f"'url' {why}.", "url")
        if events is not None:
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                raise WebhookError(400, "invalid_parameter", "'events' must be a list of event types, or null "
                                   "for all of them.", "events")
            unknown = [e for e in events if e not in EVENT_TYPES]
            if unknown:
                raise WebhookError(400, "invalid_parameter", f"Unknown event type {unknown[0]!r}; "
                                   f"the types are {', '.join(EVENT_TYPES)}.", "events")
            events = list(dict.fromkeys(events))
        with self._store.transaction():
            if sum(1 for _ in self._store.endpoints(user_id)) >= MAX_ENDPOINTS_PER_USER:
                raise WebhookError(400, "invalid_parameter", f"A user may register at most "
                                   f"{MAX_ENDPOINTS_PER_USER} endpoints; delete one first.", "url")
            endpoint = Endpoint(f"ep_{uuid.uuid4().hex[:20]}", user_id, url, new_secret(), events, self._clock())
            self._store.put_endpoint(endpoint)
        return endpoint

    def endpoints(self, user_id: str) -> list[Endpoint]:
        """Return a user's endpoints, oldest first."""
        with self._store.transaction():
            return list(self._store.endpoints(user_id))

    def delete_endpoint(self, user_id: str, endpoint_id: str) -> Endpoint:
        """Remove a user's endpoint (its pending deliveries are given up when their turn comes)."""
        with self._store.transaction():
            endpoint = self._store.endpoint(endpoint_id)
            if endpoint is None or endpoint.user_id != user_id:
                raise WebhookError(404, "not_found", f"No webhook endpoint with id {endpoint_id[:64]!r}.",
                                   "endpoint_id")
            self._store.remove_endpoint(endpoint_id)
            return endpoint

    # ---------------------------------------------------------------- the delivery log (admin)

    def deliveries(
        self,
        *,
        job_id: str | None = None,
        endpoint_id: str | None = None,
        status: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[Delivery], int]:
        """Return one page of deliveries, oldest first, filtered by job, endpoint and status; and how many match."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise WebhookError(400, "invalid_parameter", f"outcome must be one of {', '.join(DELIVERY_STATUSES)}.",
                               "outcome")
        self._catch_up()
        with self._store.transaction():
            chosen = [d for d in self._store.deliveries()
                      if (job_id is None or d.job_id == job_id)
                      and (endpoint_id is None or d.endpoint_id == endpoint_id)
                      and (status is None or d.status == status)]
        end = None if limit is None else offset + limit
        return chosen[offset:end], len(chosen)

    def retry(self, delivery_id: str) -> Delivery:
        """Send a delivery again now, whatever happened to it (the same webhook-id: receivers dedupe)."""
        with self._store.transaction():
            delivery = self._store.delivery(delivery_id)
            if delivery is None:
                raise WebhookError(404, "delivery_not_found", f"No delivery with id {delivery_id[:64]!r}.")
            if delivery.endpoint_id is not None:
                endpoint = self._store.endpoint(delivery.endpoint_id)
                if endpoint is None or endpoint.status != "enabled":
                    state = "deleted" if endpoint is None else "disabled (it answered 410 Gone)"
                    raise WebhookError(409, "endpoint_unavailable", f"The delivery's endpoint was {state}; "
                                       "it cannot be retried.")
            delivery.status, delivery.attempts = "pending", 0
            delivery.next_attempt_at, delivery.finished_at = self._clock(), None
            self._store.put_delivery(delivery)
        self.doorbell.ring()
        return delivery


def endpoint_view(endpoint: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """Return an endpoint as HeyGen's endpoint routes show it (the secret only when it was just made)."""
    return {
        "endpoint_id": endpoint.endpoint_id,
        "url": endpoint.url,
        "secret": endpoint.secret if with_secret else None,
        "status": endpoint.status,
        "events": endpoint.events,
        "username": endpoint.user_id,
        "created_at": iso(endpoint.created_at),
    }


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """Return a delivery as the delivery log shows it."""
    return {
        "delivery_id": delivery.delivery_id,
        "webhook_id": delivery.delivery_id,
        "event_type": delivery.event_type,
        "job_id": delivery.job_id,
        "user_id": delivery.user_id,
        "endpoint_id": delivery.endpoint_id,
        "url": delivery.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.pending else None,
        "last_attempt_at": iso(delivery.last_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "finished_at": iso(delivery.finished_at),
    }


def event_types() -> Sequence[str]:
    """Return the event types this server sends."""
    return EVENT_TYPES
