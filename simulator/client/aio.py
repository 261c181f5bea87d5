"""AsyncTranslationClient: the asyncio client, on one `httpx.AsyncClient`, with the sync client's methods.

    from simulator.client import AsyncTranslationClient
    async with AsyncTranslationClient("http://127.0.0.1:4777", user_id="alice") as tc:
        job = await tc.translate(role="premium", timeout=60)

Same calls, errors, pacing and deadlines as TranslationClient: both build their requests and judge the
answers with protocol.py and follow the plans of waiting.py. Each request runs inside `asyncio.timeout`
of its total budget, so a trickling or silent server is cut off at the budget's end.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx

from simulator.client import protocol, transfer
from simulator.client.errors import TranslationError, TransportError
from simulator.client.job import Job
from simulator.client.pacing import Pacing, deadline_after
from simulator.client.protocol import Answer, Call, result_path
from simulator.client.sync import CONNECT_TIMEOUT, DEFAULT_URL
from simulator.client.transfer import TransferProgress, Upload
from simulator.client.waiting import Finished, ProgressCallback, Send, Sleep, SubmitPlan, WaitPlan

log = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncTranslationClient:
    """An asyncio client of the translation simulator. One `httpx.AsyncClient`; use `async with`.

    `timeout` is the total budget of one request in seconds (a long-poll adds its wait to it); the
    `timeout=` of a waiting method bounds the whole call. `clock`, `sleep` (a coroutine function) and
    `rng` exist for tests. An `http` client you pass is used as it is and not closed.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        user_id: str | None = None,
        admin_token: str | None = None,
        timeout: float = 10.0,
        http: httpx.AsyncClient | None = None,
        pacing: Pacing | None = None,
        long_poll: bool = True,
        submit_retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = protocol.base_url(base_url)
        self.user_id = user_id
        self.admin_token = admin_token
        self.timeout = timeout
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient()
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

    async def __aenter__(self) -> AsyncTranslationClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it."""
        if self._owns_http:
            await self.http.aclose()

    # ---------------------------------------------------------------- transport

    async def _exchange(self, call: Call[Any], seconds: float) -> Answer:
        """Send one call and read its whole answer within `seconds`; raise TransportError if that fails."""
        url = self.base_url + call.path
        limits = httpx.Timeout(max(0.001, seconds), connect=max(0.001, min(seconds, CONNECT_TIMEOUT)))
        try:
            async with asyncio.timeout(seconds):
                response = await self.http.request(
                    call.method,
                    url,
                    json=call.json_body,
                    params=call.params,
                    headers=protocol.request_headers(call, self.user_id, self.admin_token),
                    timeout=limits,
                )
        except TimeoutError as e:
            raise TransportError(f"{call.method} {url}: no complete answer within {seconds:.2f} s") from e
        except httpx.HTTPError as e:
            raise TransportError(f"{call.method} {url}: {e.__class__.__name__}: {e}") from e
        return Answer(call.method, str(response.url), response.status_code, response.reason_phrase,
                      response.headers, response.content, response)

    async def _call(self, call: Call[T]) -> T:
        return call.decode(await self._exchange(call, self.timeout + call.hold))

    # ---------------------------------------------------------------- submitting

    async def submit(
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
        """Submit a job and return it (see TranslationClient.submit: the same keys, retries, limits and scripts)."""
        return await self._submit(role, user_id=user_id, video_url=video_url, target_language=target_language,
                                  idempotency_key=idempotency_key, deduplicate=deduplicate,
                                  wait_on_rate_limit=wait_on_rate_limit,
                                  deadline=deadline_after(timeout, self._clock()), simulate=simulate,
                                  upload_id=upload_id)

    async def _submit(self, role: str, *, user_id: str | None, video_url: str | None,
                      target_language: str | None, idempotency_key: str | None, deduplicate: bool,
                      wait_on_rate_limit: float, deadline: float, simulate: Mapping[str, Any] | None = None,
                      upload_id: str | None = None) -> Job:
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
                await self._sleep(step.seconds)
                continue
            try:
                return step.call.decode(await self._exchange(step.call, step.budget))
            except TranslationError as error:
                plan.failed(error, self._clock())

    async def submit_translation_job(self, role: str = "free", user_id: str | None = None) -> str:
        """Submit a job for `role` and return its id (the seed's name for `submit`)."""
        return (await self.submit(role, user_id=user_id)).job_id

    # ---------------------------------------------------------------- reading

    async def get_status(self, job_id: str, *, wait: float | None = None, since: int | None = None) -> Job:
        """Return the job's current state in one request (with `wait`, a long-poll of up to that many s)."""
        call = protocol.status_call(job_id, wait=wait, since=since)
        answer = await self._exchange(call, self.timeout + call.hold)
        job = call.decode(answer)
        if call.hold:
            self.server_long_polls = protocol.long_poll_honoured(answer)
        return job

    async def newest(self) -> Job:
        """Return the newest job of this client's user (of anyone without a user id)."""
        return await self._call(protocol.newest_call())

    async def list_jobs(self, user_id: str | None = None) -> dict[str, Any]:
        """Return every job grouped {status: {role: {job_id: job}}} (optionally one user's)."""
        return await self._call(protocol.list_jobs_call(user_id))

    async def jobs(self, user_id: str | None = None, *, page_size: int = 1000) -> list[Job]:
        """Return every stored job (optionally one user's) as Job values, oldest first, fetched page by page."""
        found: list[Job] = []
        offset = 0
        while True:
            page, more = await self._call(protocol.jobs_page_call(user_id, offset, page_size))
            found += page
            if not more:
                return protocol.oldest_first(found)
            offset += page_size

    async def queue(self) -> dict[str, Any]:
        """Return the queue: queued jobs in start order, running jobs, workers and mode."""
        return await self._call(protocol.queue_call())

    async def health(self) -> dict[str, Any]:
        """Return the server's liveness answer."""
        return await self._call(protocol.health_call())

    async def get_config(self) -> dict[str, Any]:
        """Return the server's settings (secrets excluded)."""
        return await self._call(protocol.get_config_call())

    # ---------------------------------------------------------------- admin

    async def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings (admin) and return the whole new configuration."""
        return await self._call(protocol.update_config_call(changes))

    async def cancel_job(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        """Cancel a job (admin); return the server's answer: {"message", "already_cancelled", "job"}."""
        return await self._call(protocol.cancel_call(job_id, reason))

    async def cancel(self, job_id: str, reason: str | None = None) -> Job:
        """Cancel a job (admin) and return its final state."""
        return protocol.cancelled_job(await self.cancel_job(job_id, reason))

    async def process_jobs(self, count: int = 1) -> list[Job]:
        """Start the next `count` queued jobs (admin) and return those started."""
        return await self._call(protocol.process_call(count))

    async def cleanup(self, statuses: Sequence[str] | None = None, older_than: float | None = None) -> int:
        """Remove finished jobs (admin; default: completed ones) and return how many were removed."""
        return await self._call(protocol.cleanup_call(statuses, older_than))

    # ---------------------------------------------------------------- testing controls (admin)

    async def get_clock(self) -> dict[str, Any]:
        """Return the server's clock (admin): `clock` (system or manual), `now`, and when the next event is due."""
        return await self._call(protocol.clock_call())

    async def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the server's manual clock `seconds` forward (admin; CLOCK=manual), running every event due meanwhile."""
        return await self._call(protocol.advance_clock_call(seconds))

    async def reset(self, *, keep_config: bool = False) -> dict[str, Any]:
        """Leave the server as freshly started (admin); return {"removed": jobs removed, "config_restored": …}."""
        return await self._call(protocol.reset_call(keep_config))

    async def request_journal(
        self,
        *,
        path: str | None = None,
        method: str | None = None,
        status: int | None = None,
        user_id: str | None = None,
        since: datetime | float | str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the requests the server recorded (admin), oldest first, filtered; `limit`: only the last ones."""
        params = protocol.journal_params(path, method, status, user_id, since)
        return await self._call(protocol.request_journal_call(params, limit))

    async def count_requests(
        self,
        *,
        path: str | None = None,
        method: str | None = None,
        status: int | None = None,
        user_id: str | None = None,
        since: datetime | float | str | None = None,
    ) -> int:
        """Return how many recorded requests the filters select (admin): what a test verifies its client sent."""
        params = protocol.journal_params(path, method, status, user_id, since)
        return await self._call(protocol.count_requests_call(params))

    # ---------------------------------------------------------------- waiting

    async def wait_for_completion(
        self, job_id: str | Job, *, timeout: float | None = None, on_progress: ProgressCallback | None = None
    ) -> Job:
        """Wait until the job (an id, or the Job just answered) is finished and return its final state.

        WaitTimeoutError after `timeout` s.
        """
        key = job_id if isinstance(job_id, str) else job_id.job_id
        return (await self.wait_for_all([job_id], timeout=timeout, on_progress=on_progress))[key]

    async def check_status(self, job_id: str, timeout: float | None = None) -> str:
        """Wait until the job is finished and return its final status string (the seed's name)."""
        return (await self.wait_for_completion(job_id, timeout=timeout)).status

    async def translate(
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
        """Submit a job and wait for it, all within `timeout`; return it completed or raise JobFailedError."""
        deadline = deadline_after(timeout, self._clock())
        job = await self._submit(role, user_id=user_id, video_url=video_url, target_language=target_language,
                                 idempotency_key=None, deduplicate=True, wait_on_rate_limit=wait_on_rate_limit,
                                 deadline=deadline, simulate=simulate)
        finals = await self._wait([job], deadline=deadline, on_progress=on_progress)
        return protocol.completed(finals[job.job_id])

    # ---------------------------------------------------------------- videos

    async def upload(self, path: str | os.PathLike[str], *, on_progress: TransferProgress | None = None,
                     timeout: float | None = None) -> Upload:
        """Upload a video file, streamed a block at a time (see TranslationClient.upload)."""
        path = Path(path)
        size = path.stat().st_size
        url = self.base_url + "/uploads"
        headers = {**transfer.upload_headers(path), "Content-Length": str(size)}
        if self.user_id is not None:
            headers["X-User-Id"] = self.user_id
        sent = 0

        async def blocks() -> AsyncIterator[bytes]:
            nonlocal sent
            with open(path, "rb") as file:
                while block := await asyncio.to_thread(file.read, min(transfer.BLOCK_BYTES, size - sent)):
                    sent += len(block)
                    if on_progress is not None:
                        on_progress(sent, size)
                    yield block

        try:
            async with asyncio.timeout(timeout):  # None: no bound
                response = await self.http.post(url, content=blocks(), headers=headers, timeout=self._limits())
        except TimeoutError as e:
            raise TransportError(f"POST {url}: not finished within {timeout} s (sent {sent} of {size} bytes)") from e
        except httpx.HTTPError as e:
            raise TransportError(f"POST {url}: {e.__class__.__name__}: {e} (sent {sent} of {size} bytes)") from e
        return transfer.uploaded(Answer("POST", str(response.url), response.status_code, response.reason_phrase,
                                        response.headers, response.content, response))

    async def translate_file(
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
        """Upload a video, submit a job for it and wait; return the completed job (see TranslationClient)."""
        deadline = deadline_after(timeout, self._clock())
        upload = await self.upload(path, on_progress=on_upload_progress,
                                   timeout=None if timeout is None else max(0.0, deadline - self._clock()))
        job = await self._submit(role, user_id=user_id, video_url=None, target_language=target_language,
                                 idempotency_key=None, deduplicate=True, wait_on_rate_limit=wait_on_rate_limit,
                                 deadline=deadline, upload_id=upload.upload_id)
        finals = await self._wait([job], deadline=deadline, on_progress=on_progress)
        return protocol.completed(finals[job.job_id])

    async def download_result(
        self,
        job: Job | str,
        path: str | os.PathLike[str],
        *,
        on_progress: TransferProgress | None = None,
        retries: int = 5,
        timeout: float | None = None,
    ) -> Path:
        """Download a completed job's video to `path` (a file or a folder), resuming after a dropped connection."""
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
                    try:
                        async with asyncio.timeout(left if math.isfinite(left) else None):
                            await self._download_once(url, download, out)
                    except TimeoutError as e:
                        error = TransportError(f"GET {url}: no complete answer before the deadline")
                        error.__cause__ = e
                        await self._sleep(download.failed(error, self._clock()))
                    except TranslationError as error:
                        await self._sleep(download.failed(error, self._clock()))
        except BaseException:
            partial.unlink(missing_ok=True)  # nothing half-written is left behind
            raise
        final = transfer.final_path(dest, download, job_id)
        partial.replace(final)
        return final

    async def _download_once(self, url: str, download: transfer.Download, out: BinaryIO) -> None:
        headers = download.headers()
        if self.user_id is not None:
            headers["X-User-Id"] = self.user_id
        try:
            async with self.http.stream("GET", url, headers=headers, timeout=self._limits()) as response:
                body = b"" if response.status_code in (200, 206) else await response.aread()
                answer = Answer("GET", str(response.url), response.status_code, response.reason_phrase,
                                response.headers, body, response)
                if download.begin(answer):
                    out.seek(0)
                    out.truncate()
                if download.done:
                    return
                async for piece in response.aiter_bytes():  # as it arrives: a drop loses nothing received
                    out.write(piece)
                    download.received_bytes(len(piece))
        except httpx.HTTPError as e:
            raise TransportError(f"GET {url}: {e.__class__.__name__}: {e} (received {download.received} bytes)") \
                from e
        if not download.finished():
            raise transfer.ended_early(download.received, download.total)

    def _limits(self) -> httpx.Timeout:
        """Return per-read timeouts for a transfer: `timeout` between reads, the connect limit to connect."""
        return httpx.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT))

    async def wait_for_all(
        self,
        job_ids: Iterable[str | Job],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Job]:
        """Wait until every job is finished; return {job_id: final Job} (one task serves them all)."""
        deadline = deadline_after(timeout, self._clock())
        return await self._wait(list(job_ids), deadline=deadline, on_progress=on_progress)

    async def _wait(self, jobs: Sequence[str | Job], *, deadline: float,
                    on_progress: ProgressCallback | None) -> dict[str, Job]:
        plan = WaitPlan(jobs, deadline=deadline, now=self._clock(), pacing=self.pacing, rng=self._rng,
                        request_timeout=self.timeout, long_poll=self.long_poll,
                        server_long_polls=self.server_long_polls, on_progress=on_progress)
        while True:
            step = plan.next(self._clock())
            if isinstance(step, Finished):
                return step.jobs
            if isinstance(step, Sleep):
                await self._sleep(step.seconds)
                continue
            await self._status_step(plan, step)

    async def _status_step(self, plan: WaitPlan, step: Send[Job]) -> None:
        self.status_requests += 1
        sent_at = self._clock()
        try:
            answer = await self._exchange(step.call, step.budget)
            job = step.call.decode(answer)
        except TranslationError as error:
            plan.failed(step, error, self._clock())
        else:
            plan.answered(step, job, answer, sent_at, self._clock())
            self.server_long_polls = plan.server_long_polls
