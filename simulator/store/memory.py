"""The memory store: jobs in dicts, a FIFO lane per priority, a heap of attempt ends. Lost when the process ends."""

from __future__ import annotations

import bisect
import heapq
import itertools
import secrets
import threading
from collections.abc import Iterable, Iterator

from simulator.domain.job import Job
from simulator.domain.status import Stage
from simulator.store.records import ApiKey, Delivery, Endpoint, Replay


class Lane:
    """A FIFO of queued jobs of one priority, with O(log n) rank and removal from the middle.

    A job's place is its `enqueued_seq`, which grows with every push, so pushing is an append and
    `_live` stays sorted; live places start at index `_head`.
    """

    __slots__ = ("_head", "_ids", "_live")

    def __init__(self) -> None:
        self._live: list[int] = []
        self._head = 0
        self._ids: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._live) - self._head

    def __iter__(self) -> Iterator[str]:
        ids = self._ids
        return (ids[t] for t in itertools.islice(self._live, self._head, None))

    def push(self, place: int, job_id: str) -> None:
        """Append a job at the back; `place` must be above every place in the lane."""
        if self._live and place <= self._live[-1]:
            raise ValueError(f"place {place} is not after the back of the lane")
        self._live.append(place)
        self._ids[place] = job_id

    def remove(self, place: int) -> None:
        """Remove the job at `place`, wherever it is (from the front in O(1))."""
        i = bisect.bisect_left(self._live, place, self._head)
        if i == self._head:
            self._head += 1  # the usual case, a job starting: no list shift
        else:
            del self._live[i]
        del self._ids[place]
        self._compact()

    def rank(self, place: int) -> int:
        """Return the 1-based position of `place` in this lane."""
        return bisect.bisect_left(self._live, place, self._head) - self._head + 1

    def _compact(self) -> None:
        if self._head > 1024 and self._head * 2 > len(self._live):
            del self._live[: self._head]
            self._head = 0
        if not self._live or self._head == len(self._live):
            self._live.clear()
            self._head = 0


class MemoryStore:
    """Every job and index in this process's memory (the default store)."""

    shared = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # Configuration a reset keeps: secrets, API keys and webhook endpoints (see `clear`).
        self._secrets: dict[str, str] = {}
        self._api_keys: dict[str, ApiKey] = {}
        self._digests: dict[str, str] = {}  # digest -> key_id
        self._endpoints: dict[str, Endpoint] = {}
        self._empty()

    def _empty(self) -> None:
        """Start with no job, index, delivery or stored replay, and the counter at 0."""
        self._jobs: dict[str, Job] = {}  # insertion order is submission order
        self._by_user: dict[str, dict[str, None]] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._lanes = {1: Lane(), 0: Lane()}  # premium lane first
        self._running: dict[str, Job] = {}
        self._ends: list[tuple[float, int, str, int]] = []  # (ends_at, started_seq, job_id, attempt); stale kept
        self._finished: dict[str, None] = {}  # in finishing order
        self._reads: dict[str, int] = {}  # job id -> scripted status reads counted (jobs with status_faults only)
        self._next_seq = 0
        self._deliveries: dict[str, Delivery] = {}  # in creation order
        self._due: list[tuple[float, int, str]] = []  # (next_attempt_at, seq, delivery_id); stale entries kept
        self._filed: dict[str, float] = {}  # delivery_id -> when its live entry in `_due` is due
        self._delivered: dict[str, None] = {}  # finished deliveries in finishing order
        self._replays: dict[str, Replay] = {}  # in the order they were stored (and expire)

    def transaction(self) -> threading.RLock:
        """Hold the store exclusively (nothing to make durable)."""
        return self.lock

    def close(self) -> None:
        """Nothing to release."""

    def clear(self) -> None:
        """Forget every job, index, idempotency key, webhook delivery and stored replay, and start the counter
        again, as a new store would; keep the secrets, API keys and webhook endpoints (set-up, not state)."""
        self._empty()

    def prefetch(
        self,
        *,
        job_id: str | None = None,
        idempotency: tuple[str, str] | None = None,
        newest: bool = False,
        user_id: str | None = None,
    ) -> None:
        """Nothing to load: every read is served from memory."""

    def record_change(self, kind: str, job: Job, at: float) -> None:
        """No other process to tell."""

    def record_settings(self, changes: dict[str, object], *, restore: bool = False) -> None:
        """No other process to tell (runtime settings are not stored)."""

    def take_read(self, job_id: str, limit: int) -> int | None:
        """Count one scripted status read of a stored job while fewer than `limit` were; return its 0-based number."""
        if job_id not in self._jobs:
            return None
        read = self._reads.get(job_id, 0)
        if read >= limit:
            return None
        self._reads[job_id] = read + 1
        return read

    def reads_counted(self, job_id: str) -> int:
        """Return how many scripted status reads of a job are counted."""
        return self._reads.get(job_id, 0)

    # ---------------------------------------------------------------- jobs

    def get(self, job_id: str) -> Job | None:
        """Return the job with this id, or None."""
        return self._jobs.get(job_id)

    def add(self, job: Job) -> None:
        """Store a new queued job and index it."""
        self._keep(job)
        self._file(job)

    def moved(self, job: Job, source: Stage) -> None:
        """Take the job out of `source`'s index and file it under its new stage."""
        if source is Stage.QUEUED:
            self._lanes[job.priority].remove(job.enqueued_seq)
        elif source is Stage.TRANSLATING:
            del self._running[job.job_id]  # its entry in `_ends` goes stale and is dropped when met
        self._file(job)

    def remove(self, job: Job) -> None:
        """Forget a finished job and its idempotency key."""
        del self._jobs[job.job_id]
        self._finished.pop(job.job_id, None)
        self._reads.pop(job.job_id, None)
        user_jobs = self._by_user[job.user_id]
        del user_jobs[job.job_id]
        if not user_jobs:
            del self._by_user[job.user_id]
        if job.idempotency_key is not None:
            self._idempotency.pop((job.user_id, job.idempotency_key), None)

    def count(self, user_id: str | None = None) -> int:
        """Return how many jobs are stored (of one user, if given)."""
        return len(self._jobs) if user_id is None else len(self._by_user.get(user_id, {}))

    def jobs(self, user_id: str | None = None) -> Iterator[Job]:
        """Yield the stored jobs (of one user, if given) in submission order."""
        if user_id is None:
            return iter(self._jobs.values())
        jobs = self._jobs
        return (jobs[i] for i in self._by_user.get(user_id, {}))

    def newest(self, user_id: str | None = None) -> Job | None:
        """Return the newest job (of one user, if given), or None."""
        ids = self._jobs if user_id is None else self._by_user.get(user_id, {})
        return self._jobs[next(reversed(ids))] if ids else None

    def find_idempotent(self, user_id: str, key: str) -> Job | None:
        """Return the job `user_id` submitted under Idempotency-Key `key`, or None."""
        job_id = self._idempotency.get((user_id, key))
        return None if job_id is None else self._jobs[job_id]

    def next_seq(self) -> int:
        """Return the next number of the counter."""
        seq = self._next_seq
        self._next_seq = seq + 1
        return seq

    def id_taken(self, job_id: str) -> bool:
        """Tell whether a stored job has this id."""
        return job_id in self._jobs

    # ---------------------------------------------------------------- indexes

    def queued(self) -> Iterator[Job]:
        """Yield queued jobs in start order: the premium lane, then the free one."""
        jobs = self._jobs
        return (jobs[i] for i in itertools.chain(self._lanes[1], self._lanes[0]))

    def queued_count(self, priority: int | None = None) -> int:
        """Return how many jobs are queued (of one priority, if given)."""
        if priority is not None:
            return len(self._lanes[priority])
        return len(self._lanes[1]) + len(self._lanes[0])

    def queue_position(self, job: Job) -> int:
        """Return the 1-based place of a queued job in start order."""
        position = self._lanes[job.priority].rank(job.enqueued_seq)
        return position if job.priority == 1 else position + len(self._lanes[1])

    def running(self) -> Iterable[Job]:
        """Return the jobs being translated, in the order they started."""
        return self._running.values()

    def running_count(self) -> int:
        """Return how many jobs are being translated."""
        return len(self._running)

    def running_ends(self) -> list[float]:
        """Return when each running attempt ends."""
        return [job.attempt_ends_at for job in self._running.values()]

    def next_attempt_end(self, until: float | None = None) -> Job | None:
        """Return the running job whose attempt ends first (by `until`, if given); drop stopped attempts' entries."""
        ends = self._ends
        while ends:
            ends_at, _, job_id, attempt = ends[0]
            job = self._running.get(job_id)
            if job is not None and job.attempts == attempt:
                return None if until is not None and ends_at > until else job
            heapq.heappop(ends)
        return None

    def finished(self) -> Iterator[Job]:
        """Yield finished jobs in the order they finished."""
        jobs = self._jobs
        return (jobs[i] for i in self._finished)

    # ---------------------------------------------------------------- secrets

    def secret(self, name: str) -> str:
        """Return the named secret, made the first time it is asked for."""
        value = self._secrets.get(name)
        if value is None:
            value = self._secrets[name] = secrets.token_urlsafe(32)
        return value

    # ---------------------------------------------------------------- API keys

    def put_api_key(self, key: ApiKey) -> None:
        """Store or replace a key and index it by digest."""
        old = self._api_keys.get(key.key_id)
        if old is not None:
            self._digests.pop(old.digest, None)
        self._api_keys[key.key_id] = key
        self._digests[key.digest] = key.key_id

    def api_key(self, key_id: str) -> ApiKey | None:
        """Return the key with this id, or None."""
        return self._api_keys.get(key_id)

    def api_key_by_digest(self, digest: str) -> ApiKey | None:
        """Return the key whose keyed hash is `digest`, or None."""
        key_id = self._digests.get(digest)
        return None if key_id is None else self._api_keys[key_id]

    def api_keys(self) -> Iterator[ApiKey]:
        """Yield every key, oldest first (ties by id, as the SQLite store reads them back)."""
        return iter(sorted(self._api_keys.values(), key=lambda k: (k.created_at, k.key_id)))

    def remove_api_key(self, key_id: str) -> None:
        """Forget a key."""
        key = self._api_keys.pop(key_id, None)
        if key is not None:
            self._digests.pop(key.digest, None)

    # ---------------------------------------------------------------- webhook endpoints

    def put_endpoint(self, endpoint: Endpoint) -> None:
        """Store or replace an endpoint."""
        self._endpoints[endpoint.endpoint_id] = endpoint

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return the endpoint with this id, or None."""
        return self._endpoints.get(endpoint_id)

    def endpoints(self, user_id: str | None = None) -> Iterator[Endpoint]:
        """Yield the endpoints (of one user, if given), oldest first (ties by id)."""
        chosen = (e for e in self._endpoints.values() if user_id is None or e.user_id == user_id)
        return iter(sorted(chosen, key=lambda e: (e.created_at, e.endpoint_id)))

    def remove_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint."""
        self._endpoints.pop(endpoint_id, None)

    # ---------------------------------------------------------------- the webhook outbox

    def put_delivery(self, delivery: Delivery) -> None:
        """Store a delivery; file a pending one as due, note a finished one in finishing order."""
        delivery_id = delivery.delivery_id
        self._deliveries[delivery_id] = delivery
        self._delivered.pop(delivery_id, None)
        if delivery.pending:
            due = delivery.next_attempt_at if delivery.next_attempt_at is not None else 0.0
            if self._filed.get(delivery_id) != due:
                self._filed[delivery_id] = due
                heapq.heappush(self._due, (due, delivery.seq, delivery_id))
        else:
            self._filed.pop(delivery_id, None)
            self._delivered[delivery_id] = None

    def delivery(self, delivery_id: str) -> Delivery | None:
        """Return the delivery with this id, or None."""
        return self._deliveries.get(delivery_id)

    def deliveries(self) -> Iterator[Delivery]:
        """Yield every delivery, oldest first."""
        return iter(list(self._deliveries.values()))

    def claim_due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Take up to `limit` due pending deliveries off the due index, earliest first."""
        claimed: list[Delivery] = []
        while len(claimed) < limit:
            head = self._due_head()
            if head is None or self._filed[head.delivery_id] > now:
                break
            heapq.heappop(self._due)
            del self._filed[head.delivery_id]
            claimed.append(head)
        return claimed

    def next_delivery_due(self) -> float | None:
        """Return when the earliest filed pending delivery is due."""
        head = self._due_head()
        return None if head is None else self._filed[head.delivery_id]

    def prune_deliveries(self, finished_before: float) -> int:
        """Forget finished deliveries that finished before `finished_before`, oldest first."""
        doomed = []
        for delivery_id in self._delivered:
            finished_at = self._deliveries[delivery_id].finished_at
            if finished_at is not None and finished_at >= finished_before:
                break
            doomed.append(delivery_id)
        for delivery_id in doomed:
            self.remove_delivery(delivery_id)
        return len(doomed)

    def remove_delivery(self, delivery_id: str) -> None:
        """Forget a delivery (its due entry, if any, goes stale); not part of the Store protocol."""
        self._deliveries.pop(delivery_id, None)
        self._delivered.pop(delivery_id, None)
        self._filed.pop(delivery_id, None)

    def _due_head(self) -> Delivery | None:
        """Return the delivery of the first live due entry, dropping stale ones (moved, finished or removed)."""
        due = self._due
        while due:
            at, _, delivery_id = due[0]
            if self._filed.get(delivery_id) == at:
                return self._deliveries[delivery_id]
            heapq.heappop(due)
        return None

    # ---------------------------------------------------------------- idempotent replays

    def put_replay(self, replay: Replay) -> None:
        """Store an answer to replay, as the newest."""
        self._replays.pop(replay.replay_key, None)
        self._replays[replay.replay_key] = replay

    def replay(self, replay_key: str) -> Replay | None:
        """Return the stored answer for this key, or None."""
        return self._replays.get(replay_key)

    def prune_replays(self, now: float) -> int:
        """Forget the answers that expired by `now` (they expire in the order they were stored)."""
        doomed = []
        for key, replay in self._replays.items():
            if replay.expires_at > now:
                break
            doomed.append(key)
        for key in doomed:
            self.remove_replay(key)
        return len(doomed)

    def remove_replay(self, replay_key: str) -> None:
        """Forget a stored answer; not part of the Store protocol."""
        self._replays.pop(replay_key, None)

    # ---------------------------------------------------------------- internals

    def _keep(self, job: Job) -> None:
        """Keep the job by id, by user (in submission order) and by idempotency key."""
        self._jobs[job.job_id] = job
        self._by_user.setdefault(job.user_id, {})[job.job_id] = None
        if job.idempotency_key is not None:
            self._idempotency[(job.user_id, job.idempotency_key)] = job.job_id

    def _file(self, job: Job) -> None:
        """Put the job into the index of its stage."""
        if job.stage is Stage.QUEUED:
            self._lanes[job.priority].push(job.enqueued_seq, job.job_id)
        elif job.stage is Stage.TRANSLATING:
            self._running[job.job_id] = job
            heapq.heappush(self._ends, (job.attempt_ends_at, job.started_seq, job.job_id, job.attempts))
        else:
            self._finished[job.job_id] = None
