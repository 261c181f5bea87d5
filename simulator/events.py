"""Server-sent events of job changes, without a web framework: frames, replay, resets, filters, ticks, fan-out.

One `EventHub` per engine follows the change feed in one thread. For every change it reads the job's
wire view once, encodes one SSE frame (`id:` = the change's feed number), keeps it in a bounded replay
log and hands the same bytes to every matching stream. Streams are read either by a blocking iterator
(`Subscription.frames()`, for a WSGI view: one server thread per open stream) or by an async iterator
(`AsyncSubscription.aframes()`, for an async route: no thread per stream — the hub wakes each event loop
once per batch, whatever the number of streams on it). `open_async` decides a request in an async server
and `send_stream` sends a stream until it ends; `simulator.http.eventstream` serves them under
`python server.py`.

What a stream carries, in order:

- first, exactly one of: `ready` (a new stream, `id:` = the current feed number), `ready` with
  `"resumed": true` (a reconnection whose `Last-Event-ID` is still in the replay log, `id:` = that
  number, followed by every change after it), or `reset` (a reconnection from too long ago, or from
  before the server restarted: reload the state, then follow the stream). Both carry `boot`, which
  changes when the server restarts: numbers start again then, so a client that resumed and sees a
  new `boot` must reload too (a restarted server may already have passed the client's number);
- every change — `submitted`, `started`, `retried`, `completed`, `failed`, `permanently_failed`,
  `cancelled`, `removed` — as an event of that name, with the job's wire view (`null` once removed);
- `progress` for running jobs, at most once every `progress_seconds` (1 s) per job and only when its
  whole-percent progress moved (and is above 0, which `started` said already); `id:` is the last
  change's number, so resuming from it loses nothing;
- `reset` whenever the stream fell too far behind (more than `backlog_bytes`, 8 MiB, unsent);
- a `: heartbeat` comment whenever `heartbeat_seconds` (15 s) passed without anything sent, so proxies
  keep the connection open and a vanished client is noticed (streams opened at different moments do not
  all get theirs at once).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import orjson

from simulator.domain import JobEngine, JobNotFound
from simulator.domain.job import iso
from simulator.feed import FeedGap

log = logging.getLogger("server")

HEARTBEAT_SECONDS = 15.0
PROGRESS_SECONDS = 1.0
RETRY_MILLISECONDS = 2_000  # how soon a browser reconnects after the stream drops
REPLAY_CAPACITY = 10_000  # changes kept for resuming (the change feed keeps as many)
BACKLOG_BYTES = 8 * 1024 * 1024  # what a stream may have unsent before it gets a reset instead (~11 000 events)
LINGER_SECONDS = 30.0  # the hub's thread keeps the replay log going this long after the last stream closed
MAX_ID_LENGTH = 64
MAX_USER_ID_LENGTH = 128
MAX_EVENT_ID = 2**63 - 1
CHANGE_KINDS = ("submitted", "started", "retried", "completed", "failed", "permanently_failed", "cancelled",
                "removed")
HEARTBEAT = b": heartbeat\n\n"
RETRY = b"retry: %d\n\n" % RETRY_MILLISECONDS


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which jobs a stream shows: one user's, one job, or (both None) all."""

    user_id: str | None = None
    job_id: str | None = None

    def matches(self, job_id: str, user_id: str) -> bool:
        """Tell whether a change of this job belongs in the stream."""
        return (self.job_id is None or self.job_id == job_id) and (self.user_id is None or self.user_id == user_id)

    @property
    def everything(self) -> bool:
        """Tell whether the stream shows every job."""
        return self.user_id is None and self.job_id is None


class TooManyStreams(Exception):
    """As many streams are open as allowed (MAX_EVENT_STREAMS)."""


class StreamRequestError(ValueError):
    """A request for a stream that cannot be served: its HTTP status, stable code and detail."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A parsed request for a stream: its filter and the last event the client saw (None: a new stream)."""

    filters: StreamFilter
    last_event_id: int | None


def parse_request(query: Mapping[str, str], last_event_id_header: str | None = None) -> StreamRequest:
    """Read `?user_id=`, `?job_id=`, `?last_event_id=` and the `Last-Event-ID` header (which wins), or raise."""
    user_id = query.get("user_id")
    if user_id is not None and not 0 < len(user_id) <= MAX_USER_ID_LENGTH:
        raise StreamRequestError(400, "invalid_parameter", f"user_id must be 1–{MAX_USER_ID_LENGTH} characters.")
    job_id = query.get("job_id")
    if job_id is not None and not 0 < len(job_id) <= MAX_ID_LENGTH:
        raise StreamRequestError(400, "invalid_parameter", f"job_id must be 1–{MAX_ID_LENGTH} characters.")
    # A browser's automatic reconnection sends the header, which is newer than a query the page built.
    if last_event_id_header is not None and last_event_id_header.strip():
        last = _event_id(last_event_id_header, "invalid_header", "The Last-Event-ID header")
    elif query.get("last_event_id") is not None:
        last = _event_id(query["last_event_id"], "invalid_parameter", "Query parameter 'last_event_id'")
    else:
        last = None
    return StreamRequest(StreamFilter(user_id, job_id), last)


def _event_id(text: str, code: str, what: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_EVENT_ID:
        raise StreamRequestError(400, code, f"{what} must be an event id this server sent (an integer ≥ 0), "
                                            f"got {text[:40]!r}.")
    return int(text)


def sse_frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """Encode one server-sent event: `id:` (when given), `event:` and one line of JSON `data:`."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return b"%sevent: %s\ndata: %s\n\n" % (head, event.encode(), orjson.dumps(data))


class _Entry(NamedTuple):
    seq: int
    job_id: str
    user_id: str
    frame: bytes


# ------------------------------------------------------------------------------------------------ subscriptions


class Subscription:
    """One open stream, read by a blocking iterator: its filter, its place in the feed, its unsent frames."""

    def __init__(self, hub: EventHub, filters: StreamFilter, after: int) -> None:
        self.filters = filters
        self.after = after  # the feed number after which it needs changes (hub lock)
        self.last_sent = hub.now()  # when the hub last gave it something (hub lock), for heartbeats
        self.closed = False
        self._hub = hub
        self._frames: deque[bytes] = deque()
        self._unsent = 0
        self._ended = False
        self._ready = threading.Condition(threading.Lock())

    def push(self, chunk: bytes, backlog_bytes: int) -> bool:
        """Queue bytes for the reader; refuse (False) when that would leave more than `backlog_bytes` unsent."""
        with self._ready:
            if self._unsent + len(chunk) > backlog_bytes:
                return False
            self._frames.append(chunk)
            self._unsent += len(chunk)
            return True

    def replace(self, chunk: bytes) -> None:
        """Drop everything unsent and queue `chunk` instead (a reset)."""
        with self._ready:
            self._frames.clear()
            self._frames.append(chunk)
            self._unsent = len(chunk)

    def drain(self) -> list[bytes]:
        """Return and forget every unsent frame, without waiting."""
        with self._ready:
            frames = list(self._frames)
            self._frames.clear()
            self._unsent = 0
            return frames

    def end(self) -> None:
        """Mark the stream ended (the server stops): the reader gets what is queued, then the end."""
        with self._ready:
            self._ended = True
        self.wake()

    @property
    def ended(self) -> bool:
        """Tell whether the stream was ended by the server."""
        return self._ended

    def wake(self) -> None:
        """Wake the reader (the hub calls this after pushing)."""
        with self._ready:
            self._ready.notify()

    def take(self, timeout: float | None = None) -> list[bytes] | None:
        """Wait up to `timeout` s for frames and return them ([] if none came); None once the stream ended."""
        with self._ready:
            if not self._frames and not self._ended:
                self._ready.wait(timeout)
            if not self._frames and self._ended:
                return None
            frames = list(self._frames)
            self._frames.clear()
            self._unsent = 0
            return frames

    def frames(self) -> Iterator[bytes]:
        """Yield the stream's bytes as they come, until the server ends it; close the subscription afterwards."""
        try:
            while True:
                frames = self.take(timeout=self._hub.heartbeat_seconds * 2)
                if frames is None:
                    return
                if frames:
                    yield b"".join(frames)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the stream (the client went away); safe to call more than once."""
        self._hub.unsubscribe(self)


class AsyncSubscription(Subscription):
    """One open stream, read by an async iterator on the event loop that opened it (no thread of its own)."""

    def __init__(self, hub: EventHub, filters: StreamFilter, after: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(hub, filters, after)
        self.loop = loop
        self._ready = threading.Lock()  # type: ignore[assignment]  # nobody waits on it: a plain lock is cheaper
        self._waiter: asyncio.Future[None] | None = None  # the loop's alone

    def wake(self) -> None:
        """Wake the reader; called on the loop's thread (the hub batches wake-ups per loop)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self) -> None:
        """Mark the stream ended and wake its reader on its loop."""
        with self._ready:
            self._ended = True
        try:
            self.loop.call_soon_threadsafe(self.wake)
        except RuntimeError:  # the loop is closed: nobody reads any more
            pass

    async def atake(self) -> list[bytes] | None:
        """Wait for frames and return them; None once the stream ended."""
        while True:
            frames = self.drain()
            if frames:
                return frames
            if self._ended:
                return None
            waiter = self._waiter = self.loop.create_future()
            try:
                if self._unsent or self._ended:  # pushed between drain() and now: no wake-up is lost
                    continue
                await waiter
            finally:
                self._waiter = None

    async def aframes(self) -> AsyncIterator[bytes]:
        """Yield the stream's bytes as they come, until the server ends it; close the subscription afterwards."""
        try:
            while True:
                frames = await self.atake()
                if frames is None:
                    return
                yield b"".join(frames)
        finally:
            self.close()


# ------------------------------------------------------------------------------------------------ the hub


class EventHub:
    """Follows one engine's change feed and fans every change out, as one ready-made frame, to every stream."""

    def __init__(
        self,
        engine: JobEngine,
        *,
        progress_seconds: float = PROGRESS_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        replay_capacity: int = REPLAY_CAPACITY,
        backlog_bytes: int = BACKLOG_BYTES,
        linger_seconds: float = LINGER_SECONDS,
        threaded: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.feed = engine.feed
        self.progress_seconds = progress_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.backlog_bytes = backlog_bytes
        self.linger_seconds = linger_seconds
        self._threaded = threaded
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._subscriptions: dict[Subscription, None] = {}
        self._log: deque[_Entry] = deque(maxlen=replay_capacity)
        self._cursor = self.feed.cursor()  # the last change fanned out (or skipped, after a gap)
        self._log_start = self._cursor  # the log holds the changes after this one (up to _cursor)
        self._progress_sent: dict[str, int] = {}
        now = monotonic()
        self._next_progress = now
        self._idle_since = now
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: Names this hub's numbering: feed numbers start again with the process, so a client that sees another
        #: `boot` in `ready` knows its Last-Event-ID was from a server before a restart, and reloads.
        self.boot = secrets.token_hex(6)

    # ------------------------------------------------------------------------ opening and closing streams

    def now(self) -> float:
        """Return the hub's monotonic time (seconds), which its ticks and heartbeats follow."""
        return self._monotonic()

    @property
    def open_streams(self) -> int:
        """Return how many streams are open."""
        return len(self._subscriptions)

    def subscribe(
        self,
        filters: StreamFilter = StreamFilter(),
        last_event_id: int | None = None,
        *,
        max_streams: int | None = None,
    ) -> Subscription:
        """Open a stream read by a blocking iterator, resuming after `last_event_id` when the log still has it.

        Raise TooManyStreams when `max_streams` are open already.
        """
        return self._open(Subscription, filters, last_event_id, max_streams)

    def subscribe_async(
        self,
        filters: StreamFilter = StreamFilter(),
        last_event_id: int | None = None,
        *,
        max_streams: int | None = None,
    ) -> AsyncSubscription:
        """Open a stream read by an async iterator on the running event loop (call it from a coroutine)."""
        loop = asyncio.get_running_loop()
        return self._open(lambda hub, f, after: AsyncSubscription(hub, f, after, loop), filters, last_event_id,
                          max_streams)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a stream; the hub's thread stops after `linger_seconds` without any."""
        with self._lock:
            subscription.closed = True
            if subscription in self._subscriptions:
                del self._subscriptions[subscription]
                if not self._subscriptions:
                    self._idle_since = self._monotonic()

    def close(self) -> None:
        """End every stream and stop the thread (tests; the server ends streams by closing the feed)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.end()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _open(self, make: Callable[..., Any], filters: StreamFilter, last: int | None, cap: int | None) -> Any:
        with self._lock:
            if cap is not None and len(self._subscriptions) >= cap:
                raise TooManyStreams(f"{cap} streams are open")
            newest = self.feed.cursor()
            if last is None:
                subscription = make(self, filters, newest)
                first = [sse_frame("ready", self._ready_data(newest, False), newest)]
            elif last > newest or last < self._log_start:
                # From the future (the server restarted: numbers began again) or older than the log: reload.
                subscription = make(self, filters, newest)
                reason = "unknown_event_id" if last > newest else "too_old"
                first = [sse_frame("reset", {"reason": reason, "cursor": newest, "boot": self.boot}, newest)]
            else:
                # Resumable: what the log holds after `last`; the thread brings anything newer.
                subscription = make(self, filters, max(last, self._cursor))
                first = [sse_frame("ready", self._ready_data(last, True), last)]
                first += [e.frame for e in self._log if e.seq > last and filters.matches(e.job_id, e.user_id)]
            opening = b"".join([RETRY, *first])
            subscription.push(opening, len(opening))
            if self.feed.closed or self._stopping:
                subscription.end()
                return subscription
            self._subscriptions[subscription] = None
            self._start_thread()
        return subscription

    def _ready_data(self, cursor: int, resumed: bool) -> dict[str, Any]:
        return {"cursor": cursor, "resumed": resumed, "boot": self.boot, "heartbeat_seconds": self.heartbeat_seconds,
                "progress_seconds": self.progress_seconds}

    # ------------------------------------------------------------------------ the thread

    def _start_thread(self) -> None:
        """Start the thread that follows the feed, unless it runs (hub lock held)."""
        if self._threaded and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            now = self._monotonic()
            with self._lock:
                if self._stopping:
                    self._thread = None
                    return
                idle = not self._subscriptions
                if idle and now - self._idle_since >= self.linger_seconds:
                    self._thread = None
                    return
            due = self._next_progress if not idle else now + 1.0  # heartbeats are checked at least this often
            try:
                self.feed.wait(self._cursor, max(0.0, min(due - now, 1.0, self.heartbeat_seconds)))
            except FeedGap:
                pass  # pump() resets whoever missed something
            if self.feed.closed:
                self._end_all()
                return
            try:
                self.pump(self._monotonic())
            except Exception:  # pragma: no cover - the streams must keep flowing whatever one step does
                log.exception("event hub step failed")
                time.sleep(0.1)

    def _end_all(self) -> None:
        with self._lock:
            self._thread = None
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.end()

    # ------------------------------------------------------------------------ one step

    def pump(self, now: float) -> None:
        """Fan out every change after the hub's cursor, progress if due, heartbeats to quiet streams (a thread step)."""
        try:
            changes = self.feed.since(self._cursor)
            gap = False
        except FeedGap:
            changes, gap = [], True
        entries = self._entries(changes)
        progress: list[tuple[str, str, dict[str, Any]]] = []
        if now >= self._next_progress:
            self._next_progress = now + self.progress_seconds
            if self._subscriptions:
                progress = self._progress()
        with self._lock:
            if gap:
                self._skip_to(self.feed.cursor())
            if entries:
                self._log.extend(entries)
                self._cursor = entries[-1].seq
                self._log_start = max(self._log_start, self._log[0].seq - 1)
            if not self._subscriptions:
                return
            # Progress carries the last change's number: a client resuming from it has missed nothing.
            progress_frames = [_Entry(self._cursor, job_id, user_id, sse_frame("progress", data, self._cursor))
                               for job_id, user_id, data in progress]
            self._fan_out(entries, progress_frames, now)

    def _entries(self, changes: list[Any]) -> list[_Entry]:
        """Encode each change once, with the job's view as it is now (None once it is gone)."""
        views: dict[str, dict[str, Any] | None] = {}
        entries = []
        for change in changes:
            if change.job_id not in views:
                try:
                    views[change.job_id] = self.engine.get(change.job_id)
                except JobNotFound:
                    views[change.job_id] = None
            data = {"kind": change.kind, "seq": change.seq, "job_id": change.job_id, "user_id": change.user_id,
                    "version": change.version, "at": iso(change.at), "job": views[change.job_id]}
            entries.append(_Entry(change.seq, change.job_id, change.user_id,
                                  sse_frame(change.kind, data, change.seq)))
        return entries

    def _progress(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Return (job id, user id, event data) for each running job whose whole-percent progress moved past 0."""
        sent = self._progress_sent
        running = self.engine.running()
        now = iso(self.engine.now())
        entries = []
        for view in running:
            # 0 % is what the started or retried event already said.
            if view["progress"] and sent.get(view["job_id"]) != view["progress"]:
                data = {"kind": "progress", "job_id": view["job_id"], "user_id": view["user_id"],
                        "version": view["version"], "at": now, "job": view}
                entries.append((view["job_id"], view["user_id"], data))
        self._progress_sent = {view["job_id"]: view["progress"] for view in running}
        return entries

    def _skip_to(self, cursor: int) -> None:
        """The feed dropped changes the hub had not read: start again at `cursor`; reset whoever missed some."""
        self._log.clear()
        self._cursor = self._log_start = cursor
        reset = sse_frame("reset", {"reason": "too_old", "cursor": cursor}, cursor)
        for subscription in self._subscriptions:
            if subscription.after < cursor:
                subscription.after = cursor
                subscription.replace(reset)

    def _fan_out(self, entries: list[_Entry], progress: list[_Entry], now: float) -> None:
        """Give every stream its bytes and wake it: sync readers one by one, each event loop once (hub lock).

        Streams that show everything and are level with the hub share one chunk, joined once per batch.
        """
        shared = b"".join([*(e.frame for e in entries), *(p.frame for p in progress)])
        quiet = now - self.heartbeat_seconds
        first = entries[0].seq if entries else None
        cursor = self._cursor
        loops: dict[asyncio.AbstractEventLoop, list[AsyncSubscription]] = {}
        for subscription in self._subscriptions:
            filters, after = subscription.filters, subscription.after
            if filters.everything and after <= cursor and (first is None or after < first):
                chunk = shared
            else:
                frames = [e.frame for e in entries if e.seq > after and filters.matches(e.job_id, e.user_id)]
                if after <= cursor:
                    frames += [p.frame for p in progress if filters.matches(p.job_id, p.user_id)]
                chunk = b"".join(frames)
            subscription.after = max(after, cursor)
            if not chunk:
                if subscription.last_sent > quiet:
                    continue
                chunk = HEARTBEAT
            subscription.last_sent = now
            if not subscription.push(chunk, self.backlog_bytes):
                subscription.replace(sse_frame("reset", {"reason": "behind", "cursor": cursor}, cursor))
            if isinstance(subscription, AsyncSubscription):
                loops.setdefault(subscription.loop, []).append(subscription)
            else:
                subscription.wake()
        for loop, waiting in loops.items():
            try:
                loop.call_soon_threadsafe(_wake_all, waiting)
            except RuntimeError:  # the loop is closed: its streams are gone
                for subscription in waiting:
                    self._subscriptions.pop(subscription, None)


def _wake_all(subscriptions: list[AsyncSubscription]) -> None:
    for subscription in subscriptions:
        subscription.wake()


# ------------------------------------------------------------------------------------------------ async servers


#: The headers of a stream's answer (the Flask view's, less what its after-request hook adds).
STREAM_HEADERS = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Accel-Buffering", "no"),  # a proxy such as nginx must not hold events back
    ("X-Content-Type-Options", "nosniff"),
]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request for a stream answered at once: status, headers and a problem+json body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def too_many_streams_detail(cap: int) -> str:
    """Say why a stream was refused."""
    return (f"{cap} event streams are open (MAX_EVENT_STREAMS); retry later, or poll GET /queue and "
            "GET /status/<id> instead.")


def open_async(hub: EventHub, max_streams: int, method: str, query_string: str,
               last_event_id: str | None) -> AsyncSubscription | Refusal:
    """Decide a request for /events in an async server: an open stream on this loop, or a problem+json answer.

    HEAD is answered with the stream's headers and no stream. Call it from a coroutine.
    """
    if method not in ("GET", "HEAD"):
        return _refusal(405, "method_not_allowed", f"{method} is not allowed on /events; allowed: GET, HEAD.",
                        [("Allow", "GET, HEAD")])
    try:
        request = parse_request(dict(parse_qsl(query_string, keep_blank_values=True)), last_event_id)
    except StreamRequestError as e:
        return _refusal(e.status, e.code, e.detail)
    if method == "HEAD":
        return Refusal(200, STREAM_HEADERS, b"")
    try:
        return hub.subscribe_async(request.filters, request.last_event_id, max_streams=max_streams)
    except TooManyStreams:
        return _refusal(503, "too_many_streams", too_many_streams_detail(max_streams), [("Retry-After", "5")],
                        retry_after=5)


def _refusal(status: int, code: str, detail: str, headers: list[tuple[str, str]] | None = None,
             **extra: Any) -> Refusal:
    body = orjson.dumps({"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                         "detail": detail, "code": code, **extra})
    return Refusal(status, [("Content-Type", "application/problem+json"), ("X-Content-Type-Options", "nosniff"),
                            ("Cache-Control", "no-store"), *(headers or [])], body)


async def send_stream(subscription: AsyncSubscription, send: Callable[[bytes], Awaitable[None]],
                      disconnected: Awaitable[Any]) -> bool:
    """Send the stream's chunks until it ends or the client leaves; tell whether the server ended it."""

    def left(_: object) -> None:
        subscription.close()
        subscription.end()  # wakes the reader now rather than at the next heartbeat

    gone = asyncio.ensure_future(disconnected)  # a task of its own: cancelled unstarted, it leaves no warning
    gone.add_done_callback(left)
    try:
        while (frames := await subscription.atake()) is not None:
            await send(b"".join(frames))
        return not gone.done()
    except (OSError, RuntimeError):  # the client went away while a chunk was being sent
        return False
    finally:
        gone.remove_done_callback(left)
        gone.cancel()
        subscription.close()
