"""End-to-end tests of the client against dead, slow and foreign servers on real sockets: it never spins,
never overruns its deadline by more than half a second, and gives up on a server that is not this API at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from client import (
    ProtocolError,
    ServerUnreachableError,
    TranslationClient,
    TransportError,
    WaitTimeoutError,
)
from simulator.client.aio import AsyncTranslationClient
from simulator.testing.misbehaving import MisbehavingServer

JOB_ID = "00000000-0000-4000-8000-000000000001"
DEADLINE = 1.0
#: How late a call may end after its deadline.
GRACE = 0.5


def timed(call: Callable[[], Any]) -> tuple[BaseException | Any, float]:
    """Run `call`; return what it returned or raised, and how long it took."""
    started = time.monotonic()
    try:
        result: Any = call()
    except Exception as e:
        result = e
    return result, time.monotonic() - started


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-headers", "silent"])
def test_a_wait_ends_on_time_whatever_a_slow_server_does(mode: str) -> None:
    """wait_for_completion(timeout=1) against a trickling or silent server raises ServerUnreachableError by 1.5 s."""
    with MisbehavingServer(mode, interval=0.3) as server, TranslationClient(server.url) as tc:
        result, took = timed(lambda: tc.wait_for_completion(JOB_ID, timeout=DEADLINE))
    assert isinstance(result, ServerUnreachableError), result
    assert isinstance(result, TimeoutError) and isinstance(result, TransportError)
    assert DEADLINE - 0.05 <= took <= DEADLINE + GRACE


@pytest.mark.parametrize("mode", ["trickle-body", "silent"])
def test_translate_counts_the_submission_in_its_deadline(mode: str) -> None:
    """translate(timeout=1) against a server that never finishes answering the submission ends by 1.5 s."""
    with MisbehavingServer(mode, interval=0.3) as server, TranslationClient(server.url) as tc:
        result, took = timed(lambda: tc.translate("free", timeout=DEADLINE))
    assert isinstance(result, WaitTimeoutError), result
    assert took <= DEADLINE + GRACE


def test_one_request_gets_a_total_budget_not_a_per_read_timeout() -> None:
    """A plain call with a 1 s request timeout is cut off after 1 s although a byte arrives every 0.3 s."""
    with MisbehavingServer("trickle-body", interval=0.3) as server, TranslationClient(server.url, timeout=1.0) as tc:
        result, took = timed(lambda: tc.get_status(JOB_ID))
    assert isinstance(result, TransportError) and "no complete answer within" in str(result)
    assert took <= 1.0 + GRACE


def test_a_dead_port_is_retried_with_backoff_not_spun_on(closed_port: int) -> None:
    """Against a port where nothing listens, a 2 s wait sends a handful of requests, cheaply, and ends on time."""
    with TranslationClient(f"http://127.0.0.1:{closed_port}") as tc:
        cpu = time.process_time()
        result, took = timed(lambda: tc.wait_for_completion(JOB_ID, timeout=2.0))
        cpu = time.process_time() - cpu
    assert isinstance(result, ServerUnreachableError), result
    assert 2.0 - 0.05 <= took <= 2.0 + GRACE
    assert tc.status_requests <= 10
    assert cpu < 0.5


def test_a_foreign_server_is_fatal_at_once() -> None:
    """Without a deadline, an HTML 200 server makes the wait raise ProtocolError after exactly one request."""
    with MisbehavingServer("html") as server, TranslationClient(server.url) as tc:
        result, took = timed(lambda: tc.wait_for_completion(JOB_ID, timeout=None))
        hits = server.hits
    assert isinstance(result, ProtocolError), result
    assert not isinstance(result, TransportError)
    assert hits == 1 and took < 1
    assert server.url in str(result) and "200 text/html" in str(result) and "Welcome to nginx" in str(result)


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-headers", "silent"])
def test_the_async_client_ends_on_time_whatever_a_slow_server_does(mode: str) -> None:
    """AsyncTranslationClient.wait_for_completion(timeout=1) against a slow server ends by 1.5 s, as the sync one."""

    async def wait(url: str) -> Any:
        async with AsyncTranslationClient(url) as tc:
            return await tc.wait_for_completion(JOB_ID, timeout=DEADLINE)

    with MisbehavingServer(mode, interval=0.3) as server:
        result, took = timed(lambda: asyncio.run(wait(server.url)))
    assert isinstance(result, ServerUnreachableError), result
    assert DEADLINE - 0.05 <= took <= DEADLINE + GRACE


def test_the_async_client_finds_a_foreign_server_fatal() -> None:
    """AsyncTranslationClient raises ProtocolError at once for an HTML server, as the sync one."""

    async def wait(url: str) -> Any:
        async with AsyncTranslationClient(url) as tc:
            return await tc.wait_for_completion(JOB_ID)

    with MisbehavingServer("html") as server:
        result, took = timed(lambda: asyncio.run(wait(server.url)))
        hits = server.hits
    assert isinstance(result, ProtocolError) and hits == 1 and took < 1
