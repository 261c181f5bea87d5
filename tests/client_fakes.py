"""Fakes for the client's unit tests: jobs as the server describes them, scripted sessions, a fake clock.

`ScriptedSession` stands in for a requests.Session and `scripted_transport` for an httpx transport: each
answers requests from a script (answers, exceptions, or functions of the request) and records them.
`FakeTime` is a clock whose sleep moves it, for both clients.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import requests

from client import TranslationClient
from simulator.client.aio import AsyncTranslationClient

JOB_ID = "00000000-0000-4000-8000-000000000001"


def job_json(status: str = "pending", **fields: Any) -> dict[str, Any]:
    """Return a job as the server would describe it."""
    done = status in ("completed", "permanently_failed", "cancelled")
    base = {
        "job_id": JOB_ID,
        "status": status,
        "result": {"completed": "completed", "pending": "pending", "failed": "pending"}.get(status, "error"),
        "done": done,
        "role": "free",
        "priority": 0,
        "user_id": "u",
        "progress": 100 if status == "completed" else 0,
        "queue_position": None,
        "attempts": 1,
        "max_retries": 3,
        "eta_seconds": None,
        "error": None,
        "version": 2,
        "cancel_reason": None,
        "created_at": "2027-01-15T08:00:00.000000Z",
        "updated_at": "2027-01-15T08:00:00.000000Z",
        "started_at": None,
        "finished_at": None,
    }
    base.update(fields)
    return base


def response(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
    """Build a requests.Response without a network."""
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body if body is not None else {}).encode()
    r.headers.update(headers or {})
    r.headers.setdefault("Content-Type", "application/problem+json" if status >= 400 else "application/json")
    r.reason = "reason"
    return r


Scripted = requests.Response | Exception | Callable[[dict[str, Any]], requests.Response]


class ScriptedSession:
    """Answers requests from a script and records each one (method, path, params, headers, timeout)."""

    def __init__(self, script: list[Scripted]) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        call = {"method": method, "path": url.split("4777", 1)[1], **kwargs}
        self.calls.append(call)
        if not self.script:
            raise AssertionError(f"unexpected request {method} {url}")
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item(call) if callable(item) else item

    def close(self) -> None:
        pass


class FakeTime:
    """A clock and a sleep that moves it; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(script: list[Scripted], *, long_poll: bool = False, **kwargs: Any) -> tuple[TranslationClient,
                                                                                            ScriptedSession, FakeTime]:
    """Build a client on a scripted session and fake time (long-polling off unless asked)."""
    session = ScriptedSession(script)
    fake = FakeTime()
    tc = TranslationClient(
        "http://127.0.0.1:4777",
        session=session,  # type: ignore[arg-type]
        clock=fake.clock,
        sleep=fake.sleep,
        rng=random.Random(1),
        long_poll=long_poll,
        **kwargs,
    )
    return tc, session, fake



class AsyncFakeTime(FakeTime):
    """FakeTime with a coroutine sleep, for the async client."""

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def httpx_response(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """Build an httpx.Response as the server would send it."""
    all_headers = {"Content-Type": "application/problem+json" if status >= 400 else "application/json",
                   **(headers or {})}
    return httpx.Response(status, content=json.dumps(body if body is not None else {}).encode(),
                          headers=all_headers)


AsyncScripted = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class ScriptedTransport(httpx.AsyncBaseTransport):
    """An httpx transport answering from a script and recording each request."""

    def __init__(self, script: list[AsyncScripted]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.script:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item(request) if callable(item) else item


def make_async_client(
    script: list[AsyncScripted], *, long_poll: bool = False, **kwargs: Any
) -> tuple[AsyncTranslationClient, ScriptedTransport, AsyncFakeTime]:
    """Build an async client on a scripted transport and fake time (long-polling off unless asked)."""
    transport = ScriptedTransport(script)
    fake = AsyncFakeTime()
    tc = AsyncTranslationClient(
        "http://127.0.0.1:4777",
        http=httpx.AsyncClient(transport=transport),
        clock=fake.clock,
        sleep=fake.async_sleep,
        rng=random.Random(1),
        long_poll=long_poll,
        **kwargs,
    )
    return tc, transport, fake
