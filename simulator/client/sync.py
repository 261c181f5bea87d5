"""TranslationClient: the blocking client, on one `requests.Session`.

    from client import TranslationClient
    with TranslationClient("http://127.0.0.1:4777", user_id="alice") as tc:
        job = tc.translate(role="premium", video_url="https://example.com/v.mp4", target_language="de", timeout=60)

What to send and what answers mean is in protocol.py; how long to wait and when to give up is in
pacing.py and waiting.py, shared with the async client. This module only carries requests out: each
within a total time budget (connect and every read together), cut off by cutoff.py when it is spent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import requests
import urllib3

from simulator.client import protocol, transfer
from simulator.client.cutoff import DeadlineAdapter, budget
from simulator.client.errors import TranslationError, TransportError
from simulator.client.job import Job
from simulator.client.pacing import Pacing, deadline_after
from simulator.client.protocol import Answer, Call, result_path
from simulator.client.transfer import TransferProgress, Upload
from simulator.client.waiting import Finished, ProgressCallback, Send, Sleep, SubmitPlan, WaitPlan

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:4777"
#: Longest time to connect, whatever the budget (a refused or black-holed port is known well before).
CONNECT_TIMEOUT = 5.0


def _reason(error: BaseException) -> str:
    """Return the root cause of a requests error in a few words ("Connection refused"), not urllib3's chain."""
    seen: set[int] = set()
    cause: BaseException | None = error
    root = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        root = cause
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else (cause.__cause__ or cause.__context__)
        if cause is None and root.args and isinstance(root.args[0], BaseException):
            cause = root.args[0]
    if isinstance(root, OSError) and root.strerror:
        return root.strerror
    return str(root) or root.__class__.__name__


class TranslationClient:
    """A client of the translation simulator. One `requests.Session`; use it as a context manager.

    `timeout` is the total budget of one request in seconds — connecting and reading the whole answer —
    (a long-poll adds its wait to it); the `timeout=` of a waiting method bounds the whole call.
    `clock`, `sleep` and `rng` exist for tests: pass fakes to assert on the sleeps.

    A session you pass is used as it is: its requests are bounded by per-read timeouts and deadline
    checks only; a session the client makes itself is also cut off when a request's budget is spent.
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
        self.base_url = protocol.base_url(base_url)
        self.user_id = user_id
        self.admin_token = admin_token
        self.timeout = timeout
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            session.mount("http://", DeadlineAdapter())
            session.mount("https://", DeadlineAdapter())
        self.session = session
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

    def _exchange(self, call: Call[Any], seconds: float) -> Answer:
        """Send one call and read its whole answer within `seconds`; raise TransportError if that fails."""
        url = self.base_url + call.path
        with budget(seconds) as cutoff:
            try:
                response = self.session.request(
                    call.method,
                    url,
                    json=call.json_body,
                    params=call.params,
                    headers=protocol.request_headers(call, self.user_id, self.admin_token),
                    timeout=(max(0.001, min(seconds, CONNECT_TIMEOUT)), max(0.001, seconds)),
                    allow_redirects=False,
                    stream=True,
                )
                try:
                    body = response.content
                finally:
                    response.close()
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                if cutoff.fired:
                    raise TransportError(f"{call.method} {url}: no complete answer within {seconds:.2f} s") from e
                raise TransportError(f"{call.method} {url}: {e.__class__.__name__}: {_reason(e)}") from e
            # A body that ends early because it was cut off may still look whole (no Content-Length).
            if cutoff.disarm():
                raise TransportError(f"{call.method} {url}: no complete answer within {seconds:.2f} s")
        return Answer(call.method, response.url or url, response.status_code, response.reason or "",
                      response.headers, body or b"", response)

    def _call(self, call: Call[T]) -> T:
        """Send one call within the client's request timeout and return its decoded answer."""
        return call.decode(self._exchange(call, self.timeout + call.hold))

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
        timeout: float | None = None,
        simulate: Mapping[str, Any] | None = None,
        upload_id: str | None = None,
    ) -> Job:
        """Submit a job and return it.

        Every submission carries an Idempotency-Key, so retrying after a lost answer never makes a
        second job. With a `video_url` or an `upload_id` (and `deduplicate`), the key comes from the user,
        video and language: submitting the same video again answers the job already made. A 429 raises
        RateLimitError at once, unless `wait_on_rate_limit` allows waiting that many seconds for it.
        `timeout` bounds the whole call, retries included (None: `submit_retries` tries of `self.timeout`).
        `simulate` scripts the job's outcomes (a `simulate` object: outcomes, attempt_seconds, fail_code,
        fail_message, status_faults; see the README's "Testing your client against exact scenarios").
        """
        now = self._clock()
        return self._submit(role, user_id=user_id, video_url=video_url, target_language=target_language,
                            idempotency_key=idempotency_key, deduplicate=deduplicate,
                            wait_on_rate_limit=wait_on_rate_limit, deadline=deadline_after(timeout, now),
                            simulate=simulate, upload_id=upload_id)

    def _submit(self, role: str, *, user_id: str | None, video_url: str | None, target_language: str | None,
                idempotency_key: str | None, deduplicate: bool, wait_on_rate_limit: float, deadline: float,
                simulate: Mapping[str, Any] | None = None, upload_id: str | None = None) -> Job:
        call = protocol.submit_call(role, user=user_id if user_id is not None else self.user_id,
                                    video_url=video_url, target_language=target_language,
                                    idempotency_key=idempotency_key, deduplicate=deduplicate, simulate=simulate,
                                    upload_id=upload_id)
        now = self._clock()
        plan = SubmitPlan(call, deadline=deadline, now=now, rate_limit_until=now + wait_on_rate_limit,
                          retries=self.submit_retries, pacing=self.pacing, rng=self._rng,
                          request_timeout=self.timeout)
        while True:
            step = plan.next(self._clock())
            if isinstance(step, Sleep):
                self._sleep(step.seconds)
                continue
            try:
                answer = self._exchange(step.call, step.budget)
                job = step.call.decode(answer)
            except TranslationError as error:
                plan.failed(error, self._clock())
                continue
            log.debug("submitted %s (%s)%s", job.job_id, role,
                      " [replayed]" if "Idempotent-Replayed" in answer.headers else "")
            return job

    def submit_translation_job(self, role: str = "free", user_id: str | None = None) -> str:
        """Submit a job for `role` and return its id (the seed's name for `submit`)."""
        return self.submit(role, user_id=user_id).job_id

    # ---------------------------------------------------------------- reading

    def get_status(self, job_id: str, *, wait: float | None = None, since: int | None = None) -> Job:
        """Return the job's current state in one request (with `wait`, a long-poll of up to that many s)."""
        call = protocol.status_call(job_id, wait=wait, since=since)
        answer = self._exchange(call, self.timeout + call.hold)
        job = call.decode(answer)
        if call.hold:
            self.server_long_polls = protocol.long_poll_honoured(answer)
        return job

    def newest(self) -> Job:
        """Return the newest job of this client's user (of anyone without a user id)."""
        return self._call(protocol.newest_call())

    def list_jobs(self, user_id: str | None = None) -> dict[str, Any]:
        """Return every job grouped {status: {role: {job_id: job}}} (optionally one user's)."""
        return self._call(protocol.list_jobs_call(user_id))

    def jobs(self, user_id: str | None = None, *, page_size: int = 1000) -> list[Job]:
        """Return every stored job (optionally one user's) as Job values, oldest first, fetched page by page."""
        found: list[Job] = []
        offset = 0
        while True:
            page, more = self._call(protocol.jobs_page_call(user_id, offset, page_size))
            found += page
            if not more:
                return protocol.oldest_first(found)
            offset += page_size

    def queue(self) -> dict[str, Any]:
        """Return the queue: queued jobs in start order, running jobs, workers and mode."""
        return self._call(protocol.queue_call())

    def health(self) -> dict[str, Any]:
        """Return the server's liveness answer."""
        return self._call(protocol.health_call())

    def get_config(self) -> dict[str, Any]:
        """Return the server's settings (secrets excluded)."""
        return self._call(protocol.get_config_call())

    # ---------------------------------------------------------------- admin

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings (admin) and return the whole new configuration."""
        return self._call(protocol.update_config_call(changes))

    def cancel_job(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        """Cancel a job (admin); return the server's answer: {"message", "already_cancelled", "job"}."""
        return self._call(protocol.cancel_call(job_id, reason))

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel a job (admin) and return its final state."""
        return protocol.cancelled_job(self.cancel_job(job_id, reason))

    def process_jobs(self, count: int = 1) -> list[Job]:
        """Start the next `count` queued jobs (admin) and return those started."""
        return self._call(protocol.process_call(count))

    def cleanup(self, statuses: Sequence[str] | None = None, older_than: float | None = None) -> int:
        """Remove finished jobs (admin; default: completed ones) and return how many were removed."""
        return self._call(protocol.cleanup_call(statuses, older_than))

    # ---------------------------------------------------------------- testing controls (admin)

    def get_clock(self) -> dict[str, Any]:
        """Return the server's clock (admin): `clock` (system or manual), `now`, and when the next event is due."""
        return self._call(protocol.clock_call())

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the server's manual clock `seconds` forward (admin; CLOCK=manual), running every event due meanwhile.

        Return the clock after the step, with `advanced_seconds` and `changes` (job changes it made).
        """
        return self._call(protocol.advance_clock_call(seconds))

    def reset(self, *, keep_config: bool = False) -> dict[str, Any]:
        """Leave the server as freshly started (admin); return {"removed": jobs removed, "config_restored": …}.

        Every job, idempotency key, rate-limit window and journal entry goes; the start-up settings come
        back unless `keep_config`.
        """
        return self._call(protocol.reset_call(keep_config))

    def request_journal(
        self,
        *,
        path: str | None = None,
        method: str | None = None,
        status: int | None = None,
        user_id: str | None = None,
        since: datetime | float | str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the requests the server recorded (admin), oldest first, filtered; `limit`: only the last ones.

        `path` is a path or route (`/status/{job_id}`), ending in `*` for a prefix; `since` a datetime,
        epoch seconds or ISO 8601 text, in the server's (simulated) time.
        """
        params = protocol.journal_params(path, method, status, user_id, since)
        return self._call(protocol.request_journal_call(params, limit))

    def count_requests(
        self,
        *,
        path: str | None = None,
        method: str | None = None,
        status: int | None = None,
        user_id: str | None = None,
        since: datetime | float | str | None = None,
    ) -> int:
        """Return how many recorded requests the filters select (admin): what a test verifies its client sent."""
        return self._call(protocol.count_requests_call(protocol.journal_params(path, method, status, user_id, since)))

    # ---------------------------------------------------------------- waiting

    def wait_for_completion(
        self, job_id: str | Job, *, timeout: float | None = None, on_progress: ProgressCallback | None = None
    ) -> Job:
        """Wait until the job is finished and return its final state, whatever it is.

        Pass its id, or the Job just answered (by `submit`): it is taken as the first state, saving a request.
        Raises WaitTimeoutError (a TimeoutError) after `timeout` seconds (None: no limit).
        `on_progress(job)` is called whenever its status, progress or queue position changes.
        """
        key = job_id if isinstance(job_id, str) else job_id.job_id
        return self.wait_for_all([job_id], timeout=timeout, on_progress=on_progress)[key]

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
        simulate: Mapping[str, Any] | None = None,
    ) -> Job:
        """Submit a job and wait for it; return it completed, or raise JobFailedError / WaitTimeoutError.

        `timeout` bounds the whole call: the submission, its retries and the wait. `simulate` scripts it.
        """
        deadline = deadline_after(timeout, self._clock())
        job = self._submit(role, user_id=user_id, video_url=video_url, target_language=target_language,
                           idempotency_key=None, deduplicate=True, wait_on_rate_limit=wait_on_rate_limit,
                           deadline=deadline, simulate=simulate)
        return protocol.completed(self._wait([job], deadline=deadline, on_progress=on_progress)[job.job_id])

    # ---------------------------------------------------------------- videos

    def upload(self, path: str | os.PathLike[str], *, on_progress: TransferProgress | None = None,
               timeout: float | None = None) -> Upload:
        """Upload a video file and return what the server found in it (POST /uploads).

        The file is streamed a block at a time, never read whole; `on_progress(sent_bytes, total_bytes)` is
        called as it goes. `timeout` bounds the whole upload (None: only `self.timeout` between two reads).
        An upload is not retried (the server keeps nothing of a failed one): call again to send it again.
        """
        path = Path(path)
        size = path.stat().st_size
        url = self.base_url + "/uploads"
        headers = transfer.upload_headers(path)
        if self.user_id is not None:
            headers["X-User-Id"] = self.user_id
        watch = budget(timeout) if timeout is not None else contextlib.nullcontext(None)
        with open(path, "rb") as file, watch as cutoff:
            body = transfer.ProgressReader(file, size, on_progress)
            try:
                response = self.session.post(url, data=body, headers=headers, allow_redirects=False,
                                             timeout=(min(self.timeout, CONNECT_TIMEOUT), self.timeout))
                content = response.content
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                cut = cutoff is not None and cutoff.fired
                why = f"not finished within {timeout} s" if cut else f"{e.__class__.__name__}: {_reason(e)}"
                raise TransportError(f"POST {url}: {why} (sent {body.sent} of {size} bytes)") from e
        answer = Answer("POST", url, response.status_code, response.reason or "", response.headers, content, response)
        return transfer.uploaded(answer)

    def translate_file(
        self,
        path: str | os.PathLike[str],
        role: str = "free",
        *,
        target_language: str | None = None,
        user_id: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_upload_progress: TransferProgress | None = None,
        wait_on_rate_limit: float = 0.0,
    ) -> Job:
        """Upload a video, submit a job for it and wait; return the completed job (its `result_url` is set).

        Raises JobFailedError / WaitTimeoutError like `translate`; `timeout` bounds the whole call, upload included.
        """
        deadline = deadline_after(timeout, self._clock())
        upload = self.upload(path, on_progress=on_upload_progress,
                             timeout=None if timeout is None else max(0.0, deadline - self._clock()))
        job = self._submit(role, user_id=user_id, video_url=None, target_language=target_language,
                           idempotency_key=None, deduplicate=True, wait_on_rate_limit=wait_on_rate_limit,
                           deadline=deadline, upload_id=upload.upload_id)
        return protocol.completed(self._wait([job], deadline=deadline, on_progress=on_progress)[job.job_id])

    def download_result(
        self,
        job: Job | str,
        path: str | os.PathLike[str],
        *,
        on_progress: TransferProgress | None = None,
        retries: int = 5,
        timeout: float | None = None,
    ) -> Path:
        """Download a completed job's video to `path` and return it; a dropped connection resumes where it stopped.

        `path` may be a folder: the file then takes the name the server gives it (`talk.de.mp4`). The bytes go to
        `<path>.part` first, renamed once whole (deleted if the download fails). `on_progress(received_bytes,
        total_bytes)` is called as they arrive. Up to `retries` failed tries in a row (no answer, a dropped
        connection, 5xx) are retried, each asking only for the rest; `timeout` bounds the whole call.
        """
        job_id = job.job_id if isinstance(job, Job) else job
        url = self.base_url + ((job.result_url if isinstance(job, Job) else None) or result_path(job_id))
        dest = Path(path)
        partial = transfer.partial_path(dest, job_id)
        download = transfer.Download(deadline=deadline_after(timeout, self._clock()), retries=retries,
                                     pacing=self.pacing, rng=self._rng, on_progress=on_progress)
        try:
            with open(partial, "wb") as out:
                while not download.done:
                    left = download.deadline - self._clock()
                    watch = budget(left) if math.isfinite(left) else contextlib.nullcontext(None)
                    try:
                        with watch:
                            self._download_once(url, download, out)
                    except TranslationError as error:
                        self._sleep(download.failed(error, self._clock()))
        except BaseException:
            partial.unlink(missing_ok=True)  # nothing half-written is left behind
            raise
        final = transfer.final_path(dest, download, job_id)
        partial.replace(final)
        return final

    def _download_once(self, url: str, download: transfer.Download, out: BinaryIO) -> None:
        """Make one try of a download, writing what arrives; raise TransportError if the body stops early."""
        headers = download.headers()
        if self.user_id is not None:
            headers["X-User-Id"] = self.user_id
        try:
            with self.session.get(url, headers=headers, stream=True, allow_redirects=False,
                                  timeout=(min(self.timeout, CONNECT_TIMEOUT), self.timeout)) as response:
                body = b"" if response.status_code in (200, 206) else response.content
                answer = Answer("GET", url, response.status_code, response.reason or "", response.headers, body,
                                response)
                if download.begin(answer):
                    out.seek(0)
                    out.truncate()
                if download.done:
                    return
                # read1: whatever has arrived, so a dropped connection loses nothing already received.
                while piece := response.raw.read1(transfer.BLOCK_BYTES):
                    out.write(piece)
                    download.received_bytes(len(piece))
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            raise TransportError(f"GET {url}: {e.__class__.__name__}: {_reason(e)} "
                                 f"(received {download.received} bytes)") from e
        if not download.finished():
            raise transfer.ended_early(download.received, download.total)

    def wait_for_all(
        self,
        job_ids: Iterable[str | Job],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Job]:
        """Wait until every job is finished; return {job_id: final Job}.

        Pass ids, or Job values just fetched (a Job is taken as its first state, saving a request).
        One thread serves them all: each job is checked when its hint says it will have moved, and
        while nothing is due the job due first is long-polled (when the server allows) instead of
        sleeping, so its end is seen at once.
        """
        deadline = deadline_after(timeout, self._clock())
        return self._wait(list(job_ids), deadline=deadline, on_progress=on_progress)

    def _wait(self, jobs: Sequence[str | Job], *, deadline: float,
              on_progress: ProgressCallback | None) -> dict[str, Job]:
        plan = WaitPlan(jobs, deadline=deadline, now=self._clock(), pacing=self.pacing, rng=self._rng,
                        request_timeout=self.timeout, long_poll=self.long_poll,
                        server_long_polls=self.server_long_polls, on_progress=on_progress)
        while True:
            step = plan.next(self._clock())
            if isinstance(step, Finished):
                return step.jobs
            if isinstance(step, Sleep):
                self._sleep(step.seconds)
                continue
            self._status_step(plan, step)

    def _status_step(self, plan: WaitPlan, step: Send[Job]) -> None:
        self.status_requests += 1
        sent_at = self._clock()
        try:
            answer = self._exchange(step.call, step.budget)
            job = step.call.decode(answer)
        except TranslationError as error:
            plan.failed(step, error, self._clock())
        else:
            plan.answered(step, job, answer, sent_at, self._clock())
            self.server_long_polls = plan.server_long_polls
