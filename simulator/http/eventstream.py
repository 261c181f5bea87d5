"""`GET /events` in the event loop of `python server.py`: one async reader of the event hub per stream, no thread.

The Flask view (`views.events`) holds a thread for each stream it serves; under `python server.py` this
async route takes every `GET`/`HEAD` of /events instead. The hub's own thread follows the change feed and
hands each batch to the event loop once (`simulator.events`); here each stream only sends what it is given.
It answers what the view answers — the same checks, 400/503 problem+json, headers, CORS headers
(CORS_ORIGINS), the delay RESPONSE_DELAY draws for the route — and writes the same access-log line, journal
entry and request metrics when the stream starts (as the Flask hooks do for a streamed answer). A request
with an API key (every request in AUTH_MODE=keys) goes to the view, which checks the key and scopes the stream.
"""

from __future__ import annotations

import asyncio
import time

from simulator.events import STREAM_HEADERS, Refusal, open_async, send_stream
from simulator.http.accesslog import log_access
from simulator.http.context import Simulator
from simulator.http.cors import cors_headers
from simulator.http.journal import record_outside_flask
from simulator.rsgi import Request, Responder

ROUTE = "/events"
#: What `Responder` adds to every answer by itself.
_COMMON = frozenset({"x-content-type-options", "cache-control"})


class EventStreamRoute:
    """An async route (`simulator.rsgi.AsyncRoute`) for `GET /events` and `HEAD /events`."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.released = False

    def matches(self, request: Request) -> bool:
        """Take GET and HEAD of /events."""
        return request.path == ROUTE and request.method in ("GET", "HEAD")

    async def handle(self, request: Request, respond: Responder) -> bool:
        """Stream the hub's events until the client leaves or the server stops; refusals as problem+json."""
        simulator = self.simulator
        settings = simulator.engine.settings
        if self.released:
            return False  # the server is stopping: the app answers (its hub is closed, the stream ends at once)
        if settings.AUTH_MODE == "keys" or request.header("x-api-key") is not None:
            return False  # a key to check and a scope to apply: the app's view does both, holding a thread
        request.arrived_at = simulator.engine.now()
        extra = list(cors_headers(settings.CORS_ORIGINS, request.header("origin")).items())
        if settings.RESPONSE_DELAY:
            await asyncio.sleep(simulator.delays.seconds(settings.RESPONSE_DELAY, request.path, ROUTE))
        outcome = open_async(simulator.events, settings.MAX_EVENT_STREAMS, request.method, request.query_string,
                             request.header("last-event-id"))
        if isinstance(outcome, Refusal):
            respond.send(outcome.status, [*_own(outcome.headers), *extra], outcome.body)
            self._log(request, outcome.status)
            return True
        stream = respond.stream(200, [*_own(STREAM_HEADERS), *extra])
        self._log(request, 200)
        await send_stream(outcome, stream.send, respond.disconnected())
        return True

    def release(self) -> None:
        """End every stream now, and hand later requests to the app (the server is stopping)."""
        self.released = True
        self.simulator.events.close()

    def _log(self, request: Request, status: int) -> None:
        """Write the access-log line, the journal entry and the request metrics, as the Flask hooks would."""
        seconds = time.perf_counter() - request.received
        simulator = self.simulator
        log_access(request.remote_addr, request.method, request.path, request.query_string, status, seconds)
        record_outside_flask(simulator, method=request.method, path=request.path, route=ROUTE,
                             raw_query=request.query_string, status=status, user_header=request.header("x-user-id"),
                             remote_addr=request.remote_addr, started=request.received,
                             at=request.arrived_at if request.arrived_at is not None else 0.0)
        simulator.metrics.observe_request(ROUTE, request.method, status, seconds)


def _own(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return `headers` without the ones `Responder` adds to every answer."""
    return [(name, value) for name, value in headers if name.lower() not in _COMMON]
