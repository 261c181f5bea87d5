"""The records a store keeps besides jobs: API keys, webhook endpoints, webhook deliveries (the outbox), replays.

Plain mutable dataclasses, like `Job`: whoever changes one puts it back with the store's `put_…` inside a
transaction, and the store keeps its indexes (and, for a durable store, its rows) in step. Their fields are
the SQLite store's columns; `JSON_FIELDS` are kept as JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Delivery statuses: waiting for its (next) attempt, delivered, or given up.
DELIVERY_STATUSES = ("pending", "succeeded", "failed")


@dataclass(slots=True, eq=False)
class ApiKey:
    """An API key: its id, who it authenticates and as what; the key itself only as a keyed hash."""

    key_id: str
    digest: str  # hex HMAC-SHA256 of the key under the store's key-hashing secret
    user_id: str
    role: str  # free or premium
    created_at: float
    source: str = "issued"  # issued (POST /api-keys) or file (API_KEYS_FILE)


@dataclass(slots=True, eq=False)
class Endpoint:
    """A registered webhook endpoint of one user: where events go, which ones, and the secret that signs them."""

    endpoint_id: str
    user_id: str
    url: str
    secret: str  # whsec_<base64>; signs every delivery (Standard Webhooks and HeyGen's hex HMAC)
    events: list[str] | None  # None: every event type
    created_at: float
    status: str = "enabled"  # enabled, or disabled (it answered 410 Gone)
    disabled_reason: str | None = None


@dataclass(slots=True, eq=False)
class Delivery:
    """One event for one destination: the outbox row, then its delivery log entry. `delivery_id` is the webhook-id."""

    delivery_id: str
    seq: int  # creation order, on the store's counter
    event_type: str
    job_id: str
    user_id: str
    endpoint_id: str | None  # None: the job's own callback_url
    url: str
    payload: str  # the JSON body, sent byte for byte on every attempt
    created_at: float
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: float | None = None  # while pending
    last_attempt_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    finished_at: float | None = None  # when it succeeded or was given up

    @property
    def pending(self) -> bool:
        """Tell whether the delivery still waits for an attempt."""
        return self.status == "pending"


@dataclass(slots=True, eq=False)
class Replay:
    """A stored answer to replay for a repeated Idempotency-Key (HeyGen's v3 routes), until `expires_at`."""

    replay_key: str  # user, route and key, joined
    body: str  # the JSON answer
    status: int
    created_at: float
    expires_at: float


JSON_FIELDS = {"events"}


def as_dict(record: Any) -> dict[str, Any]:
    """Return a record's fields as a dict (for comparisons and the delivery log)."""
    return {name: getattr(record, name) for name in record.__slots__}
