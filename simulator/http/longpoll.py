"""Long-polls (`GET /status/<id>` and `GET /status` with a wait) held in the event loop: no thread per waiter.

The Flask view (`views.jobs.answer_status`) holds a thread for each long-poll it serves. Under `python
server.py` this async route takes them instead (see `simulator.serve`): a held request is a future in
the event loop, grouped by the job it waits for. One thread (`FeedFollower`) follows the change feed;
when a watched job changes it reads the job once, encodes its answer once, and the event loop writes
that same answer to every waiter the change satisfies — 5,000 waiters of one job cost one read and one
encoding, not 5,000 Flask requests.

It answers exactly what the view would: the job's view, `ETag`, `Retry-After` while unfinished,
`Preference-Applied: wait=N` once a wait is honoured, capped by MAX_WAIT and MAX_LONG_POLLS (the same
gate as the view's), injected faults (FAULT_RATE), a job's scripted status faults (simulate), the
delay RESPONSE_DELAY draws for the route, CORS headers (CORS_ORIGINS), the same access-log line and
the same entry in the request journal as the Flask hooks write, and the same API-key rules as
`simulator.http.identity` and the view (`Caller`): in AUTH_MODE=keys a key (or the admin token) is needed and
another user's job is not found; a key that is sent is checked in either mode. Whatever it does not
plainly own it hands back to the Flask app, which answers it as always (problem+json): a malformed
`wait`, `since`, `Prefer` or `X-User-Id`, an unknown or removed job, a wait of 0 or MAX_WAIT=0, and every
request the key rules refuse (no key, a wrong or repeated one, a client refused for wrong keys, another
user's job or X-User-Id) — so their 401, 403, 404 and 429 are the view's own, and a wrong key is counted
once, by the app.

Race-free without holding the store: the feed's cursor is read before the job; a waiter is registered
under the same lock the follower holds while it looks for watched jobs in a batch, and if the follower
has already looked past the cursor, the feed is asked whether the job changed in between.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from simulator.auth.access import AccessDenied, Caller
from simulator.domain import JobError, JobNotFound, ReadFault
from simulator.feed import Change, FeedGap
from simulator.follow import FeedFollower
from simulator.http.accesslog import log_access
from simulator.http.auth import holds_token
from simulator.http.context import Simulator
from simulator.http.cors import cors_headers
from simulator.http.encoding import dumps, job_headers
from simulator.http.errors import ApiError, problem_document
from simulator.http.faults import FAULT_FREE_PATHS, fault_error
from simulator.http.journal import record_outside_flask
from simulator.http.parsing import MAX_ID_LENGTH, MAX_USER_ID_LENGTH, check_token, parse_number, parse_wait
from simulator.http.views.jobs import scripted_fault
from simulator.rsgi import Request, Responder

log = logging.getLogger("server")
JSON = ("Content-Type", "application/json")
HERD = 100  # a wake that answers this many long-polls at once says how long it took, in the log


@dataclass(frozen=True, slots=True)
class Ask:
    """A long-poll as parsed: which job (None: the newest of `who`), how long, since which version."""

    job_id: str | None
    who: str | None
    wait: float
    since: int | None


@dataclass(slots=True, eq=False)  # compared by identity: a watch finds and drops its waiters in O(1)
class Waiter:
    """One held request: what would satisfy it, how to answer it, and the future its handler awaits."""

    since: int
    applied: float  # the wait honoured, seconds (Preference-Applied)
    respond: Responder
    request: Request
    done: asyncio.Future[Answer]
    fault: str | None = None  # an injected fault that strikes after the wait
    delay: float = 0.0  # RESPONSE_DELAY for this request, seconds: its handler sends the answer after it
    extra: tuple[tuple[str, str], ...] = ()  # headers of this request's own (CORS)
    sent: bool = False  # answered already (by the wake that ended the wait)


@dataclass(frozen=True, slots=True)
class Answer:
    """A job's view and its answer, encoded once for every waiter it satisfies (None: the job is gone)."""

    view: dict[str, Any] | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, view: dict[str, Any] | None) -> Answer:
        """Encode a view (or record that the job is gone)."""
        if view is None:
            return cls(None)
        return cls(view, dumps(view), (JSON, *job_headers(view).items()))

    def satisfies(self, since: int) -> bool:
        """Tell whether this answer ends a wait for a version past `since` (a finished or gone job always does)."""
        view = self.view
        return view is None or view["done"] or view["version"] > since


@dataclass
class _Watch:
    waiters: dict[Waiter, None] = field(default_factory=dict)  # in arrival order


class LongPollRoute:
    """An async route (`simulator.rsgi.AsyncRoute`) for `GET /status/<id>` and `GET /status` with a wait."""

    def __init__(self, simulator: Simulator, follower: FeedFollower, *, readers: int = 2) -> None:
        self.simulator = simulator
        self.engine = simulator.engine
        self.feed = simulator.engine.feed
        # Reads of the engine, off the event loop: the store may be held for a moment by a listing's snapshot.
        self.reader = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="long-poll")
        self.watches: dict[str, _Watch] = {}  # by job id; the event loop's alone
        self._watched: set[str] = set()  # the same ids, for the follower's thread, under _lock
        self._examined = self.feed.cursor()  # the follower has looked for watched jobs up to this change
        self._lock = threading.Lock()
        self.released = False
        follower.subscribe(self._prepare, self._deliver)

    # ------------------------------------------------------------------------------------ AsyncRoute

    def matches(self, request: Request) -> bool:
        """Take a GET of /status or /status/<id> that asks to wait (`wait=` in the query or a Prefer header)."""
        if request.method != "GET" or not request.path.startswith("/status"):
            return False
        path = request.path
        if path != "/status" and (path[7:8] != "/" or "/" in path[8:]):
            return False
        return "wait" in request.query_string or request.header("prefer") is not None

    async def handle(self, request: Request, respond: Responder) -> bool:
        """Hold the request until its job moves, the wait ends or the server stops; False: the app answers."""
        ask = self._parse(request)
        settings = self.engine.settings
        if ask is None or ask.wait <= 0 or settings.MAX_WAIT <= 0 or self.released:
            return False
        loop = asyncio.get_running_loop()
        scope = None
        if settings.AUTH_MODE == "keys" or request.header("x-api-key") is not None:
            caller = await loop.run_in_executor(self.reader, self._authenticate, request)  # a key is a store read
            scoped = None if caller is None else self._scoped(ask, caller)
            if caller is None or scoped is None:
                return False  # refused: the app answers 401, 403 or 429 as identity and the view do
            ask, scope = scoped, caller.scope
            request.user_id = None if caller.principal is None else caller.principal.user_id
        request.arrived_at = self.engine.now()
        extra = tuple(cors_headers(settings.CORS_ORIGINS, request.header("origin")).items())
        fault = self._draw_fault(request, settings.FAULT_RATE)
        if fault in ("error_before", "unavailable_before"):
            self._send_fault(request, respond, fault_error(fault), extra)
            return True
        try:
            cursor, view, scripted = await loop.run_in_executor(self.reader, self._read_first, ask, scope)
        except JobError:
            return False  # 404 (another user's job too): the app answers it, problem+json and all
        delay = self._delay(request, settings.RESPONSE_DELAY)
        if scripted is not None:
            await asyncio.sleep(delay)
            self._send_fault(request, respond, scripted_fault(view["job_id"], scripted), extra)
            return True
        gate = self.simulator.long_polls
        if not gate.enter(settings.MAX_LONG_POLLS):
            await asyncio.sleep(delay)
            self._send(request, respond, Answer.of(view), None, extra)  # full (or stopping): at once, as the view does
            return True
        waiter = Waiter(view["version"] if ask.since is None else ask.since, min(ask.wait, settings.MAX_WAIT),
                        respond, request, loop.create_future(), fault, delay, extra)
        try:
            if view["done"] or view["version"] > waiter.since or self.released:
                answer = Answer.of(view)
            else:
                job_id = view["job_id"]
                del view  # a held request keeps nothing of the job (an encoded answer costs orjson's 8 KB buffer)
                answer = await self._hold(job_id, cursor, waiter)
        finally:
            gate.leave()
        if answer.view is None:
            return False  # the job was removed while held: the app answers 404
        if not waiter.sent:
            if fault == "slow_after":
                await asyncio.sleep(self.engine.settings.FAULT_DELAY)  # the work is done; the answer comes late
            await asyncio.sleep(waiter.delay)
            if fault == "error_after":
                self._send_fault(request, respond, fault_error(fault), extra)  # the work is done; the answer is lost
            else:
                self._send(request, respond, answer, waiter.applied, extra)
        return True

    def release(self) -> None:
        """Answer every held long-poll now with its job as it is, and hold no new one (the server is stopping)."""
        self.released = True
        for job_id, watch in list(self.watches.items()):
            self._read_and_answer(job_id, list(watch.waiters))

    # -------------------------------------------------------------------------------------- holding

    async def _hold(self, job_id: str, cursor: int, waiter: Waiter) -> Answer:
        """Wait for the job to move past `waiter.since`, for `waiter.applied` s at most; return its answer."""
        loop = asyncio.get_running_loop()
        watch = self.watches.get(job_id)
        if watch is None:
            watch = self.watches[job_id] = _Watch()
        watch.waiters[waiter] = None
        with self._lock:
            self._watched.add(job_id)
            missed = self._examined > cursor and self._changed_since(job_id, cursor)
        if missed:
            self._read_and_answer(job_id, [waiter])
        timer = loop.call_later(waiter.applied, self._read_and_answer, job_id, [waiter])
        try:
            return await waiter.done
        finally:
            timer.cancel()
            self._forget(job_id, waiter)

    def _changed_since(self, job_id: str, cursor: int) -> bool:
        try:
            return any(change.job_id == job_id for change in self.feed.since(cursor))
        except FeedGap:
            return True

    def _forget(self, job_id: str, waiter: Waiter) -> None:
        watch = self.watches.get(job_id)
        if watch is None:
            return
        watch.waiters.pop(waiter, None)
        if not watch.waiters:
            del self.watches[job_id]
            with self._lock:
                self._watched.discard(job_id)

    def _read_and_answer(self, job_id: str, waiters: list[Waiter]) -> None:
        """Read the job now (off the loop) and answer `waiters` with it, whatever its version (a wait ended)."""
        waiting = [w for w in waiters if not w.done.done()]
        if not waiting:
            return
        read = asyncio.get_running_loop().run_in_executor(self.reader, self._read_answer, job_id)
        read.add_done_callback(lambda done: self._answer(waiting, done.result(), force=True))

    # ----------------------------------------------------------------------- the follower and the loop

    def _prepare(self, changes: Sequence[Change] | None) -> list[tuple[str, Answer]] | None:
        """In the follower's thread: read and encode each watched job that changed (all of them after a gap)."""
        with self._lock:
            if changes is None:
                wanted = set(self._watched)
                self._examined = self.feed.cursor()
            else:
                wanted = {change.job_id for change in changes if change.job_id in self._watched}
                self._examined = changes[-1].seq
        return [(job_id, self._read_answer(job_id)) for job_id in wanted] or None

    def _deliver(self, answers: list[tuple[str, Answer]]) -> None:
        """In the event loop: answer every waiter each fresh answer satisfies."""
        for job_id, answer in answers:
            watch = self.watches.get(job_id)
            if watch is not None:
                self._answer(list(watch.waiters), answer, force=False)

    def _answer(self, waiters: list[Waiter], answer: Answer, *, force: bool) -> None:
        """End the waits `answer` satisfies (all of them when `force`), writing the shared bytes at once; logs later."""
        answered = []
        started, cpu = time.perf_counter(), time.thread_time()
        body = answer.body
        # One header list per wait honoured (and per CORS origin), shared by the waiters that have it.
        headers_for: dict[tuple[float, tuple[tuple[str, str], ...]], list[tuple[str, str]]] = {}
        for waiter in waiters:
            if waiter.done.done() or not (force or answer.satisfies(waiter.since)):
                continue
            if answer.view is not None and waiter.fault is None and not waiter.delay:
                key = (waiter.applied, waiter.extra)
                headers = headers_for.get(key)
                if headers is None:
                    headers = headers_for[key] = waiter.respond.headers(
                        (*answer.headers, ("Preference-Applied", f"wait={waiter.applied:g}"), *waiter.extra))
                waiter.respond.send_prepared(200, headers, body)
                waiter.sent = True
                answered.append(waiter.request)
            waiter.done.set_result(answer)  # the rest (a removed job, a fault) is its handler's to answer
        if len(answered) >= HERD:
            log.info("woke %d long-polls of one job in %.1f ms (%.1f ms of this thread's CPU)", len(answered),
                     (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000)
        if answered:
            # After this turn of the loop: when a job wakes thousands of waiters, every answer goes out first.
            asyncio.get_running_loop().call_soon(self._log, answered, 200)

    # ---------------------------------------------------------------------------------------- reading

    def _read_first(self, ask: Ask, scope: str | None = None) -> tuple[int, dict[str, Any], ReadFault | None]:
        """Return the feed's cursor, then the job's view (the order that makes the wait race-free), and the
        status fault the job's script makes this read answer, if any (counted as one read, as the view does).

        With `scope` (keys mode), another user's job raises JobNotFound before any scripted read is counted.
        """
        cursor = self.feed.cursor()
        if ask.job_id is not None and scope is None:
            scripted = self.engine.take_read_fault(ask.job_id)
            return cursor, self.engine.get(ask.job_id), scripted
        view = self.engine.get(ask.job_id) if ask.job_id is not None else self.engine.newest(ask.who)
        if scope is not None and view["user_id"] != scope:
            raise JobNotFound(f"No job with id {view['job_id']!r}.", job_id=view["job_id"])
        return cursor, view, self.engine.take_read_fault(view["job_id"])

    # ------------------------------------------------------------------------------------------ API keys

    def _authenticate(self, request: Request) -> Caller | None:
        """Return the caller as `simulator.http.identity` sees it, or None when the app must answer instead.

        None for: no key where AUTH_MODE=keys needs one (and no admin token), a repeated or wrong key, and a
        client that sent AUTH_FAILURE_LIMIT wrong keys in the last minute. The app then refuses it as always,
        and counts a wrong key (here it is never counted, so it is counted once).
        """
        simulator = self.simulator
        settings = self.engine.settings
        keys_mode = settings.AUTH_MODE == "keys"
        admin = self._has_admin_token(request)
        presented = request.header_values("x-api-key")
        if not presented:
            return Caller(None, admin, keys_mode) if admin or not keys_mode else None
        client = request.remote_addr or "unknown"
        if len(presented) > 1 or simulator.auth_failures.retry_after(client, settings.AUTH_FAILURE_LIMIT):
            return None
        principal = simulator.keys.verify(presented[0])
        return None if principal is None else Caller(principal, admin, keys_mode)

    def _has_admin_token(self, request: Request) -> bool:
        """Tell whether the request carries the admin token (as `simulator.http.auth.has_admin_token`)."""
        return holds_token(request.header("authorization"), self.simulator.admin_token)

    @staticmethod
    def _scoped(ask: Ask, caller: Caller) -> Ask | None:
        """Return the ask as the caller may make it (GET /status: the key's own newest job), None if refused."""
        if ask.job_id is not None:
            return ask
        declared = ask.who
        if declared is None and caller.principal is not None:
            declared = caller.principal.user_id  # with a key, "my newest job"
        try:
            who = caller.reading_scope(declared)
        except AccessDenied:
            return None  # 403: another user's X-User-Id
        return Ask(None, who, ask.wait, ask.since)

    def _read_answer(self, job_id: str) -> Answer:
        try:
            return Answer.of(self.engine.get(job_id))
        except JobError:
            return Answer.of(None)

    def _send(self, request: Request, respond: Responder, answer: Answer, applied: float | None,
              extra: tuple[tuple[str, str], ...]) -> None:
        headers = answer.headers if applied is None else (*answer.headers, ("Preference-Applied", f"wait={applied:g}"))
        respond.send(200, (*headers, *extra), answer.body)
        self._log([request], 200)

    def _delay(self, request: Request, setting: str) -> float:
        """Return the RESPONSE_DELAY drawn for this request (0 when none applies)."""
        if not setting:
            return 0.0
        template = "/status" if request.path == "/status" else "/status/{job_id}"
        return self.simulator.delays.seconds(setting, request.path, template)

    def _log(self, requests: list[Request], status: int) -> None:
        """Write each answered request's access-log line, request metrics and journal entry (as the Flask hooks do)."""
        now = time.perf_counter()
        simulator = self.simulator
        for request in requests:
            route = "/status" if request.path == "/status" else "/status/{job_id}"
            log_access(request.remote_addr, request.method, request.path, request.query_string, status,
                       now - request.received)
            simulator.metrics.observe_request(route, request.method, status, now - request.received)
            record_outside_flask(
                simulator, method=request.method, path=request.path,
                route=route, raw_query=request.query_string,
                status=status, user_header=request.user_id or request.header("x-user-id"),
                remote_addr=request.remote_addr,
                started=request.received, at=request.arrived_at if request.arrived_at is not None else 0.0)

    # ----------------------------------------------------------------------------------------- faults

    def _draw_fault(self, request: Request, rate: float) -> str | None:
        if rate <= 0 or request.path.startswith(FAULT_FREE_PATHS):
            return None
        kind = self.simulator.faults.draw(rate)
        if kind is not None:
            log.warning("injected fault %s on %s %s", kind, request.method, request.path)
        return kind

    def _send_fault(self, request: Request, respond: Responder, error: ApiError,
                    extra: tuple[tuple[str, str], ...]) -> None:
        body = dumps(problem_document(error.status, error.code, error.detail, **error.extra))
        headers = [("Content-Type", "application/problem+json"), *error.headers.items(), *extra]
        respond.send(error.status, headers, body)
        self._log([request], error.status)

    # ---------------------------------------------------------------------------------------- parsing

    @staticmethod
    def _parse(request: Request) -> Ask | None:
        """Parse the request as the Flask view would; None when anything is off (the view answers it)."""
        query: dict[str, str] = {}
        for name, value in parse_qsl(request.query_string, keep_blank_values=True):
            query.setdefault(name, value)
        path = request.path
        try:
            wait = parse_wait(query.get("wait"), request.header("prefer") or "")
            since = parse_number("since", query.get("since"), integer=True)
            who = None
            if path == "/status":
                users = request.header_values("x-user-id")
                if len(users) > 1:
                    return None
                who = check_token("X-User-Id", users[0], MAX_USER_ID_LENGTH, single=True) if users else None
        except ApiError:
            return None
        job_id = None if path == "/status" else path[8:]
        if wait is None or (job_id is not None and not 0 < len(job_id) <= MAX_ID_LENGTH):
            return None
        return Ask(job_id, who, wait, None if since is None else int(since))
