"""The `Store` protocol: where jobs live, with the few indexes the engine needs.

Modelled on rq's registries and BullMQ's keys: every job by id and by user, one FIFO lane per
priority (premium first), the running attempts ordered by when they end, the finished jobs in the
order they finished, and the idempotency keys. A store keeps these indexes itself: the engine adds a
job, tells the store when one `moved` out of a stage, and removes it; everything else is a read.

Beside jobs, every store keeps API keys, webhook endpoints, the webhook outbox (deliveries, due ones indexed
by when they are due), stored answers for idempotent replays, and a few secrets it makes once. A delivery put
in the same transaction as a job's final transition is made durable with it (a shared store writes it with
the transaction's commit, or not at all). On a shared store a secret is made once for every process, and
claiming due deliveries is atomic across processes: no two claim the same delivery.

Every read and change happens inside `transaction()`. In-process stores (memory, SQLite) hold the
store exclusively for it; when the outermost transaction ends, every change made in it is durable (for
stores that are durable) before anything made in it is acknowledged.

A shared store (Redis, `shared = True`) is used by several processes at once, so a transaction is
optimistic instead: it reads from the server (what `prefetch` names and the indexes' heads in one round
trip), keeps the engine's changes, and commits them at the end in one atomic step that first checks
that nothing it read has changed since; if something did, leaving the transaction raises
`StoreConflict` and the engine runs the call again. Changes (`record_change`) and runtime settings
(`record_settings`) go to the other processes with the commit. Reads that serve only to describe a job
(`queue_position`, `running_ends`, one lane's `queued_count(priority)`) never cause a conflict, so the
engine must not decide a change on them; nor does the job `count`, so MAX_JOBS may be passed by one job per
process.
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

    #: Conditions for waiting on the store are built on it; in-process stores hold it for `transaction()`.
    lock: threading.RLock
    #: True when other processes use the store at the same time (their changes arrive by `follow`).
    shared: bool

    def transaction(self) -> AbstractContextManager[object]:
        """Open a transaction; leaving the outermost one commits it (durably), or raises StoreConflict (shared)."""

    def prefetch(
        self,
        *,
        job_id: str | None = None,
        idempotency: tuple[str, str] | None = None,
        newest: bool = False,
        user_id: str | None = None,
    ) -> None:
        """Say what the transaction reads first (a job, an idempotency key, a newest job); in-process: nothing."""

    def close(self) -> None:
        """Flush and release the store."""

    def clear(self) -> None:
        """Remove every job, index entry and idempotency key, leaving the store as it would open empty.

        Whether the counter starts again is the store's: a durable or shared store keeps it (see `next_seq`).
        Scripted status reads (`take_read`) are forgotten too. A shared store clears what every process sees.
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

    def id_taken(self, job_id: str) -> bool:
        """Tell whether a new job may not take this id (a shared store checks it when it commits instead)."""

    def record_change(self, kind: str, job: Job, at: float) -> None:
        """Send a change to the other processes with this transaction's commit (in-process: nothing)."""

    def record_settings(self, changes: dict[str, object], *, restore: bool = False) -> None:
        """Send runtime setting changes to the other processes with this transaction's commit (in-process: nothing).

        `restore`: every process first goes back to its start-up settings (a reset), and none is kept in the store.
        """

    def take_read(self, job_id: str, limit: int) -> int | None:
        """Count one scripted status read of a job while fewer than `limit` were counted; return its 0-based number.

        None once `limit` reads were counted (or the job is gone). Counted at once, outside the transaction's
        commit (every process of a shared store counts the same reads); forgotten when the job is removed.
        """

    def reads_counted(self, job_id: str) -> int:
        """Return how many scripted status reads of a job are counted (0 for a job removed or never read)."""

    # ---------------------------------------------------------------- indexes

    def queued(self) -> Iterator[Job]:
        """Yield queued jobs in the order they will start: premium first, first in first out."""

    def queued_count(self, priority: int | None = None) -> int:
        """Return how many jobs are queued (of one priority, if given: for estimates only, never guarded)."""

    def queue_position(self, job: Job) -> int:
        """Return the 1-based place of a queued job in start order."""

    def running(self) -> Iterable[Job]:
        """Return the jobs being translated."""

    def running_count(self) -> int:
        """Return how many jobs are being translated."""

    def running_ends(self) -> list[float]:
        """Return when each running attempt ends (for estimates only: a shared store never guards this read)."""

    def next_attempt_end(self, until: float | None = None) -> Job | None:
        """Return the running job whose attempt ends first (ties: the one started first), or None.

        With `until`, only if that attempt ends at or before it (a shared store then loads no job when none is due).
        """

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
