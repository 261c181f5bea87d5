"""The engine: submit, schedule, run, fail, retry, cancel, clean up and wait, on any store.

Pure Python. Time comes only from the injected `clock` (seconds, epoch-based so timestamps read as
dates) and randomness only from the injected `random.Random`, so a run with a fake clock and a seeded
generator is reproducible to the microsecond. Jobs live in a `Store`; every public method runs in one
store transaction (`_atomic`), and every change of a job is published on the `ChangeFeed` once the
transaction has committed. A shared store (Redis) may refuse a commit because another process changed
what the transaction read (`StoreConflict`); the call then runs again from the start, on fresh reads.

Time is exact: `_advance` replays every attempt end that fell due since the last call, in time order,
at the instant it was due, and a slot freed by it starts the next job at that same instant. Every
public method advances first; the process also runs a ticker that calls `wait_for_next_event`, so
jobs finish on time even when nobody asks.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from simulator.clock import Clock, ManualClock, system_clock
from simulator.domain.errors import (
    CapacityExceeded,
    ClockNotManual,
    IdempotencyMismatch,
    InvalidArgument,
    JobError,
    JobNotFound,
    ScenariosDisabled,
    StoreConflict,
    StoreUnavailable,
    TransitionRefused,
)
from simulator.domain.invariants import check_invariants
from simulator.domain.job import Job, copy_job, iso
from simulator.domain.planning import StartPlan, job_attempt_seconds, progress, running_eta
from simulator.domain.scenario import ReadFault, Scenario
from simulator.domain.status import ROLES, TERMINAL, TRANSITIONS, Event, Stage, Status
from simulator.domain.view import Places, Snapshot, job_view
from simulator.feed import ChangeFeed
from simulator.settings import RuntimeConfig, Settings

if TYPE_CHECKING:
    from simulator.store.base import Store

ERROR_MESSAGES = {
    "timeout": "The translation worker timed out.",
    "internal_error": "The translation worker hit an internal error.",
    "unknown": "The translation failed for an unknown reason.",
}
ERROR_CODES = tuple(ERROR_MESSAGES)
#: What the change feed calls each transition.
CHANGE_KINDS = {
    Event.COMPLETE: "completed",
    Event.FAIL: "failed",
    Event.GIVE_UP: "permanently_failed",
    Event.CANCEL: "cancelled",
}

#: Called with (change kind, job, time) for every change: by `JobEngine.observe_in_transaction` inside the store
#: transaction that made it (the job itself), by `JobEngine.observe` after it committed (a copy of the job as it was).
Observer = Callable[[str, Job, float], None]
#: The longest a manual clock may be moved in one step: ten years, in seconds.
MAX_CLOCK_STEP = 315_360_000
#: How many ids of jobs without status_faults a process remembers (a shared store's reads skip a load for them).
MAX_UNSCRIPTED = 100_000
T = TypeVar("T")
#: How often a call is run again after commit conflicts before it answers StoreUnavailable.
MAX_CONFLICTS = 100
_backoff_rng = random.Random()  # noqa: S311 - jitter for conflict retries, never the simulation's generator


def _page_end(offset: int, limit: int | None) -> int | None:
    """Return where a page starting at `offset` ends (None: at the end)."""
    return None if limit is None else offset + limit


class JobEngine:
    """The simulated translation backend: submit, schedule, run, fail, retry, cancel, wait, clean up."""

    def __init__(
        self,
        config: RuntimeConfig | Settings | None = None,
        *,
        store: Store | None = None,
        feed: ChangeFeed | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(config, RuntimeConfig):
            config = RuntimeConfig(config or Settings())
        self.config = config
        if store is None:
            from simulator.store.memory import MemoryStore  # the stores build on the domain, not the reverse

            store = MemoryStore()
        self.store: Store = store
        self.feed = feed if feed is not None else ChangeFeed()
        self._clock = clock or system_clock()
        self._rng = rng or self._seeded_rng(config.current.RANDOM_SEED)
        self._schedule_changed = threading.Condition(self.store.lock)
        self._schedule_generation = 0  # moves on every change of the schedule, so no wake-up is missed
        self._local = threading.local()  # the changes of the thread's open transaction, published at commit
        self._unscripted: dict[str, None] = {}  # shared stores: ids of jobs seen without status_faults (bounded)
        self._in_transaction: list[Observer] = []  # what must be written with a change (the webhook outbox)
        self._committed: list[Observer] = []  # what reads changes once they hold (metrics)

    def _seeded_rng(self, seed: int | None) -> random.Random:
        """Return the generator: RANDOM_SEED alone for a new store, mixed with the store's counter otherwise.

        A reopened store must never see an id it held (or holds) drawn again; its counter only grows.
        """
        if seed is None:
            return random.Random()  # noqa: S311 - a simulation, not cryptography
        with self.store.transaction():
            mark = self.store.next_seq()
        return random.Random(seed if mark == 0 else f"{seed}/{mark}")  # noqa: S311

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

        def read() -> dict[str, Any]:
            now = self._advance()
            return self._view(self._require(job_id), now)

        return self._atomic(read, job_id=job_id)

    def get_with_meta(self, job_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Return the job's current view and what it carries in `meta` (a copy), or raise JobNotFound."""

        def read() -> tuple[dict[str, Any], dict[str, Any] | None]:
            now = self._advance()
            job = self._require(job_id)
            return self._view(job, now), dict(job.meta) if job.meta else None

        return self._atomic(read, job_id=job_id)

    def newest(self, user_id: str | None = None) -> dict[str, Any]:
        """Return the newest job of `user_id` (of anyone if None), or raise JobNotFound."""

        def read() -> dict[str, Any]:
            now = self._advance()
            job = self.store.newest(user_id)
            if job is None:
                who = f"user {user_id!r}" if user_id is not None else "anyone"
                raise JobNotFound(f"No job has been submitted by {who}.")
            return self._view(job, now)

        return self._atomic(read, newest=True, user_id=user_id)

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
        if status is None and role is None:
            return self.snapshot(user_id=user_id, offset=offset, limit=limit).views()

        def read() -> list[dict[str, Any]]:
            now = self._advance()
            selected = (
                job
                for job in self.store.jobs(user_id)
                if (status is None or job.status is status) and (role is None or job.role == role)
            )
            page = list(itertools.islice(selected, offset, _page_end(offset, limit)))
            places = self._queued_places(now, self._depth(page, limit))
            return [self._view(job, now, places) for job in page]

        return self._atomic(read)

    def snapshot(self, *, user_id: str | None = None, offset: int = 0, limit: int | None = None) -> Snapshot:
        """Return copies of the stored jobs (one user's, one page), oldest first, as they are now (see Snapshot)."""

        def read() -> Snapshot:
            now = self._advance()
            page = list(itertools.islice(self.store.jobs(user_id), offset, _page_end(offset, limit)))
            places = self._queued_places(now, self._depth(page, limit))
            return Snapshot(now, [copy_job(job) for job in page], places, self.store.count(user_id))

        return self._atomic(read)

    def queue_snapshot(
        self, *, offset: int = 0, limit: int | None = None, user_id: str | None = None
    ) -> tuple[Snapshot, Snapshot]:
        """Return copies of the queued jobs in start order (one page; `total`: all queued) and of the running ones.

        With `user_id`, only that user's jobs (and their total); their queue positions stay the global ones.
        """

        def read() -> tuple[Snapshot, Snapshot]:
            now = self._advance()
            end = _page_end(offset, limit)
            if user_id is None:
                places = self._queued_places(now, end)
                queued = [copy_job(job) for job in itertools.islice(self.store.queued(), offset, end)]
                running = [copy_job(job) for job in self.store.running()]
                total = self.store.queued_count()
            else:
                mine = [job for job in self.store.queued() if job.user_id == user_id]
                page, total = mine[offset:end], len(mine)
                places = self._queued_places(now, max((self.store.queue_position(job) for job in page), default=0))
                queued = [copy_job(job) for job in page]
                running = [copy_job(job) for job in self.store.running() if job.user_id == user_id]
            return Snapshot(now, queued, places, total), Snapshot(now, running, {}, len(running))

        return self._atomic(read)

    def _depth(self, page: list[Job], limit: int | None) -> int | None:
        """Return how deep the queue must be walked for a page: to its deepest queued job (all without a limit)."""
        if limit is None:
            return None
        return max((self.store.queue_position(job) for job in page if job.stage is Stage.QUEUED), default=0)

    def total(self, user_id: str | None = None) -> int:
        """Return how many jobs are stored (of one user, if given)."""

        def read() -> int:
            self._advance()
            return self.store.count(user_id)

        return self._atomic(read)

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

    def queue(self, *, offset: int = 0, limit: int | None = None, user_id: str | None = None) -> dict[str, Any]:
        """Return the queued jobs in start order (optionally a page), their total, the running ones, workers, mode.

        With `user_id`, only that user's jobs are listed (and counted); their queue positions stay global.
        """
        queued, running = self.queue_snapshot(offset=offset, limit=limit, user_id=user_id)
        settings = self.settings
        return {
            "mode": settings.PROCESSING_MODE,
            "workers": settings.WORKERS,
            "queued": queued.views(),
            "queued_total": queued.total,
            "running": running.views(),
        }

    def running(self) -> list[dict[str, Any]]:
        """Return the views of the jobs being translated."""

        def read() -> list[dict[str, Any]]:
            now = self._advance()
            return [self._view(job, now) for job in self.store.running()]

        return self._atomic(read)

    def depths(self) -> dict[str, int]:
        """Return how many jobs are queued per role, running and stored, without walking any of them."""

        def read() -> dict[str, int]:
            self._advance()
            store = self.store
            return {
                **{role: store.queued_count(priority) for role, priority in ROLES.items()},
                "running": store.running_count(),
                "stored": store.count(),
            }

        return self._atomic(read)

    def counts(self) -> dict[str, int]:
        """Return how many jobs are stored, queued and running."""

        def read() -> dict[str, int]:
            self._advance()
            return {
                "jobs": self.store.count(),
                "queued": self.store.queued_count(),
                "running": self.store.running_count(),
            }

        return self._atomic(read)

    def find_idempotent(self, user_id: str, key: str) -> str | None:
        """Return the id of the job `user_id` submitted under Idempotency-Key `key`, if it is stored."""

        def read() -> str | None:
            self._advance()
            job = self.store.find_idempotent(user_id, key)
            return None if job is None else job.job_id

        return self._atomic(read, idempotency=(user_id, key))

    def would_create(self, user_id: str, key: str | None) -> bool:
        """Tell whether a submission now would make a new job: not when MAX_JOBS are stored or `key` is known."""

        def read() -> bool:
            self._advance()
            if self.store.count() >= self.settings.MAX_JOBS:
                return False
            return key is None or self.store.find_idempotent(user_id, key) is None

        return self._atomic(read, idempotency=None if key is None else (user_id, key))

    def take_read_fault(self, job_id: str) -> ReadFault | None:
        """Count one status read of the job; return the HTTP fault its script says this read answers, if any.

        None for a job without status_faults, and for no job at all (the read itself answers that). Reads are
        counted only for jobs scripted with status_faults, by the store (so every process of a shared store
        counts the same reads). It does not advance time: the read that follows does (this keeps an
        unscripted read as cheap as before; on a shared store, a job this process has seen without
        status_faults costs no round trip at all: a job's script never changes).
        """
        if job_id in self._unscripted:
            return None

        def read() -> ReadFault | None:
            job = self.store.get(job_id)
            if job is None:
                return None
            if not job.simulate or "status_faults" not in job.simulate:
                self._remember_unscripted(job_id)
                return None
            script = Scenario.parse(job.simulate)
            read = self.store.take_read(job_id, sum(times for _, times in script.status_faults))
            return None if read is None else script.read_fault(read)

        return self._atomic(read, job_id=job_id)

    def _remember_unscripted(self, job_id: str) -> None:
        """Remember (shared stores only) that a job has no status_faults, so its reads skip `take_read_fault`'s load."""
        if not self.store.shared:
            return
        if len(self._unscripted) >= MAX_UNSCRIPTED:
            self._unscripted.clear()  # one assignment at a time: safe without a lock; the ids come back as seen
        self._unscripted[job_id] = None

    # ---------------------------------------------------------------- changing

    def submit(
        self,
        role: str = "free",
        user_id: str = "anonymous",
        *,
        video_url: str | None = None,
        target_language: str | None = None,
        idempotency_key: str | None = None,
        simulate: Scenario | None = None,
        upload_id: str | None = None,
        media_seconds: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue a new job and return (its view, False); a known Idempotency-Key returns (that job, True).

        `simulate` scripts the job's outcomes (see `simulator.domain.scenario`); refused with
        ScenariosDisabled while SCENARIOS is off. `upload_id` names the uploaded video the job translates and
        `media_seconds` its duration, which times the job's attempts when DELAY_PER_MEDIA_SECOND is set.
        `meta` is carried with the job, unread by the engine (callback URL, title, …: see `Job.meta`).
        """
        if role not in ROLES:
            raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}.")
        if media_seconds is not None and not (media_seconds >= 0 and math.isfinite(media_seconds)):
            raise InvalidArgument(f"media_seconds must be a finite number ≥ 0, got {media_seconds!r}.")
        script = self._script(simulate)
        store = self.store

        def change() -> tuple[dict[str, Any], bool]:
            now = self._advance()
            if idempotency_key is not None:
                known = store.find_idempotent(user_id, idempotency_key)
                if known is not None:
                    if known.fingerprint != (role, video_url, target_language, script, upload_id):
                        raise IdempotencyMismatch(
                            "This Idempotency-Key was already used with a different request body.", job_id=known.job_id
                        )
                    return self._view(known, now), True
            self._ensure_room(now, 1)
            job = self._add(now, role, user_id, video_url=video_url, target_language=target_language,
                            idempotency_key=idempotency_key, simulate=script, upload_id=upload_id,
                            media_seconds=media_seconds, meta=meta)
            # A job may end the instant it starts (TRANSLATION_DELAY=0): let that happen now.
            now = self._advance()
            return self._view(job, now), False

        known = None if idempotency_key is None else (user_id, idempotency_key)
        view, replayed = self._atomic(change, idempotency=known)
        if not replayed and not (script and "status_faults" in script):
            self._remember_unscripted(view["job_id"])
        return view, replayed

    def submit_many(
        self,
        role: str,
        user_id: str,
        requests: Sequence[dict[str, Any]],
        *,
        simulate: Scenario | None = None,
        also: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Queue one job per request (`video_url`, `target_language`, `upload_id`, `media_seconds`, `meta`), all or
        none; return their views.

        For a submission that asks for several jobs at once (one per output language): if MAX_JOBS leaves
        no room for all of them, none is made. `simulate` scripts every one of them, as `submit`'s does.
        `also(views)` runs in the same transaction, for what must be committed with the jobs or not at all
        (the answer an Idempotency-Key replays).
        """
        if role not in ROLES:
            raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}.")
        script = self._script(simulate)

        def change() -> list[dict[str, Any]]:
            now = self._advance()
            self._ensure_room(now, len(requests))
            jobs = [
                self._add(now, role, user_id, video_url=r.get("video_url"), target_language=r.get("target_language"),
                          simulate=script, upload_id=r.get("upload_id"), media_seconds=r.get("media_seconds"),
                          meta=r.get("meta"))
                for r in requests
            ]
            now = self._advance()
            views = [self._view(job, now) for job in jobs]
            if also is not None:
                also(views)
            return views

        views = self._atomic(change)
        if not (script and "status_faults" in script):
            for view in views:
                self._remember_unscripted(view["job_id"])
        return views

    def _script(self, simulate: Scenario | None) -> dict[str, Any] | None:
        """Return a submission's script as the job keeps it; ScenariosDisabled while SCENARIOS is off."""
        if simulate is None:
            return None
        if self.settings.SCENARIOS != "on":
            raise ScenariosDisabled("Scripted outcomes (simulate, X-Simulate) are switched off on this server "
                                    "(SCENARIOS=off).")
        return simulate.to_json()

    def _ensure_room(self, now: float, count: int) -> None:
        """Raise CapacityExceeded unless `count` more jobs fit under MAX_JOBS."""
        store = self.store
        if store.count() + count > self.settings.MAX_JOBS:
            raise CapacityExceeded(
                f"The server holds {store.count()} jobs (MAX_JOBS); retry later or clean up.",
                retry_after=self._room_expected_in(now),
            )

    def _add(
        self,
        now: float,
        role: str,
        user_id: str,
        *,
        video_url: str | None,
        target_language: str | None,
        idempotency_key: str | None = None,
        simulate: dict[str, Any] | None = None,
        upload_id: str | None = None,
        media_seconds: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Job:
        """Make, store and announce a new queued job at `now`, and fill free slots."""
        store = self.store
        seq = store.next_seq()
        job = Job(
            job_id=self._new_id(),
            role=role,
            user_id=user_id,
            created_at=now,
            updated_at=now,
            created_iso=(stamp := iso(now)),
            updated_iso=stamp,  # one string for both until the job first moves
            video_url=video_url,
            target_language=target_language,
            idempotency_key=idempotency_key,
            max_retries=self.settings.MAX_RETRIES,
            submitted_seq=seq,
            enqueued_seq=seq,
            simulate=simulate,
            upload_id=upload_id,
            media_seconds=media_seconds,
            meta=meta or None,
        )
        store.add(job)
        self._publish("submitted", job, now)
        self._fill_slots(now)
        return job

    def cancel(self, job_id: str, reason: str | None = None) -> tuple[dict[str, Any], bool]:
        """Cancel a queued or running job; return (its view, whether it was already cancelled)."""

        def change() -> tuple[dict[str, Any], bool]:
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
            job.progress_at_stop = progress(job, now)
            job.cancel_reason = reason
            self._move(job, Event.CANCEL, now)
            if was_running:
                self._fill_slots(now)
            return self._view(job, now), False

        return self._atomic(change, job_id=job_id)

    def start_next(self, count: int = 1) -> list[dict[str, Any]]:
        """Start the next `count` queued jobs in priority order; return those started.

        In manual mode this ignores WORKERS. In auto mode free slots are filled as soon as they
        free up, so this starts jobs only into free slots (usually none) and never exceeds WORKERS.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidArgument(f"count must be an integer ≥ 1, got {count!r}.")

        def change() -> list[dict[str, Any]]:
            now = self._advance()
            settings = self.settings
            wanted = count
            if settings.PROCESSING_MODE == "auto":
                wanted = min(wanted, max(0, settings.WORKERS - self.store.running_count()))
            started = [self._start_next(now) for _ in range(min(wanted, self.store.queued_count()))]
            # A job may end the instant it starts (TRANSLATION_DELAY=0): let that happen now.
            now = self._advance()
            return [self._view(job, now) for job in started]

        return self._atomic(change)

    def configure(self, changes: dict[str, Any]) -> Settings:
        """Change runtime settings all or nothing (ConfigError if any is bad); they apply from now on.

        A shared store takes the changed values to every other process (`Store.record_settings`).
        """

        def change() -> Settings:
            self._advance()  # events due before the change happen under the old settings
            new = self.config.update(changes)
            self.store.record_settings({name: getattr(new, name) for name in changes})
            now = self._advance()
            self._fill_slots(now)
            self._schedule_moved()
            return new

        return self._atomic(change)

    def cleanup(self, statuses: Iterable[Status] = (Status.COMPLETED,), older_than: float = 0.0) -> int:
        """Remove finished jobs with one of `statuses` that finished at least `older_than` s ago; return how many."""
        wanted = set(statuses)
        if not wanted <= TERMINAL:
            bad = ", ".join(sorted(s.value for s in wanted - TERMINAL))
            raise InvalidArgument(f"Only finished jobs can be cleaned up; not {bad}.")
        if older_than < 0:
            raise InvalidArgument(f"older_than must be ≥ 0, got {older_than!r}.")

        def change() -> int:
            now = self._advance()
            doomed = []
            for job in self.store.finished():
                if job.finished_at is None or job.finished_at > now - older_than:
                    break  # finished in order: every later one is younger
                if job.status in wanted:
                    doomed.append(job)
            for job in doomed:
                self._remove(job, now)
            return len(doomed)

        return self._atomic(change)

    def reset(self, *, restore_config: bool = True, also: Callable[[], None] | None = None) -> int:
        """Remove every job and idempotency key and, unless told not to, restore the start-up settings: in one step.

        The engine is left as freshly started on its store: with RANDOM_SEED the generator starts again as
        a new process's would (on a durable or shared store, whose counter never goes back, as a restarted
        one's); without, it stays as random as it was. The clock is not touched. Every removal is published;
        a shared store also restores the settings of every other process. `also` runs before anything else
        reads the engine (the service's own state: rate-limit windows, the journal). Return how many jobs
        were removed.
        """

        def change() -> int:
            now = self._clock()
            removed = list(self.store.jobs())
            self.store.clear()
            for job in removed:
                self._publish("removed", job, now)
            if restore_config:
                self.store.record_settings({}, restore=True)
            self._schedule_moved()
            return len(removed)

        # In-process stores: their lock is the transaction's, so no request sees half of a reset. A shared
        # store's generator is seeded after the commit, from the counter as it is in the store.
        with self.store.lock:
            count = self._atomic(change)
            self._unscripted.clear()
            if restore_config:
                self.config.restore()
            if self.settings.RANDOM_SEED is not None:
                self._rng = self._seeded_rng(self.settings.RANDOM_SEED)
            if also is not None:
                also()
        return count

    # ---------------------------------------------------------------- waiting

    def wait_for_change(self, job_id: str, since: int | None = None, timeout: float = 0.0) -> dict[str, Any]:
        """Block until the job is finished or its version passes `since` (default: now), at most `timeout` real s.

        The waiter follows the change feed, and also wakes by itself when its job's running attempt
        is due to end, so the job is seen to finish on time even with nobody driving the clock.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            cursor = self.feed.cursor()  # before reading the job: a change in between is not missed

            def look(since: int | None = since) -> tuple[dict[str, Any] | None, int, float]:
                now = self._advance()
                job = self._require(job_id)
                seen = job.version if since is None else since
                remaining = deadline - time.monotonic()
                if job.status.terminal or job.version > seen or remaining <= 0 or self.feed.closed:
                    return self._view(job, now), seen, 0.0
                if job.stage is Stage.TRANSLATING and not self.manual_clock:
                    # A manual clock moves only through advance_clock, which publishes what it makes happen.
                    remaining = min(remaining, running_eta(job, now))
                return None, seen, remaining

            answer, since, remaining = self._atomic(look, job_id=job_id)
            if answer is not None:
                return answer
            self.feed.wait_for_job(job_id, cursor, remaining)

    def wait_for_next_event(self, max_seconds: float = 1.0) -> None:
        """Sleep (real s) until the next event is due, the schedule changes or `max_seconds` pass; advance."""
        generation = self._schedule_generation  # read first: a change committed after it is not slept through

        def plan() -> float:
            now = self._advance()
            due = self._next_due()
            return max_seconds if due is None else min(max_seconds, max(0.0, due - now))

        timeout = self._atomic(plan)
        if timeout > 0:
            with self.store.lock:  # not in a transaction: nothing may wait with one open
                if generation == self._schedule_generation:
                    self._schedule_changed.wait(timeout)
        self._atomic(self._advance)

    def wake(self) -> None:
        """Wake whoever waits in `wait_for_next_event` (to stop it, or because another process changed the schedule)."""
        with self.store.lock:
            self._schedule_generation += 1
            self._schedule_changed.notify_all()

    def release_waiters(self) -> None:
        """Answer every held and future `wait_for_change` at once (the server is shutting down)."""
        self.feed.close()

    def observe(self, observer: Observer) -> None:
        """Call `observer(kind, job, at)` for every change this engine makes, once committed, with a copy of the job."""
        self._committed.append(observer)

    def observe_in_transaction(self, observer: Observer) -> None:
        """Call `observer(kind, job, at)` for every change inside the transaction that makes it, so that what it
        writes to the store is committed with the change or not at all (and written again if the call reruns)."""
        self._in_transaction.append(observer)

    def check_invariants(self) -> list[str]:
        """Return every broken invariant of the stored jobs (an empty list when all hold); for tests and debugging."""
        return check_invariants(self.store)

    def advance(self) -> float | None:
        """Process every event due by now; return the time of the next one (None if none is scheduled)."""

        def step() -> float | None:
            self._advance()
            return self._next_due()

        return self._atomic(step)

    # ---------------------------------------------------------------- the clock

    @property
    def manual_clock(self) -> bool:
        """Tell whether time moves only when `advance_clock` moves it (CLOCK=manual)."""
        return isinstance(self._clock, ManualClock)

    def clock_state(self) -> dict[str, Any]:
        """Return the clock's kind, the simulated now, and when the next event is due (None: nothing scheduled)."""

        def read() -> dict[str, Any]:
            now = self._advance()
            due = self._next_due()
            return {
                "clock": "manual" if self.manual_clock else "system",
                "now": iso(now),
                "epoch_seconds": now,
                "next_event_at": iso(due),
                "next_event_in_seconds": None if due is None else max(0.0, due - now),
            }

        return self._atomic(read)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move a manual clock `seconds` forward, running every event due meanwhile at its own instant, in order.

        Attempt ends, the retries and next jobs they start, and TTL expiries all happen at the instants
        they were due, as they would have in real time; long-polls wake on what changed. Return the
        clock's state, how far it moved and how many job changes it made. ClockNotManual unless CLOCK=manual.
        """
        if not self.manual_clock:
            raise ClockNotManual("The clock is the system clock (CLOCK=system); start the server with CLOCK=manual "
                                 "to move simulated time yourself.")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_CLOCK_STEP:
            raise InvalidArgument(f"seconds must be a number in [0, {MAX_CLOCK_STEP}], got {seconds!r}.")
        clock: ManualClock = self._clock  # type: ignore[assignment]
        moved: list[float] = []  # the clock moves once, even when a conflict runs the body again

        def change() -> tuple[dict[str, Any], int]:
            self._advance()
            if not moved:
                moved.append(clock.advance(seconds))
            self._advance()
            self._schedule_moved()
            return self.clock_state(), len(self._local.changes)

        state, changes = self._atomic(change)
        return {**state, "advanced_seconds": float(seconds), "changes": changes}

    # ---------------------------------------------------------------- transactions

    def _atomic(
        self,
        body: Callable[[], T],
        *,
        job_id: str | None = None,
        idempotency: tuple[str, str] | None = None,
        newest: bool = False,
        user_id: str | None = None,
    ) -> T:
        """Run `body` in one store transaction, again from the start on a StoreConflict; then publish its changes.

        The keywords tell the store what the body reads first (`Store.prefetch`), so that a store in
        another process loads it with the indexes in one round trip. Changes are published, and the
        ticker told of a new schedule, only once the transaction has committed: a change that was
        refused is never seen.

        A call that answers a domain error (JobNotFound, CapacityExceeded, …) still commits and publishes what
        it changed before (the events that fell due: an expired job's removal), as an in-process store keeps
        them anyway; then the error is raised. Any other exception commits nothing on a shared store.
        """
        local = self._local
        if getattr(local, "changes", None) is not None:
            return body()  # inside another call's transaction: part of it
        attempt = 0
        while True:
            local.changes, local.schedule_moved, local.observed = [], False, []
            failure: JobError | None = None
            try:
                with self.store.transaction():
                    self.store.prefetch(job_id=job_id, idempotency=idempotency, newest=newest, user_id=user_id)
                    try:
                        result = body()
                    except JobError as e:
                        failure = e  # the call's answer; what it changed before that still holds
            except StoreConflict:
                attempt += 1
                if attempt >= MAX_CONFLICTS:
                    raise StoreUnavailable(
                        "The job store is too busy with changes from other processes; retry.", retry_after=1
                    ) from None
                time.sleep(_backoff_rng.uniform(0, min(0.02, 0.0002 * 2**attempt)))
                continue
            finally:
                changes, moved, observed = local.changes, local.schedule_moved, local.observed
                local.changes = None
            break
        for change in changes:
            self.feed.publish(*change)
        for kind, job, at in observed:
            for observer in self._committed:
                observer(kind, job, at)
        if moved:
            self.wake()
        if failure is not None:
            raise failure
        return result

    # ---------------------------------------------------------------- internals (in a transaction)

    def _require(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"No job with id {job_id!r}.", job_id=job_id)
        return job

    def _new_id(self) -> str:
        """Draw a UUID4 from the simulation's generator (again on the rare clash with a stored one)."""
        while True:
            job_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if not self.store.id_taken(job_id):
                return job_id

    def _schedule_moved(self) -> None:
        """Tell the ticker that the schedule changed, once the transaction commits."""
        self._local.schedule_moved = True

    def _publish(self, kind: str, job: Job, at: float) -> None:
        """Publish a change once the transaction commits (a shared store also sends it to the other processes).

        Observers see it at once, inside the transaction, so that what they write (the webhook outbox) is
        committed with the change or not at all.
        """
        for observe in self._in_transaction:
            observe(kind, job, at)
        self.store.record_change(kind, job, at)
        self._local.changes.append((kind, job.job_id, job.user_id, job.version, at))
        if self._committed:  # told after the commit, with the job as it was at this change
            self._local.observed.append((kind, copy.copy(job), at))

    def _move(self, job: Job, event: Event, at: float) -> None:
        """Apply `event` to `job` at time `at`, or raise TransitionRefused: the one place jobs change state."""
        target = TRANSITIONS.get((job.status, job.stage), {}).get(event)
        if target is None:
            raise TransitionRefused(
                f"Job {job.job_id} is {job.status.value} ({job.stage.value}); it cannot {event.value}.",
                job_id=job.job_id,
                job_status=job.status.value,
            )
        source = job.stage
        job.status, job.stage = target
        job.version += 1
        job.updated_at = at
        job.updated_iso = iso(at)
        if job.stage is Stage.QUEUED:
            job.enqueued_seq = self.store.next_seq()
        elif job.stage is Stage.TRANSLATING:
            job.started_seq = self.store.next_seq()
        else:
            job.finished_at = at
            job.finished_iso = job.updated_iso
        self.store.moved(job, source)
        kind = CHANGE_KINDS.get(event) or ("started" if job.attempts <= 1 else "retried")
        self._publish(kind, job, at)

    def _start_next(self, at: float) -> Job:
        """Start an attempt of the first queued job at time `at` and return it."""
        job = next(self.store.queued())
        settings = self.settings
        rng = self._rng
        script = Scenario.parse(job.simulate) if job.simulate else Scenario()
        attempt = job.attempts + 1
        # What the script says is taken as it is and draws nothing; the rest is drawn as configured.
        duration = script.seconds(attempt)
        if duration is None:
            base = job_attempt_seconds(job, settings)
            jitter = settings.DELAY_JITTER
            duration = base * rng.uniform(1.0 - jitter, 1.0 + jitter) if jitter else base
        outcome = script.outcome(attempt)
        fails = rng.random() < settings.ERROR_RATE if outcome is None else outcome == "fail"
        job.attempts = attempt
        # A new MAX_RETRIES applies from this attempt on, but cannot take back a retry already granted.
        job.max_retries = max(settings.MAX_RETRIES, job.attempts - 1)
        job.attempt_started_at = at
        job.attempt_duration = duration
        if fails and outcome is not None:
            job.attempt_ends_at = at + duration  # a scripted failure comes when the attempt's time is up
            job.attempt_error = script.fail_code or "internal_error"
        elif fails:
            job.attempt_ends_at = at + duration * rng.random()
            code = rng.choice(ERROR_CODES)
            job.attempt_error = script.fail_code or code
        else:
            job.attempt_ends_at = at + duration
            job.attempt_error = None
        self._move(job, Event.START, at)
        if job.started_at is None:
            job.started_at, job.started_iso = at, job.updated_iso  # _move just formatted `at`
        self._schedule_moved()
        return job

    def _end_attempt(self, job: Job, at: float) -> None:
        """Finish the running attempt of `job` at its due time `at`: complete, fail and requeue, or give up."""
        if job.attempt_error is None:
            job.error = None
            job.progress_at_stop = 100
            self._move(job, Event.COMPLETE, at)
            return
        job.progress_at_stop = progress(job, at)
        message = (job.simulate or {}).get("fail_message") or ERROR_MESSAGES[job.attempt_error]
        job.error = {
            "code": job.attempt_error,
            "message": message,
            "attempt": job.attempts,
            "at": iso(at),
        }
        self._move(job, Event.GIVE_UP if job.attempts > job.max_retries else Event.FAIL, at)

    def _fill_slots(self, at: float) -> None:
        """In auto mode, start queued jobs at time `at` while a slot is free."""
        settings = self.settings
        if settings.PROCESSING_MODE != "auto":
            return
        store = self.store
        while store.running_count() < settings.WORKERS and store.queued_count():
            self._start_next(at)

    def _advance(self) -> float:
        """Replay every event due by now in time order, each at its own instant; return now.

        The events are attempt ends (each may free a slot that starts the next job at that instant)
        and TTL expiries of finished jobs; at the same instant an attempt end goes first.
        """
        now = self._clock()
        store = self.store
        expiry = self._next_expiry()
        while True:
            # `until`: a shared store loads no job when no attempt is due.
            job = store.next_attempt_end(until=min(now, expiry[0]))
            ends = job.attempt_ends_at if job is not None else math.inf
            if min(ends, expiry[0]) > now:
                return now
            if job is not None and ends <= expiry[0]:
                self._end_attempt(job, ends)
                self._fill_slots(ends)
                if expiry[1] is None:  # the first finished job: later ones expire after the oldest
                    expiry = self._next_expiry()
            else:
                self._remove(expiry[1], expiry[0])  # type: ignore[arg-type]
                expiry = self._next_expiry()

    def _next_expiry(self) -> tuple[float, Job | None]:
        """Return when the oldest finished job expires (JOB_TTL after it finished) and that job; (inf, None): none."""
        oldest = next(self.store.finished(), None)
        if oldest is None or oldest.finished_at is None:
            return math.inf, None
        return oldest.finished_at + self.settings.JOB_TTL, oldest

    def _remove(self, job: Job, now: float) -> None:
        """Forget a finished job and its idempotency key."""
        self.store.remove(job)
        self._publish("removed", job, now)

    def _next_due(self) -> float | None:
        """Return when the next attempt ends or the next finished job expires (None if nothing is scheduled)."""
        candidates = []
        ends = self.store.running_ends()
        if ends:
            candidates.append(min(ends))
        oldest = next(self.store.finished(), None)
        if oldest is not None and oldest.finished_at is not None:
            candidates.append(oldest.finished_at + self.settings.JOB_TTL)
        return min(candidates) if candidates else None

    def _room_expected_in(self, now: float) -> int:
        """Return whole seconds until a stored job is expected to expire and make room."""
        oldest = next(self.store.finished(), None)
        if oldest is not None and oldest.finished_at is not None:
            return max(1, math.ceil(oldest.finished_at + self.settings.JOB_TTL - now))
        return max(1, math.ceil(self.settings.JOB_TTL))

    def _plan(self, now: float) -> StartPlan:
        return StartPlan(self.store.running_ends(), now, self.settings)

    def _queued_eta(self, job: Job, now: float) -> float | None:
        """Return seconds until a queued job's first attempt is expected to end (None in manual mode)."""
        settings = self.settings
        if settings.PROCESSING_MODE != "auto":
            return None  # nothing starts until someone calls process_jobs
        position = self.store.queue_position(job)
        if settings.DELAY_PER_MEDIA_SECOND > 0:
            # Attempts are timed by each job's video, so the jobs ahead are counted one by one, as a listing does:
            # a job shows the same ETA in GET /status/<id> as in GET /queue.
            return self._queued_places(now, position)[job.job_id][1]
        # The jobs ahead of a queued job are the first ones of the queue order: premium, then free.
        plan = self._plan(now)
        if job.priority == 1:
            plan.skip("premium", position - 1)
        else:
            premium = self.store.queued_count(1)
            plan.skip("premium", premium)
            plan.skip("free", position - premium - 1)
        return plan.start() + job_attempt_seconds(job, settings)

    def _queued_places(self, now: float, depth: int | None = None) -> Places:
        """Return (queue_position, eta) of the first `depth` queued jobs (None: all) in one pass.

        They are the figures `_view` gives one by one.
        """
        if depth == 0:
            return {}
        settings = self.settings
        plan = self._plan(now) if settings.PROCESSING_MODE == "auto" else None
        places: Places = {}
        for position, job in enumerate(itertools.islice(self.store.queued(), depth), 1):
            if plan is None:
                places[job.job_id] = (position, None)
                continue
            seconds = job_attempt_seconds(job, settings)
            places[job.job_id] = (position, plan.start() + seconds)
            plan.skip(job.role, 1, seconds)
        return places

    def _view(self, job: Job, now: float, places: Places | None = None) -> dict[str, Any]:
        """Return the job's wire view (`places`: from `_queued_places`, for listings)."""
        if job.stage is Stage.QUEUED:
            if places is not None:
                position, eta = places[job.job_id]
            else:
                position, eta = self.store.queue_position(job), self._queued_eta(job, now)
        elif job.stage is Stage.TRANSLATING:
            position, eta = None, running_eta(job, now)
        else:
            position, eta = None, None
        return job_view(job, now, position, eta)
