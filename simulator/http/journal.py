"""The request journal: the last JOURNAL_SIZE requests, for a test to verify what its client sent.

Like WireMock's request journal and MockServer's verification: each request's method, path and route
template, query (secrets redacted), status, user, duration and simulated time — never its body, headers
or tokens. Requests to the controls themselves (`/admin/…`) are not recorded, so reading the journal does
not change it. `GET /admin/requests` lists entries, `GET /admin/requests/count` counts them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, g, request

from simulator.domain import iso
from simulator.http.accesslog import redacted_query
from simulator.paths import openapi_template, path_matches

#: Query parameters whose values are never recorded (compared without case).
#: Requests under this prefix (the controls: clock, reset, the journal) are not recorded.
UNRECORDED_PREFIX = "/admin/"
MAX_USER_ID = 128


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded request."""

    seq: int
    at: float  # simulated epoch seconds when it arrived
    method: str
    path: str
    route: str | None  # the route template, OpenAPI style; None for a path no route matches
    query: str  # as sent, secrets redacted
    status: int
    user_id: str | None
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        """Return the entry as the journal endpoints show it."""
        return {
            "seq": self.seq,
            "at": iso(self.at),
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "query": self.query,
            "status": self.status,
            "user_id": self.user_id,
            "duration_ms": round(self.duration_ms, 3),
        }


@dataclass(frozen=True)
class Filter:
    """Which entries to select; None selects any."""

    path: str | None = None
    method: str | None = None
    status: int | None = None
    user_id: str | None = None
    since: datetime | None = None  # simulated time, inclusive, to the microsecond (as times are shown)

    def selects(self, entry: Entry) -> bool:
        """Tell whether `entry` passes every filter given."""
        return (
            (self.path is None or path_matches(self.path, entry.path, entry.route))
            and (self.method is None or entry.method == self.method)
            and (self.status is None or entry.status == self.status)
            and (self.user_id is None or entry.user_id == self.user_id)
            # An entry is selected by the `at` it shows: its time to the microsecond, as iso() rounds it.
            and (self.since is None or datetime.fromtimestamp(entry.at, UTC) >= self.since)
        )


class RequestJournal:
    """The last `size` requests, oldest first; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque(maxlen=0)
        self.recorded = 0  # requests recorded since start-up or the last clear

    def record(self, size: int, **fields: Any) -> None:
        """Append an entry, keeping the last `size` (JOURNAL_SIZE, which may change at runtime).

        With `size` 0 the request is only counted (and `fields` may be left out).
        """
        with self._lock:
            if self._entries.maxlen != size:
                self._entries = deque(self._entries, maxlen=size)
            self.recorded += 1
            if size:
                self._entries.append(Entry(seq=self.recorded, **fields))

    def select(self, where: Filter, limit: int | None = None) -> tuple[list[Entry], int]:
        """Return the entries `where` selects (the last `limit` of them, oldest first) and how many it selects."""
        with self._lock:
            chosen = [entry for entry in self._entries if where.selects(entry)]
        return (chosen if limit is None else chosen[len(chosen) - limit:] if limit else []), len(chosen)

    def clear(self) -> None:
        """Forget every entry and start counting again."""
        with self._lock:
            self._entries.clear()
            self.recorded = 0


def _query() -> str:
    """Return the request's query string as sent, rebuilt with secrets redacted when it may hold one."""
    return recorded_query(request.query_string.decode("latin-1"))


def recorded_query(raw: str) -> str:
    """Return a raw query string as the journal keeps it: as sent, secrets redacted as in the access log."""
    return redacted_query(raw)


def recorded_user(header: str | None, remote_addr: str | None) -> str | None:
    """Return who asked: a well-formed X-User-Id, else the client address."""
    if header and len(header) <= MAX_USER_ID and header.isascii() and header.isprintable():
        return header
    return remote_addr


def _user() -> str | None:
    caller = g.get("caller")
    if caller is not None and caller.principal is not None:
        return caller.principal.user_id  # an API key names its user, whatever X-User-Id says
    return recorded_user(request.headers.get("X-User-Id"), request.remote_addr)


def record_outside_flask(simulator: Any, *, method: str, path: str, route: str | None, raw_query: str,
                         status: int, user_header: str | None, remote_addr: str | None, started: float,
                         at: float) -> None:
    """Record a request answered by an async route of `python server.py` exactly as `_record` records Flask's."""
    if path.startswith(UNRECORDED_PREFIX):
        return
    size = simulator.engine.settings.JOURNAL_SIZE
    if not size:
        simulator.journal.record(0)
        return
    simulator.journal.record(size, at=at, method=method, path=path, route=route, query=recorded_query(raw_query),
                             status=status, user_id=recorded_user(user_header, remote_addr),
                             duration_ms=(time.perf_counter() - started) * 1000)


def _arrive() -> None:
    simulator = current_app.extensions["simulator"]
    g.journal_arrived = (time.perf_counter(), simulator.engine.now())


def _record(response: Response) -> Response:
    if request.path.startswith(UNRECORDED_PREFIX):
        return response
    simulator = current_app.extensions["simulator"]
    size = simulator.engine.settings.JOURNAL_SIZE
    if not size:
        simulator.journal.record(0)  # JOURNAL_SIZE=0: counted, nothing kept (and nothing spent on an entry)
        return response
    started, at = g.get("journal_arrived") or (time.perf_counter(), simulator.engine.now())
    rule = request.url_rule
    simulator.journal.record(
        size,
        at=at,
        method=request.method,
        path=request.path,
        route=None if rule is None else openapi_template(rule.rule),
        query=_query(),
        status=response.status_code,
        user_id=_user(),
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    return response


def init_app(app: Flask) -> None:
    """Record every request of `app`; call first, so that arrival is taken before any other hook and the
    entry is written after every other hook (with the final status, injected delays included)."""
    app.before_request(_arrive)
    app.after_request(_record)
