"""The waiting and submitting loops as plans without I/O, driven alike by the sync and the async client.

A plan says what to do next — `Sleep`, `Send` a call with a total time budget, or `Finished` — and is told
what came of each request. The clients only carry the plans out, so both wait, retry and give up the same way.

    plan = WaitPlan(["id"], deadline=..., now=clock(), ...)
    while not isinstance(step := plan.next(clock()), Finished):
        if isinstance(step, Sleep): sleep(step.seconds); continue
        ... send step.call within step.budget; then plan.answered(...) or plan.failed(...)
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from simulator.client.errors import (
    APIError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    TranslationError,
    TransportError,
    WaitTimeoutError,
    is_transient,
    retry_after,
)
from simulator.client.job import Job
from simulator.client.pacing import (
    Pacing,
    backoff_delay,
    floor_delay,
    hint_delay,
    long_poll_wait,
    request_budget,
    retry_delay,
)
from simulator.client.protocol import Answer, Call, long_poll_honoured, status_call

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressCallback = Callable[[Job], None]


@dataclass(frozen=True)
class Sleep:
    """Sleep this many seconds, then ask the plan again."""

    seconds: float


@dataclass(frozen=True)
class Send(Generic[T]):
    """Send `call`; it may take `budget` seconds in all (connecting and every read)."""

    call: Call[T]
    budget: float
    job_id: str | None = None


@dataclass(frozen=True)
class Finished:
    """Every job is finished: {job_id: final Job}."""

    jobs: dict[str, Job]


@dataclass
class _Watch:
    """What the waiting plan knows about one job."""

    job_id: str
    job: Job | None = None
    next_check: float = -math.inf  # when its hints say it will have moved
    not_before: float = -math.inf  # the floor after the last request about it
    misses: int = 0  # consecutive answers without a hint
    seen: tuple[str, int, int | None] | None = None


class WaitPlan:
    """Wait for jobs until each is finished: long-poll when the server holds requests, else sleep on hints.

    One plan serves many jobs: each is checked when its hint says it will have moved, and while nothing
    is due the job due first is long-polled instead of slept on. After an answer a job is not asked about
    again before the floor; after a failure nothing is sent before the pause `retry_delay` gives, long-poll
    or not. At the deadline it raises WaitTimeoutError (ServerUnreachableError if the last request got no
    answer); without a deadline it gives up with ServerUnreachableError once the server has given no answer
    for `pacing.unreachable_limit` seconds.
    """

    def __init__(
        self,
        jobs: Sequence[str | Job],
        *,
        deadline: float,
        now: float,
        pacing: Pacing,
        rng: random.Random,
        request_timeout: float,
        long_poll: bool,
        server_long_polls: bool | None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.deadline = deadline
        self.pacing = pacing
        self.long_poll = long_poll
        #: Whether the server honours long-polls: None until an answer tells.
        self.server_long_polls = server_long_polls if long_poll else False
        self._start = now
        self._rng = rng
        self._request_timeout = request_timeout
        self._on_progress = on_progress
        self._watches: dict[str, _Watch] = {}
        self._finished: dict[str, Job] = {}
        self._failures = 0  # consecutive failed requests, whichever job they were about
        self._last_error: TranslationError | None = None
        self._pause_until = -math.inf
        self._last_answer_at = now
        for item in jobs:
            job_id = item if isinstance(item, str) else item.job_id
            if job_id in self._watches or job_id in self._finished:
                continue
            watch = self._watches[job_id] = _Watch(job_id)
            if isinstance(item, Job):  # just answered (a submission): the floor applies to it too
                watch.not_before = now + floor_delay(0, rng, pacing)
                self._observe(watch, item, None, now)

    def _due(self, watch: _Watch) -> float:
        return max(watch.next_check, watch.not_before, self._pause_until)

    def next(self, now: float) -> Sleep | Send[Job] | Finished:
        """Return what to do at `now`; raise WaitTimeoutError (or ServerUnreachableError) when it is over."""
        if not self._watches:
            return Finished(self._finished)
        first, *rest = heapq.nsmallest(2, self._watches.values(), key=self._due)
        if now >= self.deadline:
            raise self._timeout(now, first.job)
        if (self.deadline == math.inf and isinstance(self._last_error, TransportError)
                and now - self._last_answer_at >= self.pacing.unreachable_limit):
            raise ServerUnreachableError(
                f"No answer from the server for {now - self._last_answer_at:.0f} s; giving up "
                f"(last error: {self._last_error})", first.job, self._last_error) from self._last_error
        due = self._due(first)
        allowed = max(first.not_before, self._pause_until)
        horizon = min(self._due(rest[0]) if rest else math.inf, self.deadline)
        send_at, wait = due, None
        # Until the next job is due, the one due first is long-polled instead of slept on. A request made
        # at a job's check time asks for a wait anyway: a free probe of the server. Never before `allowed`.
        if self.long_poll and (self.server_long_polls is not False or due <= now):
            window = horizon - max(now, allowed)
            if window >= self.pacing.min_interval:
                send_at, wait = allowed, long_poll_wait(window, self.pacing)
        if send_at > now:
            return Sleep(min(send_at, self.deadline) - now)
        since = first.job.version if (wait and first.job is not None) else None
        call = status_call(first.job_id, wait=wait, since=since)
        budget = request_budget(self._request_timeout, call.hold, now, self.deadline)
        return Send(call, budget, first.job_id)

    def answered(self, send: Send[Job], job: Job, answer: Answer, sent_at: float, now: float) -> None:
        """Record the job a status request answered, tell on_progress if it moved, plan its next check."""
        self._failures, self._last_error, self._pause_until = 0, None, -math.inf
        self._last_answer_at = now
        held = long_poll_honoured(answer)
        if send.call.hold:
            self.server_long_polls = held
        watch = self._watches[send.job_id or job.job_id]
        watch.not_before = now + floor_delay(0, self._rng, self.pacing)
        # A hint counts from when the server spoke: at once for a plain answer (so from when it was sent:
        # a slow answer costs at most an early request, never lag), at the end of a held long-poll.
        self._observe(watch, job, retry_after(answer.headers), now if held else sent_at)

    def failed(self, send: Send[Job], error: TranslationError, now: float) -> None:
        """Record a failed status request: re-raise it unless it is transient, else pause all requests."""
        if not is_transient(error):
            raise error
        self._failures += 1
        self._last_error = error
        if isinstance(error, APIError):
            self._last_answer_at = now  # an answer, if an unhappy one: the server is there
        delay = retry_delay(self._failures, getattr(error, "retry_after", None), self._rng, self.pacing)
        self._pause_until = now + delay
        log.info("status of %s failed (%s); retrying in %.2f s", send.job_id, error, delay)

    def _observe(self, watch: _Watch, job: Job, hinted: float | None, observed_at: float) -> None:
        watch.job = job
        key = job.progress_key()
        if key != watch.seen:
            watch.seen = key
            if self._on_progress is not None:
                self._on_progress(job)
        if job.done:
            self._finished[watch.job_id] = job
            del self._watches[watch.job_id]
            return
        has_hint = job.eta_seconds is not None or hinted is not None
        watch.misses = 0 if has_hint else watch.misses + 1
        watch.next_check = observed_at + hint_delay(job, hinted, max(0, watch.misses - 1), self._rng, self.pacing)

    def _timeout(self, now: float, job: Job | None) -> WaitTimeoutError:
        states = ", ".join(f"{w.job_id}: {w.job.status if w.job else 'unknown'}" for w in self._watches.values())
        message = f"Waited {now - self._start:.1f} s; not finished: {states}"
        error = self._last_error if self._failures else None
        if isinstance(error, TransportError):
            timeout: WaitTimeoutError = ServerUnreachableError(f"{message}; no answer from the server: {error}",
                                                               job, error)
        else:
            timeout = WaitTimeoutError(message + (f"; last error: {error}" if error else ""), job, error)
        timeout.__cause__ = error
        return timeout


class SubmitPlan(Generic[T]):
    """Send a submission until it is answered: retried under its Idempotency-Key, within the deadline.

    No answer and 5xx are retried `retries` times after the pause `retry_delay` gives; a 429 is waited
    out only while `rate_limit_until` allows; anything else is raised at once. When the deadline leaves
    no room for another try, it raises WaitTimeoutError (ServerUnreachableError after no answer).
    """

    def __init__(
        self,
        call: Call[T],
        *,
        deadline: float,
        now: float,
        rate_limit_until: float,
        retries: int,
        pacing: Pacing,
        rng: random.Random,
        request_timeout: float,
    ) -> None:
        self.call = call
        self.deadline = deadline
        self._start = now
        self._rate_limit_until = rate_limit_until
        self._retries = retries
        self._pacing = pacing
        self._rng = rng
        self._request_timeout = request_timeout
        self._failures = 0
        self._retry_at = -math.inf
        self._last_error: TranslationError | None = None

    def next(self, now: float) -> Sleep | Send[T]:
        """Return what to do at `now`: sleep until the next try, or send it."""
        if now >= self.deadline:
            raise self._out_of_time(now)
        if now < self._retry_at:
            return Sleep(min(self._retry_at, self.deadline) - now)
        return Send(self.call, request_budget(self._request_timeout, 0.0, now, self.deadline))

    def failed(self, error: TranslationError, now: float) -> None:
        """Record a failed try: plan the next one, or raise when it may not or cannot be retried."""
        self._last_error = error
        if isinstance(error, RateLimitError):
            hinted = error.retry_after
            delay = max(floor_delay(0, self._rng, self._pacing),
                        hinted if hinted is not None else backoff_delay(self._failures, self._rng, self._pacing))
            if now + delay > min(self._rate_limit_until, self.deadline):
                raise error
            log.info("rate limited; retrying the submission in %.1f s", delay)
        elif isinstance(error, (TransportError, ServerError)):
            self._failures += 1
            if self._failures > self._retries:
                raise error
            delay = retry_delay(self._failures, getattr(error, "retry_after", None), self._rng, self._pacing)
            log.info("submission failed (%s); retrying in %.2f s with the same Idempotency-Key", error, delay)
        else:
            raise error
        if now + delay >= self.deadline:
            raise self._out_of_time(now)
        self._retry_at = now + delay

    def _out_of_time(self, now: float) -> WaitTimeoutError:
        error = self._last_error
        message = f"No answer to the submission within {now - self._start:.1f} s"
        timeout: WaitTimeoutError
        if isinstance(error, TransportError):
            timeout = ServerUnreachableError(f"{message}: {error}", None, error)
        else:
            timeout = WaitTimeoutError(message + (f"; last error: {error}" if error else ""), None, error)
        timeout.__cause__ = error
        return timeout

