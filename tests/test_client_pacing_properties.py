"""Property tests of the pacing: whatever the server answers or fails, the client never spins and never overruns.

Hypothesis draws a sequence of outcomes — connection refused, a silent server that uses the whole request
budget, 5xx and 429 with or without Retry-After, a proxy's 502 page, unfinished jobs with or without hints
and long-polls — and both clients (requests and httpx) wait through it on a fake clock. Each request takes
fake time and never more than the budget the client gave it (as the real transports enforce).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from client import Pacing, ServerUnreachableError, TranslationError, WaitTimeoutError
from tests.client_fakes import JOB_ID, FakeTime, httpx_response, job_json, make_async_client, make_client, response

PACING = Pacing()
FAILURES = ("refused", "silent", "503", "429", "500", "502")


@dataclass(frozen=True)
class Outcome:
    """What the server does with one request: `kind`, how long it takes (share of what it may), a hint."""

    kind: str
    share: float
    hint: float | None

    @property
    def failure(self) -> bool:
        return self.kind in FAILURES


outcomes = st.builds(
    Outcome,
    kind=st.sampled_from([*FAILURES, "pending", "pending", "held"]),
    share=st.floats(0, 1),
    hint=st.one_of(st.none(), st.floats(0, 8)),
)


@dataclass
class Exchange:
    """One request as the fake server saw it."""

    start: float
    end: float
    budget: float
    outcome: Outcome | None


class FakeServer:
    """Plays a script of outcomes on a fake clock; answers `completed` once the script is used up."""

    def __init__(self, script: list[Outcome], fake: FakeTime) -> None:
        self.script = list(script)
        self.fake = fake
        self.exchanges: list[Exchange] = []

    def play(self, budget: float, wait: float | None) -> tuple[str, int, Any, dict[str, str]]:
        """Advance the clock for one request; return what to do: ('raise'|'answer', status, body, headers)."""
        start = self.fake.now
        outcome = self.script.pop(0) if self.script else None
        kind = outcome.kind if outcome else "done"
        hint = outcome.hint if outcome else None
        took = {"silent": budget, "held": (wait or 0) * (outcome.share if outcome else 0)}.get(
            kind, min(budget, 2.0) * (outcome.share if outcome else 0) * 0.1)
        self.fake.now += min(took, budget)
        self.exchanges.append(Exchange(start, self.fake.now, budget, outcome))
        headers = {} if hint is None else {"Retry-After": str(math.ceil(hint))}
        if kind in ("refused", "silent"):
            return "raise", 0, None, {}
        if kind in ("503", "429", "500"):
            problem = {"status": int(kind), "code": "x", "title": "t"}
            if hint is not None:
                problem["retry_after"] = hint
            return "answer", int(kind), problem, headers
        if kind == "502":
            return "answer", 502, "<html>bad gateway</html>", {"Content-Type": "text/html"}
        if kind == "done":
            return "answer", 200, job_json("completed"), {}
        if kind == "held" and wait:
            headers["Preference-Applied"] = f"wait={wait}"
        return "answer", 200, job_json(eta_seconds=hint), headers


def sync_wait(script: list[Outcome], timeout: float | None, long_poll: bool) -> tuple[Any, FakeServer, FakeTime]:
    """Wait with TranslationClient through `script`; return the outcome (Job or error), the server, the time."""

    def answer(call: dict[str, Any]) -> requests.Response:
        wait = call["params"].get("wait") if call["params"] else None
        what, status, body, headers = server.play(call["timeout"][1], float(wait) if wait else None)
        if what == "raise":
            raise requests.ConnectionError("no answer")
        if isinstance(body, str):
            r = response(status, None, headers)
            r._content = body.encode()
            return r
        return response(status, body, headers)

    tc, _, fake = make_client([answer] * 10_000, long_poll=long_poll)
    server = FakeServer(script, fake)
    try:
        return tc.wait_for_completion(JOB_ID, timeout=timeout), server, fake
    except TranslationError as e:
        return e, server, fake


def async_wait(script: list[Outcome], timeout: float | None, long_poll: bool) -> tuple[Any, FakeServer, FakeTime]:
    """Wait with AsyncTranslationClient through `script`; return the outcome (Job or error), the server, the time."""

    def answer(request: httpx.Request) -> httpx.Response:
        wait = request.url.params.get("wait")
        what, status, body, headers = server.play(request.extensions["timeout"]["read"], float(wait) if wait else None)
        if what == "raise":
            raise httpx.ConnectError("no answer")
        if isinstance(body, str):
            return httpx.Response(status, content=body.encode(), headers=headers)
        return httpx_response(status, body, headers)

    tc, _, fake = make_async_client([answer] * 10_000, long_poll=long_poll)
    server = FakeServer(script, fake)

    async def run() -> Any:
        async with tc:
            try:
                return await tc.wait_for_completion(JOB_ID, timeout=timeout)
            except TranslationError as e:
                return e

    return asyncio.run(run()), server, fake


WAITERS: dict[str, Callable[..., tuple[Any, FakeServer, FakeTime]]] = {"sync": sync_wait, "async": async_wait}


def consecutive_failures(exchanges: list[Exchange], index: int) -> int:
    """Return how many failures in a row end at exchanges[index] (0 if it was answered)."""
    count = 0
    while index >= 0 and exchanges[index].outcome is not None and exchanges[index].outcome.failure:
        count += 1
        index -= 1
    return count


@pytest.mark.parametrize("waiter", WAITERS)
@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(script=st.lists(outcomes, max_size=25), timeout=st.floats(0.5, 60), long_poll=st.booleans())
def test_requests_are_never_closer_than_the_floor_and_never_outlast_the_deadline(
    waiter: str, script: list[Outcome], timeout: float, long_poll: bool
) -> None:
    """For any answers and failures, each request waits the (grown) floor and Retry-After, all within the deadline."""
    result, server, fake = WAITERS[waiter](script, timeout, long_poll)
    start = 1000.0
    assert fake.now - start <= timeout + 1e-9
    for exchange in server.exchanges:
        assert exchange.end <= start + timeout + 1e-9
    for before, after in zip(server.exchanges, server.exchanges[1:], strict=False):
        gap = after.start - before.end
        assert gap >= PACING.min_interval - 1e-9
        if before.outcome is not None and before.outcome.failure:
            failures = consecutive_failures(server.exchanges, server.exchanges.index(before))
            assert gap >= min(PACING.floor_cap, PACING.min_interval * PACING.backoff_factor**failures) - 1e-9
            if before.outcome.hint is not None and before.outcome.kind in ("503", "429", "500"):
                assert gap >= before.outcome.hint - 1e-9
    if isinstance(result, TranslationError):
        assert isinstance(result, WaitTimeoutError)
        last = server.exchanges[-1].outcome if server.exchanges else None
        assert isinstance(result, ServerUnreachableError) == (last is not None and last.kind in ("refused", "silent"))
    else:
        assert result.status == "completed"


@pytest.mark.parametrize("waiter", WAITERS)
@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(kinds=st.lists(st.sampled_from(["refused", "silent", "503", "500"]), min_size=1, max_size=4))
def test_without_a_deadline_a_dead_server_is_given_up_on(waiter: str, kinds: list[str]) -> None:
    """With timeout=None, a server that stops answering is given up on after unreachable_limit, with few requests."""
    script = [Outcome(kind, 0.5, None) for kind in kinds] + [Outcome("refused", 0.5, None)] * 500
    result, server, fake = WAITERS[waiter](script, None, True)
    assert isinstance(result, ServerUnreachableError)
    last_answer = max([e.end for e in server.exchanges if e.outcome and e.outcome.kind not in ("refused", "silent")],
                      default=1000.0)
    assert PACING.unreachable_limit <= fake.now - last_answer <= PACING.unreachable_limit + PACING.backoff_cap + 10
    assert len(server.exchanges) <= len(kinds) + 15
