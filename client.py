"""TranslationClient: submit video translation jobs and learn when they are done, fast and with few requests.

    from client import TranslationClient
    with TranslationClient("http://127.0.0.1:4777", user_id="alice") as tc:
        job = tc.translate(role="premium", video_url="https://example.com/v.mp4", target_language="de")
        print(job.status, job.finished_at)

Waiting is the point of this module. While a job is unfinished the client long-polls when the server
honours it (`Preference-Applied`); otherwise it sleeps on the server's hints (`eta_seconds`,
`Retry-After`), bounded and jittered; with no hint it backs off exponentially, with jitter and a floor.
It never sleeps past the caller's deadline, and it retries transient failures (connection refused,
timeouts, 5xx, 429) inside that deadline instead of reporting them as a failed job.

`python client.py --help` for the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import logging
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "Job",
    "JobFailedError",
    "NotFoundError",
    "Pacing",
    "ProtocolError",
    "RateLimitError",
    "ServerError",
    "TranslationClient",
    "TranslationError",
    "TransportError",
    "WaitTimeoutError",
    "backoff_delay",
    "hint_delay",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:4777"
TERMINAL_STATUSES = frozenset({"completed", "permanently_failed", "cancelled"})


# --------------------------------------------------------------------------------------------- errors


class TranslationError(Exception):
    """Root of every error this client raises."""


class TransportError(TranslationError):
    """The request never got an HTTP answer (connection refused or reset, timeout, DNS)."""


class ProtocolError(TransportError):
    """The answer was not what this API sends (not JSON, or a job without its fields): another service?"""


class APIError(TranslationError):
    """The server answered with an HTTP error; carries the problem+json members."""

    def __init__(self, response: requests.Response, problem: Mapping[str, Any]) -> None:
        self.response = response
        self.problem = dict(problem)
        self.status: int = response.status_code
        self.code: str = str(problem.get("code", ""))
        self.title: str = str(problem.get("title", response.reason or ""))
        self.detail: str = str(problem.get("detail", response.text[:200]))
        self.type: str = str(problem.get("type", "about:blank"))
        super().__init__(f"{self.status} {self.title}: {self.detail}")


class BadRequestError(APIError):
    """400/413/422: the request was malformed or invalid."""


class AuthenticationError(APIError):
    """401/403: the admin token is missing or wrong."""


class NotFoundError(APIError):
    """404: no such job (or endpoint)."""


class ConflictError(APIError):
    """409: the job's state does not allow this (e.g. cancelling a completed job)."""


class RateLimitError(APIError):
    """429: too many free submissions; `retry_after` says how many seconds until one is allowed."""

    @property
    def retry_after(self) -> float | None:
        """Return the server's Retry-After in seconds, if it gave one."""
        return _retry_after(self.response, self.problem)


class ServerError(APIError):
    """5xx: the server failed or is overloaded (503 carries `retry_after`)."""

    @property
    def retry_after(self) -> float | None:
        """Return the server's Retry-After in seconds, if it gave one."""
        return _retry_after(self.response, self.problem)


class WaitTimeoutError(TranslationError, TimeoutError):
    """The job did not finish before the deadline; `job` is the last state seen (None if never seen)."""

    def __init__(self, message: str, job: Job | None) -> None:
        super().__init__(message)
        self.job = job


class JobFailedError(TranslationError):
    """The job ended without completing (permanently failed or cancelled); `job` is its final state."""

    def __init__(self, job: Job) -> None:
        reason = job.error.get("message") if job.error else job.cancel_reason
        super().__init__(f"Job {job.job_id} ended {job.status}" + (f": {reason}" if reason else ""))
        self.job = job


_ERROR_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    405: BadRequestError,
    409: ConflictError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def _retry_after(response: requests.Response, problem: Mapping[str, Any]) -> float | None:
    value = problem.get("retry_after", response.headers.get("Retry-After"))
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _decode(response: requests.Response) -> Any:
    """Return the JSON of a successful answer, or raise ProtocolError if it is not JSON."""
    try:
        return response.json()
    except ValueError as e:
        raise ProtocolError(f"{response.url}: the answer is not JSON; is this the translation server?") from e


def _is_transient(error: TranslationError) -> bool:
    """Tell whether retrying the same request later may succeed."""
    return isinstance(error, (TransportError, ServerError, RateLimitError))


# ---------------------------------------------------------------------------------------------- Job


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Job:
    """An immutable view of one job as the server last described it."""

    job_id: str
    status: str
    result: str
    done: bool
    role: str
    priority: int
    user_id: str
    progress: int
    queue_position: int | None
    attempts: int
    max_retries: int
    eta_seconds: float | None
    error: dict[str, Any] | None
    version: int
    cancel_reason: str | None
    video_url: str | None
    target_language: str | None
    stage: str | None
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Build a Job from the server's JSON."""
        return cls(
            job_id=str(data["job_id"]),
            status=str(data["status"]),
            result=str(data.get("result", "")),
            done=bool(data.get("done", data["status"] in TERMINAL_STATUSES)),
            role=str(data.get("role", "free")),
            priority=int(data.get("priority", 0)),
            user_id=str(data.get("user_id", "")),
            progress=int(data.get("progress") or 0),
            queue_position=data.get("queue_position"),
            attempts=int(data.get("attempts") or 0),
            max_retries=int(data.get("max_retries") or 0),
            eta_seconds=None if data.get("eta_seconds") is None else float(data["eta_seconds"]),
            error=data.get("error"),
            version=int(data.get("version") or 0),
            cancel_reason=data.get("cancel_reason"),
            video_url=data.get("video_url"),
            target_language=data.get("target_language"),
            stage=data.get("stage"),
            created_at=_timestamp(data.get("created_at")),
            updated_at=_timestamp(data.get("updated_at")),
            started_at=_timestamp(data.get("started_at")),
            finished_at=_timestamp(data.get("finished_at")),
            raw=dict(data),
        )

    @property
    def completed(self) -> bool:
        """Tell whether the job was translated."""
        return self.status == "completed"

    def _progress_key(self) -> tuple[str, int, int | None]:
        return (self.status, self.progress, self.queue_position)


# --------------------------------------------------------------------------------------------- pacing


@dataclass(frozen=True)
class Pacing:
    """How the client paces itself when it cannot long-poll. All times in seconds."""

    #: Shortest sleep between two status requests.
    min_interval: float = 0.05
    #: Longest sleep between two status requests, whatever the hint says.
    max_interval: float = 30.0
    #: Added after a hinted moment, so the request lands just after the job moved.
    slack: float = 0.01
    #: Jitter added after the hinted moment: up to this fraction of the hint ...
    jitter_ratio: float = 0.05
    #: ... and never more than this many seconds.
    jitter_cap: float = 0.05
    #: Backoff without any hint: first delay, growth factor, largest delay, smallest delay.
    backoff_initial: float = 0.25
    backoff_factor: float = 2.0
    backoff_cap: float = 10.0
    backoff_floor: float = 0.1
    #: Longest wait asked of a long-polling server in one request.
    long_poll_max: float = 25.0


def backoff_delay(attempt: int, rng: random.Random, pacing: Pacing = Pacing()) -> float:
    """Return the delay before retry number `attempt` (0-based): exponential, capped, jittered, floored."""
    exponent = min(max(attempt, 0), 64)  # bounded exponent: no overflow however many attempts
    ceiling = min(pacing.backoff_cap, pacing.backoff_initial * pacing.backoff_factor**exponent)
    return max(pacing.backoff_floor, rng.uniform(ceiling / 2, ceiling))


def hint_delay(
    job: Job, retry_after: float | None, misses: int, rng: random.Random, pacing: Pacing = Pacing()
) -> float:
    """Return how long to sleep before asking about an unfinished `job` again.

    `eta_seconds` says when the job next moves (exact while translating), so sleep until just after
    it, with a little jitter after (never before) that moment. Without it, honour `Retry-After`.
    Without either, back off (`misses` counts the hintless answers so far).
    """
    if job.eta_seconds is not None:
        base = job.eta_seconds + pacing.slack
        delay = base + rng.uniform(0, min(pacing.jitter_cap, pacing.jitter_ratio * base))
    elif retry_after is not None:
        delay = retry_after + rng.uniform(0, min(pacing.jitter_cap, pacing.jitter_ratio * retry_after))
    else:
        return backoff_delay(misses, rng, pacing)
    return min(pacing.max_interval, max(pacing.min_interval, delay))


# --------------------------------------------------------------------------------------------- client


ProgressCallback = Callable[[Job], None]


@dataclass
class _Watch:
    """What the waiting loop knows about one job."""

    job_id: str
    job: Job | None = None
    next_check: float = 0.0
    misses: int = 0  # consecutive answers without a hint, or failed requests
    seen: tuple[str, int, int | None] | None = None


class TranslationClient:
    """A client of the translation simulator. One `requests.Session`; use it as a context manager.

    `timeout` is the socket timeout of one request in seconds (a long-poll adds its wait to it).
    `clock`, `sleep` and `rng` exist for tests: pass fakes to assert on the sleeps.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        user_id: str | None = None,
        admin_token: str | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        pacing: Pacing | None = None,
        long_poll: bool = True,
        submit_retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self.admin_token = admin_token
        self.timeout = timeout
        self.session = session or requests.Session()
        self._owns_session = session is None
        self.pacing = pacing or Pacing()
        self.long_poll = long_poll
        self.submit_retries = submit_retries
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        #: Whether the server honours long-polls: None until an answer tells.
        self.server_long_polls: bool | None = None if long_poll else False
        #: Status requests sent by the waiting methods (for benchmarks and curiosity).
        self.status_requests = 0

    def __enter__(self) -> TranslationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if this client made it."""
        if self._owns_session:
            self.session.close()

    # ---------------------------------------------------------------- transport

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        admin: bool = False,
        timeout: float | None = None,
    ) -> requests.Response:
        """Send one request; return the response, or raise TransportError or the APIError for its status."""
        all_headers = {"Accept": "application/json"}
        if self.user_id is not None:
            all_headers["X-User-Id"] = self.user_id
        if admin and self.admin_token:
            all_headers["Authorization"] = f"Bearer {self.admin_token}"
        all_headers.update(headers or {})
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=json_body,
                params=params,
                headers=all_headers,
                timeout=(min(self.timeout, 5.0), timeout or self.timeout),
            )
        except requests.RequestException as e:
            raise TransportError(f"{method} {path}: {e.__class__.__name__}: {e}") from e
        if response.status_code >= 400:
            try:
                problem = response.json()
                if not isinstance(problem, dict):
                    problem = {}
            except ValueError:
                problem = {}
            status = response.status_code
            cls = _ERROR_CLASSES.get(status, ServerError if status >= 500 else APIError)
            raise cls(response, problem)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return _decode(self._send(method, path, **kwargs))

    def _job(self, response: requests.Response) -> Job:
        try:
            return Job.from_dict(_decode(response))
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"{response.url}: the answer is not a job ({e!r})") from e

    # ---------------------------------------------------------------- submitting

    def submit(
        self,
        role: str = "free",
        *,
        user_id: str | None = None,
        video_url: str | None = None,
        target_language: str | None = None,
        idempotency_key: str | None = None,
        deduplicate: bool = True,
        wait_on_rate_limit: float = 0.0,
    ) -> Job:
        """Submit a job and return it.

        Every submission carries an Idempotency-Key, so retrying after a lost answer never makes a
        second job. With a `video_url` (and `deduplicate`), the key comes from the user, URL and
        language: submitting the same video again answers the job already made. A 429 raises
        RateLimitError at once, unless `wait_on_rate_limit` allows waiting that many seconds for it.
        """
        user = user_id if user_id is not None else self.user_id
        if idempotency_key is None:
            if video_url is not None and deduplicate:
                material = json.dumps([user, video_url, target_language, role])
                idempotency_key = "video-" + hashlib.sha256(material.encode()).hexdigest()[:40]
            else:
                idempotency_key = str(uuid.uuid4())
        body = {"role": role}
        if video_url is not None:
            body["video_url"] = video_url
        if target_language is not None:
            body["target_language"] = target_language
        headers = {"Idempotency-Key": idempotency_key}
        if user is not None:
            headers["X-User-Id"] = user
        deadline = self._clock() + wait_on_rate_limit
        failures = 0
        while True:
            try:
                response = self._send("POST", "/translate", json_body=body, headers=headers)
                job = self._job(response)
                log.debug("submitted %s (%s)%s", job.job_id, role, " [replayed]" if "Idempotent-Replayed"
                          in response.headers else "")
                return job
            except RateLimitError as e:
                delay = e.retry_after if e.retry_after is not None else backoff_delay(failures, self._rng, self.pacing)
                if self._clock() + delay > deadline:
                    raise
                log.info("rate limited; retrying the submission in %.1f s", delay)
            except (TransportError, ServerError) as e:
                failures += 1
                if failures > self.submit_retries:
                    raise
                hinted = e.retry_after if isinstance(e, ServerError) else None
                delay = hinted if hinted is not None else backoff_delay(failures - 1, self._rng, self.pacing)
                log.info("submission failed (%s); retrying in %.2f s with the same Idempotency-Key", e, delay)
            self._sleep(delay)

    def submit_translation_job(self, role: str = "free", user_id: str | None = None) -> str:
        """Submit a job for `role` and return its id (the seed's name for `submit`)."""
        return self.submit(role, user_id=user_id).job_id

    # ---------------------------------------------------------------- reading

    def get_status(self, job_id: str, *, wait: float | None = None, since: int | None = None) -> Job:
        """Return the job's current state in one request (with `wait`, a long-poll of up to that many s)."""
        return self._fetch(job_id, wait=wait, since=since)[0]

    def _fetch(self, job_id: str, *, wait: float | None, since: int | None) -> tuple[Job, requests.Response]:
        params: dict[str, Any] = {}
        if wait is not None and wait > 0:
            params["wait"] = f"{wait:.3f}"
            if since is not None:
                params["since"] = since
        self.status_requests += 1
        response = self._send("GET", f"/status/{job_id}", params=params, timeout=self.timeout + (wait or 0))
        if "wait" in params:
            self.server_long_polls = "Preference-Applied" in response.headers
        return self._job(response), response

    def list_jobs(self, user_id: str | None = None) -> dict[str, Any]:
        """Return every job grouped {status: {role: {job_id: job}}} (optionally one user's)."""
        params = {"user_id": user_id} if user_id is not None else None
        return self._json("GET", "/jobs", params=params)

    def jobs(self, user_id: str | None = None, *, page_size: int = 1000) -> list[Job]:
        """Return every stored job (optionally one user's) as Job values, oldest first, fetched page by page."""
        found: list[Job] = []
        params: dict[str, Any] = {"limit": page_size, "offset": 0}
        if user_id is not None:
            params["user_id"] = user_id
        while True:
            response = self._send("GET", "/jobs", params=params)
            grouped = _decode(response)
            found += [Job.from_dict(j) for roles in grouped.values() for by_id in roles.values()
                      for j in by_id.values()]
            if "next" not in response.links:
                break
            params["offset"] += page_size
        return sorted(found, key=lambda j: (j.created_at or datetime.min, j.job_id))

    def queue(self) -> dict[str, Any]:
        """Return the queue: queued jobs in start order, running jobs, workers and mode."""
        return self._json("GET", "/queue")

    def health(self) -> dict[str, Any]:
        """Return the server's liveness answer."""
        return self._json("GET", "/healthz")

    def get_config(self) -> dict[str, Any]:
        """Return the server's settings (secrets excluded)."""
        return self._json("GET", "/config")

    # ---------------------------------------------------------------- admin

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings (admin) and return the whole new configuration."""
        return self._json("POST", "/config", json_body=changes, admin=True)

    def cancel_job(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        """Cancel a job (admin); return the server's answer: {"message", "already_cancelled", "job"}."""
        body = {"reason": reason} if reason else {}
        return self._json("POST", f"/cancel/{job_id}", json_body=body, admin=True)

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel a job (admin) and return its final state."""
        return Job.from_dict(self.cancel_job(job_id, reason)["job"])

    def process_jobs(self, count: int = 1) -> list[Job]:
        """Start the next `count` queued jobs (admin) and return those started."""
        answer = self._json("POST", "/process_jobs", json_body={"count": count}, admin=True)
        return [Job.from_dict(j) for j in answer["started"]]

    def cleanup(self, statuses: Sequence[str] | None = None, older_than: float | None = None) -> int:
        """Remove finished jobs (admin; default: completed ones) and return how many were removed."""
        body: dict[str, Any] = {}
        if statuses is not None:
            body["statuses"] = list(statuses)
        if older_than is not None:
            body["older_than"] = older_than
        return int(self._json("POST", "/cleanup", json_body=body, admin=True)["removed"])

    # ---------------------------------------------------------------- waiting

    def wait_for_completion(
        self, job_id: str, *, timeout: float | None = None, on_progress: ProgressCallback | None = None
    ) -> Job:
        """Wait until the job is finished and return its final state, whatever it is.

        Raises WaitTimeoutError (a TimeoutError) after `timeout` seconds (None: no limit).
        `on_progress(job)` is called whenever its status, progress or queue position changes.
        """
        return self.wait_for_all([job_id], timeout=timeout, on_progress=on_progress)[job_id]

    def check_status(self, job_id: str, timeout: float | None = None) -> str:
        """Wait until the job is finished and return its final status string (the seed's name)."""
        return self.wait_for_completion(job_id, timeout=timeout).status

    def translate(
        self,
        role: str = "free",
        *,
        video_url: str | None = None,
        target_language: str | None = None,
        user_id: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        wait_on_rate_limit: float = 0.0,
    ) -> Job:
        """Submit a job and wait for it; return it completed, or raise JobFailedError / WaitTimeoutError."""
        job = self.submit(
            role,
            user_id=user_id,
            video_url=video_url,
            target_language=target_language,
            wait_on_rate_limit=wait_on_rate_limit,
        )
        final = self._wait([job], timeout=timeout, on_progress=on_progress)[job.job_id]
        if not final.completed:
            raise JobFailedError(final)
        return final

    def wait_for_all(
        self,
        job_ids: Iterable[str],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Job]:
        """Wait until every job is finished; return {job_id: final Job}.

        One thread serves them all: each job is checked when its hint says it will have moved, and
        while nothing is due the job due first is long-polled (when the server allows) instead of
        sleeping, so its end is seen at once.
        """
        return self._wait(list(dict.fromkeys(job_ids)), timeout=timeout, on_progress=on_progress)

    def _wait(
        self,
        jobs: Sequence[str | Job],
        *,
        timeout: float | None,
        on_progress: ProgressCallback | None,
    ) -> dict[str, Job]:
        start = self._clock()
        deadline = math.inf if timeout is None else start + timeout
        watches: dict[str, _Watch] = {}
        finished: dict[str, Job] = {}
        for item in jobs:
            watch = _Watch(item) if isinstance(item, str) else _Watch(item.job_id)
            watches[watch.job_id] = watch
            if isinstance(item, Job):
                self._observe(watch, item, None, on_progress, self._clock())
                if item.done:
                    finished[item.job_id] = item
                    del watches[item.job_id]
        heap = [(w.next_check, i, w.job_id) for i, w in enumerate(watches.values())]
        heapq.heapify(heap)
        counter = len(heap)
        while heap:
            check_at, _, job_id = heapq.heappop(heap)
            watch = watches[job_id]
            now = self._clock()
            if now >= deadline:
                raise WaitTimeoutError(self._timeout_message(watches, start), watch.job)
            # Until the next job is due, the one due first is long-polled instead of slept on. A
            # request made at a job's check time asks for a wait anyway: a free probe of the server.
            horizon = min(heap[0][0] if heap else math.inf, deadline)
            window = min(horizon - now, self.pacing.long_poll_max)
            at_check = check_at <= now
            long_poll = (
                self.long_poll
                and (self.server_long_polls is not False or at_check)
                and window >= self.pacing.min_interval
            )
            if not long_poll and not at_check:
                self._sleep(min(check_at, deadline) - now)
                heapq.heappush(heap, (check_at, counter, job_id))
                counter += 1
                continue
            wait = window if long_poll else None
            since = watch.job.version if (wait and watch.job is not None) else None
            try:
                sent_at = self._clock()
                job, response = self._fetch(job_id, wait=wait, since=since)
            except TranslationError as error:
                if not _is_transient(error):
                    raise
                hinted = getattr(error, "retry_after", None)
                delay = hinted if hinted is not None else backoff_delay(watch.misses, self._rng, self.pacing)
                watch.misses += 1
                log.info("status of %s failed (%s); retrying in %.2f s", job_id, error, delay)
                watch.next_check = self._clock() + delay
            else:
                # A hint counts from when the server spoke: at once for a plain answer (so from when it
                # was sent: a slow answer costs at most an early request, never lag), at the end of a
                # held long-poll.
                held = "Preference-Applied" in response.headers
                self._observe(watch, job, response, on_progress, self._clock() if held else sent_at)
                if job.done:
                    finished[job_id] = job
                    continue
            heapq.heappush(heap, (watch.next_check, counter, job_id))
            counter += 1
        return finished

    def _observe(
        self,
        watch: _Watch,
        job: Job,
        response: requests.Response | None,
        on_progress: ProgressCallback | None,
        observed_at: float,
    ) -> None:
        """Record a fresh state of a job, tell `on_progress` if it moved, and plan its next check."""
        watch.job = job
        key = job._progress_key()
        if key != watch.seen:
            watch.seen = key
            if on_progress is not None:
                on_progress(job)
        if job.done:
            return
        retry_after = None
        if response is not None:
            retry_after = _retry_after(response, {})
        hinted = job.eta_seconds is not None or retry_after is not None
        watch.misses = 0 if hinted else watch.misses + 1
        watch.next_check = observed_at + hint_delay(job, retry_after, max(0, watch.misses - 1), self._rng,
                                                      self.pacing)

    def _timeout_message(self, watches: Mapping[str, _Watch], start: float) -> str:
        waited = self._clock() - start
        states = ", ".join(f"{w.job_id}: {w.job.status if w.job else 'unknown'}" for w in watches.values())
        return f"Waited {waited:.1f} s; not finished: {states}"


# ------------------------------------------------------------------------------------------------ CLI

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_API_ERROR, EXIT_UNREACHABLE = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130  # as shells report Ctrl-C


def _progress_printer(stream: Any) -> ProgressCallback:
    interactive = stream.isatty()

    def show(job: Job) -> None:
        filled = job.progress // 5
        where = f"queue position {job.queue_position}" if job.queue_position else (job.stage or job.status)
        bar = "#" * filled + "." * (20 - filled)
        line = f"[{bar}] {job.progress:3d}% {job.status} ({where}, attempt {job.attempts})"
        if interactive:
            stream.write("\r" + line.ljust(78) + ("\n" if job.done else ""))
        else:
            stream.write(line + "\n")
        stream.flush()

    return show


def _parse_config_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # a bare word, such as manual
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            # NaN and Infinity parse but cannot be sent: refuse them here, not as a transport error.
            raise ValueError(f"{name}: {text!r} is not a finite number") from None
        changes[name] = value
    return changes


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="client.py",
        description="Command line of the video translation simulator's client.",
        epilog="Exit codes: 0 done (job completed), 1 job failed or was cancelled, 2 usage error, "
        "3 timed out, 4 refused by the server (4xx), 5 server unreachable or failing (5xx), 130 interrupted.",
    )
    parser.add_argument("--url", default=os.environ.get("TRANSLATION_URL", DEFAULT_URL),
                        help="server URL (env TRANSLATION_URL; default %(default)s)")
    parser.add_argument("--token", default=os.environ.get("ADMIN_TOKEN"),
                        help="admin token for cancel/process/cleanup/config changes (env ADMIN_TOKEN)")
    parser.add_argument("--user", default=os.environ.get("TRANSLATION_USER_ID"),
                        help="X-User-Id to act as (env TRANSLATION_USER_ID)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--request-timeout", type=float, default=10.0, help="socket timeout of one request, s")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("submit", help="submit a job (and optionally wait for it)")
    p.add_argument("--role", choices=("free", "premium"), default="free")
    p.add_argument("--video-url")
    p.add_argument("--lang", dest="target_language", help="target language, e.g. de")
    p.add_argument("--idempotency-key")
    p.add_argument("--wait", action="store_true", help="wait until the job is finished")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")

    p = sub.add_parser("status", help="show a job (the newest one without an id)")
    p.add_argument("job_id", nargs="?")

    p = sub.add_parser("wait", help="wait until jobs are finished, with a progress bar")
    p.add_argument("job_ids", nargs="+", metavar="job_id")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")

    p = sub.add_parser("cancel", help="cancel a job (admin)")
    p.add_argument("job_id")
    p.add_argument("--reason")

    p = sub.add_parser("jobs", help="list jobs grouped by status and role")
    p.add_argument("--user-id", help="only this user's jobs")

    sub.add_parser("queue", help="show the queue in start order")

    p = sub.add_parser("process", help="start the next queued jobs (admin)")
    p.add_argument("--count", type=int, default=1)

    p = sub.add_parser("cleanup", help="remove finished jobs (admin)")
    p.add_argument("--status", action="append", dest="statuses",
                   choices=("completed", "permanently_failed", "cancelled"), help="repeatable; default completed")
    p.add_argument("--older-than", type=float, help="only jobs finished at least this many seconds ago")

    p = sub.add_parser("config", help="show the settings, or change them (admin): config KEY=VALUE ...")
    p.add_argument("changes", nargs="*", metavar="KEY=VALUE")
    return parser


def _describe(job: Job) -> str:
    parts = [f"{job.job_id}  {job.status}  {job.role}  progress {job.progress}%"]
    if job.queue_position:
        parts.append(f"queue position {job.queue_position}")
    if job.eta_seconds is not None:
        parts.append(f"eta {job.eta_seconds:.1f}s")
    if job.error:
        parts.append(f"error {job.error.get('code')}")
    if job.cancel_reason:
        parts.append(f"reason: {job.cancel_reason}")
    return "  ".join(parts)


def _job_exit(jobs: Iterable[Job]) -> int:
    return EXIT_OK if all(j.completed for j in jobs) else EXIT_JOB_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    out = sys.stdout
    err = sys.stderr
    bar = _progress_printer(err)
    line_open = False  # a terminal's progress line not yet ended by a newline

    def emit(data: Any, text: str) -> None:
        out.write((json.dumps(data, indent=2, default=str) if args.json else text) + "\n")

    def show_progress(job: Job) -> None:
        nonlocal line_open
        bar(job)
        line_open = err.isatty() and not job.done

    def fail(message: str, code: int) -> int:
        # End an open progress line first, or the message is glued to the end of the bar.
        err.write(("\n" if line_open else "") + message + "\n")
        return code

    try:
        with TranslationClient(args.url, user_id=args.user, admin_token=args.token,
                               timeout=args.request_timeout) as tc:
            progress = None if args.json else show_progress
            if args.command == "submit":
                job = tc.submit(args.role, video_url=args.video_url, target_language=args.target_language,
                                idempotency_key=args.idempotency_key)
                if args.wait:
                    job = tc._wait([job], timeout=args.timeout, on_progress=progress)[job.job_id]
                    emit(job.raw, _describe(job))
                    return _job_exit([job])
                emit(job.raw, job.job_id)
            elif args.command == "status":
                if args.job_id:
                    job = tc.get_status(args.job_id)
                else:
                    job = Job.from_dict(tc._json("GET", "/status"))
                emit(job.raw, _describe(job))
            elif args.command == "wait":
                finals = tc.wait_for_all(args.job_ids, timeout=args.timeout, on_progress=progress)
                emit({k: v.raw for k, v in finals.items()}, "\n".join(_describe(j) for j in finals.values()))
                return _job_exit(finals.values())
            elif args.command == "cancel":
                answer = tc.cancel_job(args.job_id, args.reason)
                emit(answer, answer["message"])
            elif args.command == "jobs":
                grouped = tc.list_jobs(args.user_id)
                lines = [
                    f"{status:<19} {role:<8} {len(by_id)}"
                    for status, roles in grouped.items()
                    for role, by_id in roles.items()
                    if by_id
                ]
                emit(grouped, "\n".join(lines) or "no jobs")
            elif args.command == "queue":
                q = tc.queue()
                lines = [f"mode {q['mode']}, workers {q['workers']}, running {len(q['running'])}, "
                         f"queued {len(q['queued'])}"]
                lines += [f"  {j['queue_position']:>4}. {j['job_id']}  {j['role']}" for j in q["queued"]]
                emit(q, "\n".join(lines))
            elif args.command == "process":
                started = tc.process_jobs(args.count)
                emit([j.raw for j in started], "\n".join(f"started {j.job_id} ({j.role})" for j in started)
                     or "nothing to start")
            elif args.command == "cleanup":
                removed = tc.cleanup(args.statuses, args.older_than)
                emit({"removed": removed}, f"removed {removed} job(s)")
            elif args.command == "config":
                settings = tc.update_config(**_parse_config_pairs(args.changes)) if args.changes else tc.get_config()
                emit(settings, "\n".join(f"{k} = {v}" for k, v in settings.items()))
    except WaitTimeoutError as e:
        return fail(f"timeout: {e}", EXIT_TIMEOUT)
    except ValueError as e:
        return fail(f"error: {e}", EXIT_USAGE)
    except (TransportError, ServerError) as e:
        return fail(f"error: {e}", EXIT_UNREACHABLE)
    except APIError as e:
        return fail(f"error: {e}", EXIT_API_ERROR)
    except (KeyError, TypeError) as e:  # JSON, but not this API's: another service on that port?
        return fail(f"error: unexpected answer from {args.url} ({e!r})", EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
