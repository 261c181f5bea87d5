"""The `Store` protocol: where jobs live, with the few indexes the engine needs.

Modelled on rq's registries and BullMQ's keys: every job by id and by user, one FIFO lane per
priority (premium first), the running attempts ordered by when they end, the finished jobs in the
order they finished, and the idempotency keys. A store keeps these indexes itself: the engine adds a
job, tells the store when one `moved` out of a stage, and removes it; everything else is a read.

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
