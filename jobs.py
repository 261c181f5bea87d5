"""The translation-job simulation: jobs, statuses, the priority queue, scheduling, retries, waiting.

Pure Python. Time comes only from the injected `clock` (seconds, epoch-based so timestamps read as
dates) and randomness only from the injected `random.Random`, so a run with a fake clock and a seeded
generator is reproducible to the microsecond. One lock guards everything; conditions built on that
lock wake long-poll waiters and the driver of the clock.

Time is exact: `_advance` replays every event that fell due since the last call, in time order, at
the instant it was due, and a slot freed by an event starts the next job at that same instant. Every
public method advances first, and the server runs a thread that calls `wait_for_next_event` so that
jobs finish on time even when nobody asks.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import itertools
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from config import RuntimeConfig, Settings

Clock = Callable[[], float]


class Status(StrEnum):
    """A job's status; the values are the wire format."""

    PENDING = "pending"
    FAILED = "failed"
    COMPLETED = "completed"
    PERMANENTLY_FAILED = "permanently_failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Tell whether this status never changes again."""
        return self in TERMINAL

    @property
    def result(self) -> str:
        """Return the classic three-value view: pending, completed or error."""
        return RESULTS[self]


TERMINAL = frozenset({Status.COMPLETED, Status.PERMANENTLY_FAILED, Status.CANCELLED})
RESULTS = {
    Status.PENDING: "pending",
    Status.FAILED: "pending",
    Status.COMPLETED: "completed",
    Status.PERMANENTLY_FAILED: "error",
    Status.CANCELLED: "error",
}


class Stage(StrEnum):
    """Where a job is: waiting for a slot, being translated, or done."""

    QUEUED = "queued"
    TRANSLATING = "translating"
    FINISHED = "finished"


class Event(StrEnum):
    """What can happen to a job."""

    START = "start"  # an attempt begins
    COMPLETE = "complete"  # the attempt succeeded
    FAIL = "fail"  # the attempt failed and a retry is left: back to the queue
    GIVE_UP = "give_up"  # the attempt failed and no retry is left
    CANCEL = "cancel"  # an admin cancelled the job


State = tuple[Status, Stage]

#: The only allowed moves. A state that is not a key (every terminal one) accepts no event.
TRANSITIONS: dict[State, dict[Event, State]] = {
    (Status.PENDING, Stage.QUEUED): {
        Event.START: (Status.PENDING, Stage.TRANSLATING),
        Event.CANCEL: (Status.CANCELLED, Stage.FINISHED),
    },
    (Status.FAILED, Stage.QUEUED): {
        Event.START: (Status.PENDING, Stage.TRANSLATING),
        Event.CANCEL: (Status.CANCELLED, Stage.FINISHED),
    },
    (Status.PENDING, Stage.TRANSLATING): {
        Event.COMPLETE: (Status.COMPLETED, Stage.FINISHED),
        Event.FAIL: (Status.FAILED, Stage.QUEUED),
        Event.GIVE_UP: (Status.PERMANENTLY_FAILED, Stage.FINISHED),
        Event.CANCEL: (Status.CANCELLED, Stage.FINISHED),
    },
}

ROLES = {"free": 0, "premium": 1}
ERROR_MESSAGES = {
    "timeout": "The translation worker timed out.",
    "internal_error": "The translation worker hit an internal error.",
    "unknown": "The translation failed for an unknown reason.",
}
ERROR_CODES = tuple(ERROR_MESSAGES)
#: Queued jobs whose start is simulated one by one for an ETA; deeper ones use the average rate.
_ETA_EXACT_DEPTH = 128


# --------------------------------------------------------------------------------------------- errors


class JobError(Exception):
    """Root of the domain's errors; `code` is a stable machine-readable name."""

    code = "job_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class JobNotFound(JobError):
    """No job has this id (never had, or it was removed)."""

    code = "job_not_found"


class TransitionRefused(JobError):
    """The job's current state does not allow this move (e.g. cancelling a completed job)."""

    code = "invalid_transition"


class InvalidArgument(JobError):
    """An argument is out of range or of the wrong kind."""

    code = "invalid_argument"


class IdempotencyMismatch(JobError):
    """An Idempotency-Key was reused with a different request body."""

    code = "idempotency_key_reused"


class CapacityExceeded(JobError):
    """The store holds MAX_JOBS jobs; `extra['retry_after']` says when room is expected."""

    code = "capacity_exceeded"


# ------------------------------------------------------------------------------------------- records


@dataclass(slots=True, eq=False)
class Job:
    """The mutable record of one job; only `JobEngine` touches it, under its lock."""

    job_id: str
    role: str
    user_id: str
    created_at: float
    video_url: str | None
    target_language: str | None
    idempotency_key: str | None
    max_retries: int
    status: Status = Status.PENDING
    stage: Stage = Stage.QUEUED
    version: int = 1
    attempts: int = 0
    ticket: int = -1  # place in its lane while queued
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempt_started_at: float = 0.0
    attempt_duration: float = 0.0  # how long the attempt would take if it did not fail
    attempt_ends_at: float = 0.0  # when it completes, or fails
    attempt_error: str | None = None  # the error code the attempt will fail with, if it will
    progress_at_stop: int = 0
    enqueued_seq: int = -1  # when it last entered the queue, on the engine's event counter
    started_seq: int = -1  # when its current attempt started, on the same counter
    error: dict[str, Any] | None = None
    cancel_reason: str | None = None
    # The timestamps as the API shows them, formatted once: formatting them on every view was over
    # half the time of GET /jobs at 100k jobs (bench/load.py).
    created_iso: str | None = None
    updated_iso: str | None = None
    started_iso: str | None = None
    finished_iso: str | None = None

    @property
    def priority(self) -> int:
        """Return 1 for premium, 0 for free."""
        return ROLES[self.role]

    @property
    def fingerprint(self) -> tuple[str, str | None, str | None]:
        """Return what an Idempotency-Key must match to replay this job."""
        return (self.role, self.video_url, self.target_language)


class _Lane:
    """A FIFO of queued jobs of one priority, with O(log n) rank and removal from the middle.

    Each push takes a ticket from a counter; `_live` keeps live tickets sorted (they are issued in
    order, so pushing is an append), from index `_head` on.
    """

    __slots__ = ("_head", "_ids", "_live", "_next")

    def __init__(self) -> None:
        self._live: list[int] = []
        self._head = 0
        self._ids: dict[int, str] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._live) - self._head

    def __iter__(self) -> Iterator[str]:
        ids = self._ids
        return (ids[t] for t in itertools.islice(self._live, self._head, None))

    def push(self, job_id: str) -> int:
        """Append a job at the back and return its ticket."""
        ticket = self._next
        self._next += 1
        self._live.append(ticket)
        self._ids[ticket] = job_id
        return ticket

    def remove(self, ticket: int) -> None:
        """Remove the job holding `ticket`, wherever it is (from the front in O(1))."""
        i = bisect.bisect_left(self._live, ticket, self._head)
        if i == self._head:
            self._head += 1  # the usual case, a job starting: no list shift
        else:
            del self._live[i]
        del self._ids[ticket]
        self._compact()

    def rank(self, ticket: int) -> int:
        """Return the 1-based position of `ticket` in this lane."""
        return bisect.bisect_left(self._live, ticket, self._head) - self._head + 1

    def _compact(self) -> None:
        if self._head > 1024 and self._head * 2 > len(self._live):
            del self._live[: self._head]
            self._head = 0
        if not self._live or self._head == len(self._live):
            self._live.clear()
            self._head = 0


# The formatted timestamps are derived from the float ones: they are not saved, and are rebuilt on load
# (a state saved before they existed loads the same way).
_DERIVED_FIELDS = ("created_iso", "updated_iso", "started_iso", "finished_iso")


def _job_record(job: Job) -> dict[str, Any]:
    record = {f.name: getattr(job, f.name) for f in dataclasses.fields(job) if f.name not in _DERIVED_FIELDS}
    record["status"] = job.status.value
    record["stage"] = job.stage.value
    return record


def _page_end(offset: int, limit: int | None) -> int | None:
    """Return where a page starting at `offset` ends (None: at the end)."""
    return None if limit is None else offset + limit


def _rng_record(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def _rng_state(record: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss_next = record
    return (version, tuple(internal), gauss_next)


class _StartPlan:
    """When queued jobs are expected to start, taken in queue order (auto mode).

    Slots free up as running attempts end; each queued job then holds a slot for the expected length
    of one attempt (a failed attempt stops, on average, halfway). The first `_ETA_EXACT_DEPTH` jobs
    are placed slot by slot; deeper ones add their work to a backlog shared by all slots.
    """

    def __init__(self, engine: JobEngine, now: float) -> None:
        settings = engine.settings
        self.workers = settings.WORKERS
        remaining = sorted(max(0.0, j.attempt_ends_at - now) for j in engine._running.values())
        if len(remaining) >= self.workers:
            self.slots = remaining[len(remaining) - self.workers :]
        else:
            self.slots = [0.0] * (self.workers - len(remaining)) + remaining
        heapq.heapify(self.slots)
        expected = 1.0 - settings.ERROR_RATE / 2
        self.seconds = {role: engine._attempt_seconds(role, settings) * expected for role in ROLES}
        self.placed = 0
        self.backlog = 0.0

    def start(self) -> float:
        """Return when the next job in queue order is expected to start, seconds from now."""
        return self.slots[0] + self.backlog / self.workers

    def skip(self, role: str, count: int) -> None:
        """Let the next `count` jobs of `role` in queue order take their slots."""
        exact = max(0, min(count, _ETA_EXACT_DEPTH - self.placed))
        for _ in range(exact):
            heapq.heapreplace(self.slots, self.slots[0] + self.seconds[role])
        self.placed += count
        self.backlog += (count - exact) * self.seconds[role]


def iso(t: float | None) -> str | None:
    """Format epoch seconds as ISO 8601 UTC with a Z, to the microsecond."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def system_clock() -> Clock:
    """Return a clock that reads epoch seconds but never goes backwards (monotonic, anchored once)."""
    anchor = time.time() - time.monotonic()
    return lambda: time.monotonic() + anchor


# ------------------------------------------------------------------------------------------- engine


class JobEngine:
    """The simulated translation backend: submit, schedule, run, fail, retry, cancel, wait, clean up."""

    def __init__(
        self,
        config: RuntimeConfig | Settings | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(config, RuntimeConfig):
            config = RuntimeConfig(config or Settings())
        self.config = config
        self._clock = clock or system_clock()
        seed = config.current.RANDOM_SEED
        self._rng = rng or random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._lock = threading.RLock()
        self._schedule_changed = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}  # insertion order is submission order
        self._lanes = {1: _Lane(), 0: _Lane()}  # premium lane first
        self._running: dict[str, Job] = {}
        self._finished: dict[str, None] = {}  # ordered by finishing time, for cleanup and TTL
        self._by_user: dict[str, dict[str, None]] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._events: list[tuple[float, int, str, int]] = []  # (due, seq, job_id, attempt)
        self._seq = itertools.count()  # orders heap entries, enqueues and starts
        self._waiters: dict[str, list[Any]] = {}  # job_id -> [Condition, number of waiters]
        self._released = False  # set when shutting down: waits answer at once

    # ---------------------------------------------------------------- reading

    @property
    def settings(self) -> Settings:
        """Return the settings in force now."""
        return self.config.current

    def now(self) -> float:
        """Return the simulation's current time (epoch seconds)."""
        return self._clock()

    def get(self, job_id: str) -> dict[str, Any]:
        """Return the job's current view, or raise JobNotFound."""
        with self._lock:
            now = self._advance()
            return self._view(self._require(job_id), now)

    def newest(self, user_id: str | None = None) -> dict[str, Any]:
        """Return the newest job of `user_id` (of anyone if None), or raise JobNotFound."""
        with self._lock:
            now = self._advance()
            ids = self._by_user.get(user_id, {}) if user_id is not None else self._jobs
            if not ids:
                who = f"user {user_id!r}" if user_id is not None else "anyone"
                raise JobNotFound(f"No job has been submitted by {who}.")
            return self._view(self._jobs[next(reversed(ids))], now)

    def jobs(
        self,
        *,
        user_id: str | None = None,
        status: Status | None = None,
        role: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return views of the stored jobs, oldest first, filtered by user, status and role, optionally one page."""
        with self._lock:
            now = self._advance()
            ids: Iterable[str] = self._by_user.get(user_id, {}) if user_id is not None else self._jobs
            selected = (
                job
                for job in (self._jobs[i] for i in ids)
                if (status is None or job.status is status) and (role is None or job.role == role)
            )
            page = list(itertools.islice(selected, offset, _page_end(offset, limit)))
            # A page needs the queue walked only as deep as its deepest queued job (not at all without one).
            depth = None if limit is None else max(
                (self._queue_position(job) for job in page if job.stage is Stage.QUEUED), default=0
            )
            places = self._queued_places(now, depth)
            return [self._view(job, now, places) for job in page]

    def total(self, user_id: str | None = None) -> int:
        """Return how many jobs are stored (of one user, if given)."""
        with self._lock:
            self._advance()
            return len(self._by_user.get(user_id, {})) if user_id is not None else len(self._jobs)

    def grouped(
        self, *, user_id: str | None = None, offset: int = 0, limit: int | None = None
    ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        """Return jobs as {status: {role: {job_id: job}}}, with every status and role present (optionally a page)."""
        groups: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
            status.value: {role: {} for role in ROLES} for status in Status
        }
        for view in self.jobs(user_id=user_id, offset=offset, limit=limit):
            groups[view["status"]][view["role"]][view["job_id"]] = view
        return groups

    def queue(self, *, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """Return the queued jobs in start order (optionally a page), their total, the running ones, workers, mode."""
        with self._lock:
            now = self._advance()
            settings = self.settings
            end = _page_end(offset, limit)
            places = self._queued_places(now, end)
            queued = itertools.islice(self._queued_ids(), offset, end)
            return {
                "mode": settings.PROCESSING_MODE,
                "workers": settings.WORKERS,
                "queued": [self._view(self._jobs[i], now, places) for i in queued],
                "queued_total": self._queued_count(),
                "running": [self._view(job, now) for job in self._running.values()],
            }

    def counts(self) -> dict[str, int]:
        """Return how many jobs are stored, queued and running."""
        with self._lock:
            self._advance()
            return {
                "jobs": len(self._jobs),
                "queued": sum(len(lane) for lane in self._lanes.values()),
                "running": len(self._running),
            }

    def find_idempotent(self, user_id: str, key: str) -> str | None:
        """Return the id of the job `user_id` submitted under Idempotency-Key `key`, if it is stored."""
        with self._lock:
            self._advance()
            return self._idempotency.get((user_id, key))

    # ---------------------------------------------------------------- changing

    def submit(
        self,
        role: str = "free",
        user_id: str = "anonymous",
        *,
        video_url: str | None = None,
        target_language: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue a new job and return (its view, False); a known Idempotency-Key returns (that job, True)."""
        if role not in ROLES:
            raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}.")
        with self._lock:
            now = self._advance()
            if idempotency_key is not None:
                known = self._idempotency.get((user_id, idempotency_key))
                if known is not None:
                    job = self._jobs[known]
                    if job.fingerprint != (role, video_url, target_language):
                        raise IdempotencyMismatch(
                            "This Idempotency-Key was already used with a different request body.", job_id=known
                        )
                    return self._view(job, now), True
            settings = self.settings
            if len(self._jobs) >= settings.MAX_JOBS:
                raise CapacityExceeded(
                    f"The server holds {len(self._jobs)} jobs (MAX_JOBS); retry later or clean up.",
                    retry_after=self._room_expected_in(now),
                )
            job = Job(
                job_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                role=role,
                user_id=user_id,
                created_at=now,
                updated_at=now,
                created_iso=(stamp := iso(now)),
                updated_iso=stamp,  # one string for both until the job first moves
                video_url=video_url,
                target_language=target_language,
                idempotency_key=idempotency_key,
                max_retries=settings.MAX_RETRIES,
            )
            self._jobs[job.job_id] = job
            self._by_user.setdefault(user_id, {})[job.job_id] = None
            if idempotency_key is not None:
                self._idempotency[(user_id, idempotency_key)] = job.job_id
            self._enqueue(job)
            self._fill_slots(now)
            # A job may end the instant it starts (TRANSLATION_DELAY=0): let that happen now.
            now = self._advance()
            return self._view(job, now), False

    def cancel(self, job_id: str, reason: str | None = None) -> tuple[dict[str, Any], bool]:
        """Cancel a queued or running job; return (its view, whether it was already cancelled)."""
        with self._lock:
            now = self._advance()
            job = self._require(job_id)
            if job.status is Status.CANCELLED:
                return self._view(job, now), True
            if job.status.terminal:
                raise TransitionRefused(
                    f"Job {job_id} is {job.status.value} and can no longer be cancelled.",
                    job_id=job_id,
                    job_status=job.status.value,
                )
            was_running = job.stage is Stage.TRANSLATING
            # 0 for a queued job, even one whose earlier attempt failed part-way.
            job.progress_at_stop = self._progress(job, now)
            self._move(job, Event.CANCEL, now)
            job.cancel_reason = reason
            if was_running:
                self._fill_slots(now)
            return self._view(job, now), False

    def start_next(self, count: int = 1) -> list[dict[str, Any]]:
        """Start the next `count` queued jobs in priority order; return those started.

        In manual mode this ignores WORKERS. In auto mode free slots are filled as soon as they
        free up, so this starts jobs only into free slots (usually none) and never exceeds WORKERS.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidArgument(f"count must be an integer ≥ 1, got {count!r}.")
        with self._lock:
            now = self._advance()
            settings = self.settings
            if settings.PROCESSING_MODE == "auto":
                count = min(count, max(0, settings.WORKERS - len(self._running)))
            started = [self._start_next(now) for _ in range(min(count, self._queued_count()))]
            # A job may end the instant it starts (TRANSLATION_DELAY=0): let that happen now.
            now = self._advance()
            return [self._view(job, now) for job in started]

    def configure(self, changes: dict[str, Any]) -> Settings:
        """Change runtime settings all or nothing (ConfigError if any is bad); they apply from now on."""
        with self._lock:
            self._advance()  # events due before the change happen under the old settings
            new = self.config.update(changes)
            now = self._advance()
            self._fill_slots(now)
            self._schedule_changed.notify_all()
            return new

    def cleanup(self, statuses: Iterable[Status] = (Status.COMPLETED,), older_than: float = 0.0) -> int:
        """Remove finished jobs with one of `statuses` that finished at least `older_than` s ago; return how many."""
        wanted = set(statuses)
        if not wanted <= TERMINAL:
            bad = ", ".join(sorted(s.value for s in wanted - TERMINAL))
            raise InvalidArgument(f"Only finished jobs can be cleaned up; not {bad}.")
        if older_than < 0:
            raise InvalidArgument(f"older_than must be ≥ 0, got {older_than!r}.")
        with self._lock:
            now = self._advance()
            doomed = []
            for job_id in self._finished:
                job = self._jobs[job_id]
                if job.finished_at is None or job.finished_at > now - older_than:
                    break  # finished in order: every later one is younger
                if job.status in wanted:
                    doomed.append(job)
            for job in doomed:
                self._remove(job)
            return len(doomed)

    # ---------------------------------------------------------------- waiting

    def wait_for_change(self, job_id: str, since: int | None = None, timeout: float = 0.0) -> dict[str, Any]:
        """Block until the job is finished or its version passes `since` (default: now), at most `timeout` real s.

        Whoever drives the clock (`wait_for_next_event` or any call) wakes the waiter when the job
        moves; the waiter also wakes by itself when its own running attempt is due to end.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            now = self._advance()
            job = self._require(job_id)
            if since is None:
                since = job.version
            if job.status.terminal or job.version > since or timeout <= 0 or self._released:
                return self._view(job, now)
            entry = self._waiters.setdefault(job_id, [threading.Condition(self._lock), 0])
            entry[1] += 1
            try:
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if job.stage is Stage.TRANSLATING:
                        remaining = min(remaining, max(0.0, job.attempt_ends_at - now))
                    entry[0].wait(remaining)
                    now = self._advance()
                    job = self._require(job_id)
                    if job.status.terminal or job.version > since or self._released:
                        break
            finally:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._waiters[job_id]
            return self._view(job, self._advance())

    def wait_for_next_event(self, max_seconds: float = 1.0) -> None:
        """Sleep (real s) until the next event is due, the schedule changes or `max_seconds` pass; advance."""
        with self._lock:
            now = self._advance()
            due = self._next_due()
            timeout = max_seconds if due is None else min(max_seconds, max(0.0, due - now))
            if timeout > 0:
                self._schedule_changed.wait(timeout)
            self._advance()

    def wake(self) -> None:
        """Wake whoever waits in `wait_for_next_event` (to stop the thread that drives the clock)."""
        with self._lock:
            self._schedule_changed.notify_all()

    def release_waiters(self) -> None:
        """Answer every held and future `wait_for_change` at once (the server is shutting down)."""
        with self._lock:
            self._released = True
            for condition, _ in self._waiters.values():
                condition.notify_all()

    def advance(self) -> float | None:
        """Process every event due by now; return the time of the next one (None if none is scheduled)."""
        with self._lock:
            self._advance()
            return self._next_due()

    def check_invariants(self) -> list[str]:
        """Return every broken internal invariant (an empty list when all hold); for tests and debugging."""
        with self._lock:
            problems: list[str] = []
            queued = [self._jobs.get(i) for i in self._queued_ids()]
            if None in queued:
                problems.append("a lane holds an id that is not stored")
            queued_ids = [j.job_id for j in queued if j is not None]
            places: dict[str, int] = {}
            for job_id in itertools.chain(queued_ids, self._running, self._finished):
                places[job_id] = places.get(job_id, 0) + 1
            for job in self._jobs.values():
                where = places.get(job.job_id, 0)
                if where != 1:
                    problems.append(f"{job.job_id} is in {where} places")
                expected = {Stage.QUEUED: job.job_id in queued_ids, Stage.TRANSLATING: job.job_id in self._running,
                            Stage.FINISHED: job.job_id in self._finished}
                if not expected[job.stage]:
                    problems.append(f"{job.job_id} is {job.stage.value} but not kept as such")
                if job.status.terminal != (job.stage is Stage.FINISHED):
                    problems.append(f"{job.job_id} is {job.status.value} at stage {job.stage.value}")
                if job.status is Status.FAILED and job.stage is not Stage.QUEUED:
                    problems.append(f"{job.job_id} is failed but not queued for its retry")
                if job.attempts > 1 + job.max_retries:
                    problems.append(f"{job.job_id} made {job.attempts} attempts, more than 1 + {job.max_retries}")
                if job.job_id not in self._by_user.get(job.user_id, {}):
                    problems.append(f"{job.job_id} is missing from its user's history")
            if len(places) != len(self._jobs):
                problems.append("a queue, the running set or the finished list holds an unknown id")
            for lane in self._lanes.values():
                seqs = [self._jobs[i].enqueued_seq for i in lane]
                if seqs != sorted(seqs):
                    problems.append("a lane is not in the order its jobs were queued")
            for waiting in (self._jobs[i] for i in queued_ids):
                for running in self._running.values():
                    if running.started_seq < waiting.enqueued_seq:
                        continue  # it started before this job was queued
                    if running.priority < waiting.priority:
                        problems.append(f"free {running.job_id} started while premium {waiting.job_id} waited")
                    elif running.priority == waiting.priority and running.enqueued_seq > waiting.enqueued_seq:
                        problems.append(f"{running.job_id} started before {waiting.job_id}, queued earlier")
            for (user, _), job_id in self._idempotency.items():
                if job_id not in self._jobs or self._jobs[job_id].user_id != user:
                    problems.append(f"an idempotency key points at {job_id}, not a job of {user}")
            return problems

    # ---------------------------------------------------------------- saving and restoring

    STATE_FORMAT = 1

    def export_state(self) -> dict[str, Any]:
        """Return everything needed to resume this simulation later, as JSON-ready data."""
        with self._lock:
            self._advance()
            return {
                "format": self.STATE_FORMAT,
                "saved_at": self._clock(),
                "jobs": [_job_record(job) for job in self._jobs.values()],
                "queued": list(self._queued_ids()),
                "finished": list(self._finished),
                "rng": _rng_record(self._rng.getstate()),
            }

    def import_state(self, state: dict[str, Any]) -> int:
        """Load a state made by `export_state` into this empty engine; return how many jobs it holds.

        Times are epoch seconds, so attempts that fell due while the server was down complete (or
        fail) at their own instants as soon as the clock is next read.
        """
        if state.get("format") != self.STATE_FORMAT:
            raise InvalidArgument(f"Unknown state format {state.get('format')!r}.")
        with self._lock:
            if self._jobs:
                raise InvalidArgument("State can only be loaded into an empty engine.")
            jobs = {}
            for record in state["jobs"]:
                fields = {k: v for k, v in record.items() if k not in _DERIVED_FIELDS}
                job = Job(**{**fields, "status": Status(record["status"]), "stage": Stage(record["stage"])})
                job.created_iso, job.updated_iso = iso(job.created_at), iso(job.updated_at)
                job.started_iso, job.finished_iso = iso(job.started_at), iso(job.finished_at)
                jobs[job.job_id] = job
            self._jobs = jobs
            for job in jobs.values():
                self._by_user.setdefault(job.user_id, {})[job.job_id] = None
                if job.idempotency_key is not None:
                    self._idempotency[(job.user_id, job.idempotency_key)] = job.job_id
                if job.stage is Stage.TRANSLATING:
                    self._running[job.job_id] = job
                    job.started_seq = next(self._seq)
                    heapq.heappush(self._events, (job.attempt_ends_at, next(self._seq), job.job_id, job.attempts))
            for job_id in state["queued"]:
                self._enqueue(jobs[job_id])
            self._finished = dict.fromkeys(state["finished"])
            self._rng.setstate(_rng_state(state["rng"]))
            self._schedule_changed.notify_all()
            return len(jobs)

    # ---------------------------------------------------------------- internals (lock held)

    def _require(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"No job with id {job_id!r}.", job_id=job_id)
        return job

    def _move(self, job: Job, event: Event, at: float) -> None:
        """Apply `event` to `job` at time `at`, or raise TransitionRefused: the one place jobs change state."""
        target = TRANSITIONS.get((job.status, job.stage), {}).get(event)
        if target is None:
            raise TransitionRefused(
                f"Job {job.job_id} is {job.status.value} ({job.stage.value}); it cannot {event.value}.",
                job_id=job.job_id,
                job_status=job.status.value,
            )
        source_stage = job.stage
        job.status, job.stage = target
        job.version += 1
        job.updated_at = at
        job.updated_iso = iso(at)
        if source_stage is Stage.QUEUED:
            self._lanes[job.priority].remove(job.ticket)
        elif source_stage is Stage.TRANSLATING:
            del self._running[job.job_id]
        if job.stage is Stage.QUEUED:
            self._enqueue(job)
        elif job.stage is Stage.TRANSLATING:
            job.started_seq = next(self._seq)
            self._running[job.job_id] = job
        else:
            job.finished_at = at
            job.finished_iso = job.updated_iso
            self._finished[job.job_id] = None
        waiters = self._waiters.get(job.job_id)
        if waiters:
            waiters[0].notify_all()

    def _enqueue(self, job: Job) -> None:
        """Put a job at the back of its priority's lane."""
        job.ticket = self._lanes[job.priority].push(job.job_id)
        job.enqueued_seq = next(self._seq)

    def _start_next(self, at: float) -> Job:
        """Start an attempt of the first queued job at time `at` and return it."""
        lane = self._lanes[1] if len(self._lanes[1]) else self._lanes[0]
        job = self._jobs[next(iter(lane))]
        settings = self.settings
        self._move(job, Event.START, at)
        rng = self._rng
        base = self._attempt_seconds(job.role, settings)
        jitter = settings.DELAY_JITTER
        duration = base * rng.uniform(1.0 - jitter, 1.0 + jitter) if jitter else base
        fails = rng.random() < settings.ERROR_RATE
        job.attempts += 1
        # A new MAX_RETRIES applies from this attempt on, but cannot take back a retry already granted.
        job.max_retries = max(settings.MAX_RETRIES, job.attempts - 1)
        if job.started_at is None:
            job.started_at, job.started_iso = at, job.updated_iso  # _move just formatted `at`
        job.attempt_started_at = at
        job.attempt_duration = duration
        if fails:
            job.attempt_ends_at = at + duration * rng.random()
            job.attempt_error = rng.choice(ERROR_CODES)
        else:
            job.attempt_ends_at = at + duration
            job.attempt_error = None
        heapq.heappush(self._events, (job.attempt_ends_at, next(self._seq), job.job_id, job.attempts))
        self._schedule_changed.notify_all()
        return job

    def _end_attempt(self, job: Job, at: float) -> None:
        """Finish the running attempt of `job` at its due time `at`: complete, fail and requeue, or give up."""
        if job.attempt_error is None:
            job.error = None
            job.progress_at_stop = 100
            self._move(job, Event.COMPLETE, at)
            return
        job.progress_at_stop = self._progress(job, at)
        job.error = {
            "code": job.attempt_error,
            "message": ERROR_MESSAGES[job.attempt_error],
            "attempt": job.attempts,
            "at": iso(at),
        }
        self._move(job, Event.GIVE_UP if job.attempts > job.max_retries else Event.FAIL, at)

    def _fill_slots(self, at: float) -> None:
        """In auto mode, start queued jobs at time `at` while a slot is free."""
        settings = self.settings
        if settings.PROCESSING_MODE != "auto":
            return
        while len(self._running) < settings.WORKERS and self._queued_count():
            self._start_next(at)

    def _advance(self) -> float:
        """Replay every event due by now, each at its own instant; return now."""
        now = self._clock()
        events = self._events
        while events and events[0][0] <= now:
            due, _, job_id, attempt = heapq.heappop(events)
            job = self._jobs.get(job_id)
            if job is None or job.stage is not Stage.TRANSLATING or job.attempts != attempt:
                continue  # the attempt was cancelled (or the job removed) before it ended
            self._end_attempt(job, due)
            self._fill_slots(due)
        self._expire(now)
        return now

    def _expire(self, now: float) -> None:
        """Remove finished jobs older than JOB_TTL."""
        ttl = self.settings.JOB_TTL
        while self._finished:
            job = self._jobs[next(iter(self._finished))]
            if job.finished_at is None or job.finished_at + ttl > now:
                break
            self._remove(job)

    def _remove(self, job: Job) -> None:
        """Forget a finished job and its idempotency key."""
        del self._jobs[job.job_id]
        self._finished.pop(job.job_id, None)
        user_jobs = self._by_user[job.user_id]
        del user_jobs[job.job_id]
        if not user_jobs:
            del self._by_user[job.user_id]
        if job.idempotency_key is not None:
            self._idempotency.pop((job.user_id, job.idempotency_key), None)
        waiters = self._waiters.get(job.job_id)
        if waiters:
            waiters[0].notify_all()

    def _next_due(self) -> float | None:
        """Return when the next attempt ends or the next finished job expires (None if nothing is scheduled)."""
        candidates = []
        while self._events:
            due, _, job_id, attempt = self._events[0]
            job = self._jobs.get(job_id)
            if job is not None and job.stage is Stage.TRANSLATING and job.attempts == attempt:
                candidates.append(due)
                break
            heapq.heappop(self._events)  # drop a stale entry
        if self._finished:
            oldest = self._jobs[next(iter(self._finished))]
            if oldest.finished_at is not None:
                candidates.append(oldest.finished_at + self.settings.JOB_TTL)
        return min(candidates) if candidates else None

    def _room_expected_in(self, now: float) -> int:
        """Return whole seconds until a stored job is expected to expire and make room."""
        if self._finished:
            oldest = self._jobs[next(iter(self._finished))]
            if oldest.finished_at is not None:
                return max(1, math.ceil(oldest.finished_at + self.settings.JOB_TTL - now))
        return max(1, math.ceil(self.settings.JOB_TTL))

    def _queued_count(self) -> int:
        return len(self._lanes[1]) + len(self._lanes[0])

    def _queued_ids(self) -> Iterator[str]:
        return itertools.chain(self._lanes[1], self._lanes[0])

    def _queue_position(self, job: Job) -> int:
        position = self._lanes[job.priority].rank(job.ticket)
        return position if job.priority == 1 else position + len(self._lanes[1])

    def _progress(self, job: Job, now: float) -> int:
        if job.stage is Stage.QUEUED:
            return 0
        if job.stage is Stage.FINISHED:
            return job.progress_at_stop
        if job.attempt_duration <= 0:
            return 99
        return max(0, min(99, int(100 * (now - job.attempt_started_at) / job.attempt_duration)))

    def _attempt_seconds(self, role: str, settings: Settings) -> float:
        """Return how long an attempt of `role` takes when it does not fail."""
        return settings.TRANSLATION_DELAY * (settings.PREMIUM_DELAY_FACTOR if role == "premium" else 1.0)

    def _eta(self, job: Job, now: float) -> float | None:
        """Return seconds until the job's current or next attempt is expected to end (None if unknown)."""
        if job.stage is Stage.FINISHED:
            return None
        if job.stage is Stage.TRANSLATING:
            return max(0.0, job.attempt_ends_at - now)
        if self.settings.PROCESSING_MODE != "auto":
            return None  # nothing starts until someone calls process_jobs
        # The jobs ahead of a queued job are the first ones of the queue order: premium, then free.
        plan = _StartPlan(self, now)
        if job.priority == 1:
            plan.skip("premium", self._lanes[1].rank(job.ticket) - 1)
        else:
            plan.skip("premium", len(self._lanes[1]))
            plan.skip("free", self._lanes[0].rank(job.ticket) - 1)
        return plan.start() + self._attempt_seconds(job.role, self.settings)

    def _queued_places(self, now: float, depth: int | None = None) -> dict[str, tuple[int, float | None]]:
        """Return (queue_position, eta) of the first `depth` queued jobs (None: all) in one pass.

        They are the figures `_view` gives one by one.
        """
        if depth == 0:
            return {}
        auto = self.settings.PROCESSING_MODE == "auto"
        plan = _StartPlan(self, now) if auto else None
        seconds = {role: self._attempt_seconds(role, self.settings) for role in ROLES}
        places: dict[str, tuple[int, float | None]] = {}
        for position, job_id in enumerate(itertools.islice(self._queued_ids(), depth), 1):
            if plan is None:
                places[job_id] = (position, None)
                continue
            role = self._jobs[job_id].role
            places[job_id] = (position, plan.start() + seconds[role])
            plan.skip(role, 1)
        return places

    def _view(
        self, job: Job, now: float, places: dict[str, tuple[int, float | None]] | None = None
    ) -> dict[str, Any]:
        """Return the job as the JSON-ready dict the API shows (`places`: from `_queued_places`, for listings)."""
        status = job.status
        if job.stage is Stage.QUEUED and places is not None:
            position, eta = places[job.job_id]
        elif job.stage is Stage.QUEUED:
            position, eta = self._queue_position(job), self._eta(job, now)
        else:
            position, eta = None, self._eta(job, now)
        return {
            "job_id": job.job_id,
            "status": status.value,
            "result": status.result,
            "done": status.terminal,
            "stage": job.stage.value,
            "role": job.role,
            "priority": job.priority,
            "user_id": job.user_id,
            "progress": self._progress(job, now),
            "queue_position": position,
            "attempts": job.attempts,
            "max_retries": job.max_retries,
            "eta_seconds": None if eta is None else round(eta, 3),
            "error": job.error,
            "version": job.version,
            "cancel_reason": job.cancel_reason,
            "video_url": job.video_url,
            "target_language": job.target_language,
            "created_at": job.created_iso,
            "updated_at": job.updated_iso,
            "started_at": job.started_iso,
            "finished_at": job.finished_iso,
        }
