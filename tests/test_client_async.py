"""Tests of AsyncTranslationClient: the sync client's methods and semantics, on a scripted transport and end to end."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from client import (
    JobFailedError,
    NotFoundError,
    Pacing,
    ProtocolError,
    RateLimitError,
    ServerUnreachableError,
    TranslationClient,
)
from simulator.client import AsyncTranslationClient
from tests.client_fakes import JOB_ID, httpx_response, job_json, make_async_client

T = TypeVar("T")
QUICK = {"TRANSLATION_DELAY": 1.0, "PREMIUM_DELAY_FACTOR": 1.0, "DELAY_JITTER": 0.0, "ERROR_RATE": 0.0}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a fresh event loop."""
    return asyncio.run(coroutine)


def test_the_async_client_has_every_public_method_of_the_sync_one_as_a_coroutine() -> None:
    """Every public method of TranslationClient exists on AsyncTranslationClient, with the same parameters."""
    for name, method in inspect.getmembers(TranslationClient, inspect.isfunction):
        if name.startswith("_") or name == "close":
            continue
        twin = getattr(AsyncTranslationClient, name)
        assert inspect.iscoroutinefunction(twin), name
        assert list(inspect.signature(twin).parameters) == list(inspect.signature(method).parameters), name


def test_long_poll_waits_like_the_sync_client() -> None:
    """The async wait long-polls with wait and since, sleeps only the floor, and returns the completed job."""
    applied = {"Preference-Applied": "wait=10"}
    tc, transport, fake = make_async_client(
        [httpx_response(200, job_json(eta_seconds=3, version=2), applied),
         httpx_response(200, job_json("completed", version=3), applied)],
        long_poll=True,
    )

    async def wait() -> Any:
        async with tc:
            return await tc.wait_for_completion(JOB_ID, timeout=10)

    assert run(wait()).status == "completed"
    first, second = (r.url.params for r in transport.requests)
    assert 9.8 <= float(first["wait"]) < 10 and "since" not in first
    assert second["since"] == "2"
    assert len(fake.sleeps) == 1 and fake.sleeps[0] >= Pacing().min_interval
    assert tc.server_long_polls is True


def test_refused_connections_are_paced_and_end_in_server_unreachable() -> None:
    """Refused connections are retried with backoff within the deadline, then ServerUnreachableError."""
    tc, transport, fake = make_async_client([httpx.ConnectError("refused")] * 100, long_poll=True)

    async def wait() -> Any:
        async with tc:
            return await tc.wait_for_completion(JOB_ID, timeout=5)

    with pytest.raises(ServerUnreachableError):
        run(wait())
    assert len(transport.requests) <= 8
    assert sum(fake.sleeps) == pytest.approx(5.0)


def test_submit_retries_under_one_key_and_raises_rate_limits() -> None:
    """A dropped submission is retried with the same Idempotency-Key; a 429 raises RateLimitError with retry_after."""
    tc, transport, _ = make_async_client([
        httpx.ReadError("reset"),
        httpx_response(202, job_json()),
        httpx_response(429, {"status": 429, "code": "rate_limited", "retry_after": 60}, {"Retry-After": "60"}),
    ])

    async def go() -> Any:
        async with tc:
            job = await tc.submit("premium")
            with pytest.raises(RateLimitError) as caught:
                await tc.submit("free")
            return job, caught.value

    job, limited = run(go())
    assert job.job_id == JOB_ID and limited.retry_after == 60
    keys = [r.headers["Idempotency-Key"] for r in transport.requests]
    assert keys[0] == keys[1] != keys[2]


def test_errors_are_the_same_classes() -> None:
    """A 404 is NotFoundError, an HTML page ProtocolError, a failed job JobFailedError, as in the sync client."""
    tc, _, _ = make_async_client([
        httpx_response(404, {"status": 404, "code": "job_not_found", "title": "Not Found"}),
        httpx.Response(200, content=b"<html></html>", headers={"Content-Type": "text/html"}),
        httpx_response(202, job_json()),
        httpx_response(200, job_json("cancelled", cancel_reason="no")),
    ])

    async def go() -> None:
        async with tc:
            with pytest.raises(NotFoundError):
                await tc.get_status(JOB_ID)
            with pytest.raises(ProtocolError):
                await tc.get_status(JOB_ID)
            with pytest.raises(JobFailedError):
                await tc.translate()

    run(go())


def test_translate_against_a_real_server(run_server) -> None:
    """AsyncTranslationClient.translate completes a 1 s job on a real server with long-polling and few requests."""
    server = run_server(QUICK)

    async def go() -> Any:
        async with AsyncTranslationClient(server.url, user_id="async") as tc:
            job = await tc.translate("free", timeout=10)
            return job, tc.status_requests, tc.server_long_polls, await tc.jobs(user_id="async")

    started = time.monotonic()
    job, requests_sent, long_polls, listed = run(go())
    assert job.status == "completed" and long_polls is True and requests_sent <= 2
    assert [j.job_id for j in listed] == [job.job_id]
    assert time.monotonic() - started < 5
