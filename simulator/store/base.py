"""The `Store` protocol: where jobs live, with the few indexes the engine needs.

Modelled on rq's registries and BullMQ's keys: every job by id and by user, one FIFO lane per
priority (premium first), the running attempts ordered by when they end, the finished jobs in the
order they finished, and the idempotency keys. A store keeps these indexes itself: the engine adds a
job, tells the store when one `moved` out of a stage, and removes it; everything else is a read.

Beside jobs, a store keeps API keys, webhook endpoints, the webhook outbox (deliveries, due ones indexed by
when they are due), stored answers for idempotent replays, and a few secrets it makes once. A delivery put
in the same transaction as a job's final transition is made durable with it.

Every read and change happens inside `transaction()`, which holds the store exclusively; when the
outermost transaction ends, every change made in it is durable (for stores that are durable) before
anything made in it is acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from simulator.domain.job import Job
from simulator.domain.status import Stage
from simulator.store.records import ApiKey, Delivery, Endpoint, Replay


class StoreError(Exception):
    """The store cannot be opened or used (a bad URL, an unwritable path, a corrupt or foreign database)."""


class Store(Protocol):
    """Jobs and their indexes, changed only inside a transaction."""

    #: Held by `transaction()`; conditions for waiting on the store are built on it.
    lock: threading.RLock

    def transaction(self) -> AbstractContextManager[object]:
        """Hold the store exclusively; leaving the outermost one makes its changes durable."""

    def close(self) -> None:
        """Flush and release the store."""

    def clear(self) -> None:
        """Remove every job, index entry and idempotency key, leaving the store as it would open empty.

        Whether the counter starts again is the store's: a durable store keeps it (see `next_seq`).
        """

    # ---------------------------------------------------------------- jobs

    def get(self, job_id: str) -> Job | None:
        """Return the job with this id, or None."""

    def add(self, job: Job) -> None:
        """Store a new job, at the back of its lane; index it by user and idempotency key."""

    def moved(self, job: Job, source: Stage) -> None:
        """Re-file a job that just moved out of `source` into `job.stage` (one transition)."""

    def remove(self, job: Job) -> None:
        """Forget a finished job and its idempotency key."""

    def count(self, user_id: str | None = None) -> int:
        """Return how many jobs are stored (of one user, if given)."""

    def jobs(self, user_id: str | None = None) -> Iterator[Job]:
        """Yield the stored jobs (of one user, if given) in submission order."""

    def newest(self, user_id: str | None = None) -> Job | None:
        """Return the newest job (of one user, if given), or None."""

    def find_idempotent(self, user_id: str, key: str) -> Job | None:
        """Return the job `user_id` submitted under Idempotency-Key `key`, or None."""

    def next_seq(self) -> int:
        """Return the next number of the store's counter (submission, queueing and start order)."""

    # ---------------------------------------------------------------- indexes

    def queued(self) -> Iterator[Job]:
        """Yield queued jobs in the order they will start: premium first, first in first out."""

    def queued_count(self, priority: int | None = None) -> int:
        """Return how many jobs are queued (of one priority, if given)."""

    def queue_position(self, job: Job) -> int:
        """Return the 1-based place of a queued job in start order."""

    def running(self) -> Iterable[Job]:
        """Return the jobs being translated."""

    def running_count(self) -> int:
        """Return how many jobs are being translated."""

    def next_attempt_end(self) -> Job | None:
        """Return the running job whose attempt ends first (ties: the one started first), or None."""

    def finished(self) -> Iterator[Job]:
        """Yield finished jobs in the order they finished."""

    # ---------------------------------------------------------------- secrets

    def secret(self, name: str) -> str:
        """Return the named secret, made (random, URL-safe) the first time and kept from then on."""

    # ---------------------------------------------------------------- API keys

    def put_api_key(self, key: ApiKey) -> None:
        """Store a new key or replace the one with its id; index it by digest."""

    def api_key(self, key_id: str) -> ApiKey | None:
        """Return the key with this id, or None."""

    def api_key_by_digest(self, digest: str) -> ApiKey | None:
        """Return the key whose keyed hash is `digest`, or None."""

    def api_keys(self) -> Iterator[ApiKey]:
        """Yield every key, oldest first."""

    def remove_api_key(self, key_id: str) -> None:
        """Forget a key (nothing if unknown)."""

    # ---------------------------------------------------------------- webhook endpoints

    def put_endpoint(self, endpoint: Endpoint) -> None:
        """Store a new endpoint or replace the one with its id."""

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return the endpoint with this id, or None."""

    def endpoints(self, user_id: str | None = None) -> Iterator[Endpoint]:
        """Yield the endpoints (of one user, if given), oldest first."""

    def remove_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint (nothing if unknown)."""

    # ---------------------------------------------------------------- the webhook outbox and delivery log

    def put_delivery(self, delivery: Delivery) -> None:
        """Store a new delivery or its new state; a pending one is (re-)filed as due at `next_attempt_at`."""

    def delivery(self, delivery_id: str) -> Delivery | None:
        """Return the delivery with this id, or None."""

    def deliveries(self) -> Iterator[Delivery]:
        """Yield every delivery, oldest first."""

    def claim_due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Return up to `limit` pending deliveries due by `now`, earliest first, and take them off the due index.

        The caller owns them until it puts them back (`put_delivery` files a pending one again).
        """

    def next_delivery_due(self) -> float | None:
        """Return when the earliest filed pending delivery is due (None if none is)."""

    def prune_deliveries(self, finished_before: float) -> int:
        """Forget finished deliveries that finished before `finished_before`; return how many."""

    # ---------------------------------------------------------------- idempotent replays

    def put_replay(self, replay: Replay) -> None:
        """Store an answer to replay; answers expire in the order they were stored."""

    def replay(self, replay_key: str) -> Replay | None:
        """Return the stored answer for this key, or None."""

    def prune_replays(self, now: float) -> int:
        """Forget the answers that expired by `now`; return how many."""
