"""The bridge between granian's RSGI interface and the app: async routes in the event loop, WSGI in threads.

`Bridge` is an RSGI application (granian's native async interface). For each request it:

1. offers it to the async routes, in order (`AsyncRoute.matches`, cheap and non-blocking); the first that
   matches handles it in the event loop and may hand it back (`handle` returns False);
2. otherwise reads the body within the route's limit (`body_limit(method, path)`): a Content-Length over
   it is refused with 413 before a byte is read, a chunked body is cut off at the limit; a route that takes
   more than STREAM_BODIES_ABOVE (an upload) gets its body as it arrives (`BodyPipe`), never whole in memory;
3. runs the WSGI app in a thread pool (`threads`); a `heavy` request (a full listing) runs in a pool of its
   own, at most `max_heavy` at once, so light requests never queue behind them; more get 503 + Retry-After.

Errors made here (413, 503, 500 if the WSGI app breaks the protocol) are problem+json, as the app's are.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any, Protocol

import orjson

log = logging.getLogger("server")

COMMON_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))
UNEXPECTED = "The server hit an unexpected error; it has been logged."


class Request:
    """What an async route sees of a request: method, path, raw query string, headers, client address."""

    __slots__ = ("_scope", "arrived_at", "method", "path", "query_string", "received", "user_id")

    def __init__(self, scope: Any) -> None:
        self._scope = scope
        self.method: str = scope.method
        self.path: str = scope.path  # percent-decoded
        self.query_string: str = scope.query_string  # raw, as sent
        self.received = time.perf_counter()
        self.arrived_at: float | None = None  # the simulation's time at arrival, for a route that records it
        self.user_id: str | None = None  # who sent it, when a route knows better than X-User-Id (an API key's user)

    def header(self, name: str) -> str | None:
        """Return the first value of header `name` (lower-case), or None."""
        return self._scope.headers.get(name)  # type: ignore[no-any-return]

    def header_values(self, name: str) -> list[str]:
        """Return every value of header `name` (lower-case), in order (a repeated header has several)."""
        return [value for key, value in self._scope.headers.items() if key == name]

    def headers(self) -> list[tuple[str, str]]:
        """Return every header as (lower-case name, value), repeated ones included."""
        return list(self._scope.headers.items())

    @property
    def remote_addr(self) -> str:
        """Return the client's address (without the port)."""
        return str(self._scope.client).rpartition(":")[0].strip("[]")


class Stream:
    """A streamed answer: send pieces as they are ready (granian sends them as they come)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    async def send(self, data: bytes) -> None:
        """Send one piece of the body; raise ConnectionError when the client has gone."""
        try:
            await self._transport.send_bytes(data)
        except Exception as error:  # granian's protocol errors: the connection is closed
            raise ConnectionError(str(error)) from error


class Responder:
    """How an async route answers: once, whole (`send`) or streamed (`stream`); `disconnected` waits for the client."""

    __slots__ = ("_proto", "answered")

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self.answered = False

    def send(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        """Send a whole answer (headers: Content-Type and the rest; nosniff and no-store are added)."""
        self.answered = True
        self._proto.response_bytes(status, [*COMMON_HEADERS, *headers], body)

    @staticmethod
    def headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Return `headers` with nosniff and no-store: a list `send_prepared` may send to many clients."""
        return [*COMMON_HEADERS, *headers]

    def send_prepared(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send a whole answer whose headers came from `headers()` (shared by a wake's many answers: no copy)."""
        self.answered = True
        self._proto.response_bytes(status, headers, body)

    def stream(self, status: int, headers: Sequence[tuple[str, str]]) -> Stream:
        """Start a streamed answer (server-sent events, a long listing) and return where to send its pieces."""
        self.answered = True
        return Stream(self._proto.response_stream(status, [*COMMON_HEADERS, *headers]))

    def problem(self, status: int, code: str, detail: str, headers: Sequence[tuple[str, str]] = (),
                **extra: Any) -> None:
        """Send an RFC 9457 problem+json answer (`extra`: more members, such as retry_after)."""
        body = problem_body(status, code, detail, **extra)
        self.send(status, [("Content-Type", "application/problem+json"), *headers], body)

    async def disconnected(self) -> None:
        """Return once the client has closed its connection (a stream's way to learn it may stop)."""
        await self._proto.client_disconnect()


class AsyncRoute(Protocol):
    """Requests answered in the event loop, holding no thread while they wait (see `simulator.serve`)."""

    def matches(self, request: Request) -> bool:
        """Tell, cheaply and without blocking, whether this route takes the request (runs on every request)."""

    async def handle(self, request: Request, respond: Responder) -> bool:
        """Answer the request through `respond`, or return False (having sent nothing) to hand it to the WSGI app."""

    def release(self) -> None:
        """Answer every held request now, and every later one at once (the server is stopping)."""


def problem_body(status: int, code: str, detail: str, **extra: Any) -> bytes:
    """Return an RFC 9457 problem document, as the app's error handler makes them."""
    return orjson.dumps({"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                         "detail": detail, "code": code, **extra})


#: How the bridge words an error it answers itself, as the app would for that path:
#: (path, status, code, detail, extra members) -> (Content-Type, body).
ErrorBody = Callable[[str, int, str, str, Mapping[str, Any]], tuple[str, bytes]]


def problem_error(path: str, status: int, code: str, detail: str, extra: Mapping[str, Any]) -> tuple[str, bytes]:
    """Word an error as problem+json, whatever the path (the bridge's default)."""
    return "application/problem+json", problem_body(status, code, detail, **extra)


class _BodyTooLarge(OSError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


#: A route whose body limit is above this (an upload) reads its body as it arrives, never whole in memory.
STREAM_BODIES_ABOVE = 1 << 20
#: Pieces of a streamed body received but not yet read by the app: the receiving waits beyond that.
PIPE_PIECES = 16


class BodyPipe(io.RawIOBase):
    """A request body the WSGI app reads in its thread while the event loop is still receiving it.

    The event loop `put`s pieces (bytes; None at the end; an exception to raise in the reader); it waits
    while PIPE_PIECES are unread, so a slow reader slows the upload instead of filling memory. When the
    app is done, `abandon` drops what is left and lets the receiving stop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._ready = threading.Condition()
        self._pieces: collections.deque[bytes | BaseException | None] = collections.deque()
        self._room = asyncio.Event()
        self._current = memoryview(b"")
        self._ended = False
        self._abandoned = False

    # -------------------------------------------------------------------------------- event loop side

    async def put(self, piece: bytes | BaseException | None) -> bool:
        """Hand a piece to the reader, waiting for room; False once the app has let go of the body."""
        while True:
            with self._ready:
                if self._abandoned:
                    return False
                if len(self._pieces) < PIPE_PIECES:
                    self._pieces.append(piece)
                    self._ready.notify()
                    return True
                self._room.clear()
            await self._room.wait()

    def abandon(self) -> None:
        """Drop what the app did not read and stop the receiving (the app has answered)."""
        with self._ready:
            self._abandoned = True
            self._pieces.clear()
            self._ready.notify_all()
        self._room.set()

    # ------------------------------------------------------------------------------------ thread side

    def readable(self) -> bool:
        """Tell that this is a readable stream."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Copy the next bytes of the body into `buffer`; 0 at its end; raise what the receiving raised."""
        while not self._current:
            if self._ended:
                return 0
            with self._ready:
                while not self._pieces and not self._abandoned:
                    self._ready.wait()
                piece = self._pieces.popleft() if self._pieces else None
            self._loop.call_soon_threadsafe(self._room.set)
            if piece is None:
                self._ended = True
                return 0
            if isinstance(piece, BaseException):
                self._ended = True
                raise piece
            self._current = memoryview(piece)
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size



class Bridge:
    """An RSGI application: async routes first, then the WSGI app in a thread pool (see the module docstring)."""

    def __init__(
        self,
        wsgi_app: Callable[..., Any],
        *,
        routes: Sequence[AsyncRoute] = (),
        threads: int = 8,
        body_limit: Callable[[str, str], int] = lambda method, path: 64 * 1024,
        heavy: Callable[[Request], bool] | None = None,
        max_heavy: int = 2,
        error_body: ErrorBody = problem_error,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.error_body = error_body
        self.routes = tuple(routes)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")
        self.body_limit = body_limit
        self.heavy = heavy
        self.max_heavy = max_heavy
        self.heavy_pool = ThreadPoolExecutor(max_workers=max_heavy, thread_name_prefix="wsgi-heavy")
        self.heavy_running = 0
        self._base_environ: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }

    def release(self) -> None:
        """Tell every async route that the server is stopping."""
        for route in self.routes:
            route.release()

    def shutdown(self) -> None:
        """Stop the thread pools (requests still in them finish; nothing new starts)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.heavy_pool.shutdown(wait=False, cancel_futures=True)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        """Serve one HTTP request (RSGI's entry point)."""
        if scope.proto != "http":
            return
        request = Request(scope)
        for route in self.routes:
            if route.matches(request):
                respond = Responder(proto)
                try:
                    if await route.handle(request, respond) or respond.answered:
                        return
                except Exception:
                    log.exception("async route %s failed on %s %s", type(route).__name__, request.method, request.path)
                    if not respond.answered:
                        respond.problem(500, "internal_error", UNEXPECTED)
                    return
                break
        limit = self.body_limit(request.method, request.path)
        pump: asyncio.Task[None] | None = None
        try:
            if limit > STREAM_BODIES_ABOVE and self._has_body(request, limit):
                pipe = BodyPipe(asyncio.get_running_loop())
                pump = asyncio.create_task(self._pump(proto, pipe, limit))
                environ = self._environ(scope, request, b"", stream=pipe)
            else:
                environ = self._environ(scope, request, await self._read_body(request, proto, limit))
        except _BodyTooLarge as too_large:
            detail = f"The request body is larger than {too_large.limit} bytes."
            self._refuse(proto, request.path, 413, "request_entity_too_large", detail, [("Connection", "close")])
            return
        if pump is not None:
            try:
                await self._respond(proto, environ, self.pool)
            finally:
                environ["wsgi.input"].raw.abandon()
                pump.cancel()
            return
        if self.heavy is None or not self.heavy(request):
            await self._respond(proto, environ, self.pool)
            return
        if self.heavy_running >= self.max_heavy:
            detail = (f"{self.max_heavy} full listings are being made; try again in a second, "
                      "or ask for a page (?limit=).")
            self._refuse(proto, request.path, 503, "busy", detail, [("Retry-After", "1")], retry_after=1)
            return
        self.heavy_running += 1
        try:
            await self._respond(proto, environ, self.heavy_pool)
        finally:
            self.heavy_running -= 1

    def _refuse(self, proto: Any, path: str, status: int, code: str, detail: str,
                headers: Sequence[tuple[str, str]] = (), **extra: Any) -> None:
        """Answer an error the bridge decides itself, worded as the app words errors on `path` (`error_body`)."""
        content_type, body = self.error_body(path, status, code, detail, extra)
        Responder(proto).send(status, [("Content-Type", content_type), *headers], body)

    async def _respond(self, proto: Any, environ: dict[str, Any], pool: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        try:
            status, headers, whole, result = await loop.run_in_executor(pool, self._call, environ)
        except Exception:
            log.exception("the WSGI app failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            self._refuse(proto, environ["PATH_INFO"], 500, "internal_error", UNEXPECTED)
            return
        if whole is not None:
            proto.response_bytes(status, headers, whole)
            return
        stream = Stream(proto.response_stream(status, headers))
        chunks = iter(result)
        try:
            while (chunk := await loop.run_in_executor(pool, _next_chunk, chunks)) is not None:
                await stream.send(chunk)
        except ConnectionError:
            log.info("%s %s: the client left during a streamed answer", environ["REQUEST_METHOD"],
                     environ["PATH_INFO"])
        finally:
            await loop.run_in_executor(pool, _close, result)

    @staticmethod
    def _has_body(request: Request, limit: int) -> bool:
        """Tell whether the request sends a body to stream (raise _BodyTooLarge for a Content-Length over `limit`)."""
        length = request.header("content-length")
        if length is not None and length.isdigit():
            if int(length) > limit:
                raise _BodyTooLarge(limit)  # refused before a byte of it is read
            return int(length) > 0
        return (request.header("transfer-encoding") or "").lower() == "chunked"

    @staticmethod
    async def _pump(proto: Any, pipe: BodyPipe, limit: int) -> None:
        """Receive a streamed body into `pipe`, piece by piece, cutting it off past `limit`."""
        size = 0
        try:
            async for piece in proto:
                size += len(piece)
                if size > limit:
                    await pipe.put(_BodyTooLarge(limit))
                    return
                if not await pipe.put(bytes(piece)):
                    return  # the app answered without reading the rest
            await pipe.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the client went away mid-body
            await pipe.put(ConnectionError(f"the request body ended early: {error}"))

    async def _read_body(self, request: Request, proto: Any, limit: int) -> bytes:
        length = request.header("content-length")
        chunked = (request.header("transfer-encoding") or "").lower() == "chunked"
        if length is None and not chunked:
            return b""
        if length is not None:
            if not length.isdigit():
                return b""  # granian refuses a malformed Content-Length itself; never read an unknown length
            if int(length) > limit:
                raise _BodyTooLarge(limit)  # refused before a byte of it is read
            return await proto() if int(length) else b""
        parts, size = [], 0
        async for part in proto:
            size += len(part)
            if size > limit:
                raise _BodyTooLarge(limit)  # cut off at the limit
            parts.append(part)
        return b"".join(parts)

    def _environ(self, scope: Any, request: Request, body: bytes, stream: BodyPipe | None = None) -> dict[str, Any]:
        host, _, port = scope.server.rpartition(":")
        path = request.path
        environ = {
            **self._base_environ,
            "REQUEST_METHOD": request.method,
            # WSGI carries the path as bytes in a latin-1 str; granian hands it over decoded.
            "PATH_INFO": path if path.isascii() else path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": request.query_string,
            "SERVER_NAME": host.strip("[]"),
            "SERVER_PORT": port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": request.remote_addr,
            "REMOTE_PORT": scope.client.rpartition(":")[2],
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body) if stream is None else io.BufferedReader(stream, 1 << 16),
            "CONTENT_LENGTH": str(len(body)) if stream is None and body else "",
        }
        if stream is not None and (request.header("content-length") or "").isdigit():
            environ["CONTENT_LENGTH"] = request.header("content-length")
        for name, value in scope.headers.items():
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
            elif name not in ("content-length", "transfer-encoding"):
                key = "HTTP_" + name.upper().replace("-", "_")
                # A repeated header is joined with commas, as every WSGI server does (RFC 9110 §5.3).
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes | None, Iterable[bytes]]:
        """Run the WSGI app (in a pool thread); return status, headers, and the whole body or None to stream it."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = [int(status[:3]), headers]

        result = self.wsgi_app(environ, start_response)
        # An answer that says its length is whole already; one that does not (a streamed listing) is
        # made piece by piece in the pool while granian sends what came before.
        if isinstance(result, (list, tuple)) or any(name.lower() == "content-length" for name, _ in started[1]):
            try:
                return started[0], started[1], b"".join(result), result
            finally:
                _close(result)
        return started[0], started[1], None, result


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    for chunk in chunks:
        if chunk:
            return chunk
    return None


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()
