"""How `python server.py` serves the app: granian's Rust HTTP front end, embedded in this process.

Why (measured side by side in `bench/serving.py`; BENCHMARKS.md, Serving): granian parses HTTP, holds
idle connections and writes answers in Rust, so ten thousand open sockets cost no thread and no
`select()` slot. Embedded through its RSGI interface (`simulator.rsgi.Bridge`), it runs in this
process: the ticker started by `main` drives the same engine the requests read, and the signals are
ours, so SIGTERM can release held waits. The Flask app runs in a pool of THREADS threads; full listings
in a pool of their own (at most MAX_HEAVY at once, 503 + Retry-After beyond); requests that mostly
wait (long-polls) are answered by async routes in the event loop, holding no thread at all.

What `serve` guarantees:

- one line `Serving on http://HOST:PORT` on stdout, flushed, once the port accepts connections (the
  real port when PORT is 0); a port in use: one line naming it on stderr, and `serve` returns 2;
- the soft RLIMIT_NOFILE raised to the hard limit. The connection limit is that limit less
  RESERVED_FDS (granian's `backpressure`: it takes a connection only with a free place); beyond it
  new connections wait in the kernel's listen backlog (BACKLOG) until one closes — granian cannot
  refuse them with a clean close — and the server keeps serving the others, never crashing;
- a body over the route's limit (`simulator.http.bodies.body_limit`) refused with 413 problem+json
  from its Content-Length before a byte is read, a chunked one cut off at the limit;
- SIGTERM or SIGINT: no new connections, every async route released (held long-polls answered at
  once), `on_shutdown()` (the app's `release_waiters`: the change feed closes), requests in flight
  finish (for at most GRACE seconds), and `serve` returns 0;
- errors that granian answers itself, before Python sees the request (a malformed request line or
  header: 400 with an empty body), cannot be problem+json: granian has no hook for them. Everything
  that reaches Python is answered with problem+json, by the app or by the bridge.

Port 0 without a race: a placeholder socket with SO_REUSEPORT is bound first (to PORT, or to a port the
kernel picks), never listening; granian binds its listener to the same port (it sets SO_REUSEPORT too);
once that accepts a connection, the placeholder is closed. The port is never free in between, and
nothing is ever accepted on the placeholder. A fixed PORT is first tried with SO_REUSEADDR alone (so an
earlier server's connections in TIME_WAIT do not count), which fails beside a listener and beside a
placeholder: a port held by anyone, another `python server.py` starting or running included, is reported
as busy, never shared.

Several processes on one port (`--workers`, `simulator.workers`): `serve(..., reuse_port=True)` skips
that probe and joins the port with SO_REUSEPORT, beside the placeholder its parent holds and the other
workers' listeners; the kernel spreads new connections over the processes that listen.

**Async routes: how a long-lived route plugs in** (`simulator.http.eventstream` serves `GET /events` so).
An async route is an object with three methods (`simulator.rsgi.AsyncRoute`):

    class EventStreamRoute:
        def __init__(self, simulator: Simulator, follower: FeedFollower) -> None:
            follower.subscribe(self.prepare, self.deliver)  # prepare: follower thread; deliver: event loop

        def matches(self, request: Request) -> bool:  # on every request: cheap, no I/O, no lock
            return request.method == "GET" and request.path == "/events"

        async def handle(self, request: Request, respond: Responder) -> bool:
            stream = respond.stream(200, [("Content-Type", "text/event-stream")])
            ...  # await a queue that `deliver` fills; `await stream.send(b"data: ...\\n\\n")`;
            return True  # ConnectionError from send, or `await respond.disconnected()`: the client left

        def release(self) -> None:  # the server is stopping: end every stream now
            ...

and it is registered by adding it to the list `simulator.http.aio.async_routes(app, loop)` returns
(`return [LongPollRoute(simulator, follower), EventStreamRoute(simulator, follower)]`); `main` passes
that function to `serve`, which calls it once, inside the running event loop, before the port opens.
The routes are asked in order; the first whose `matches` is true gets the request. Rules:

- `handle` runs in the event loop, so it must never block: read the engine in `prepare` (the
  follower's one thread, `simulator.follow.FeedFollower`: it gets every batch of `ChangeFeed`
  changes, or None after a gap, and returns what `deliver` gets in the loop) or through
  `loop.run_in_executor`; never `feed.wait` or a lock the store holds;
- `handle` may return False having sent nothing, to hand the request to the Flask app (whose view
  stays the fallback under other WSGI servers); an exception in it is logged and answered 500;
- `Request` gives `method`, `path` (decoded), `query_string` (raw), `header(name)`,
  `header_values(name)` (lower-case names; a repeated header has several values), `remote_addr`,
  `received` (`time.perf_counter()` at arrival); `Responder` answers once: `send(status, headers,
  body)`, `problem(status, code, detail, headers, **extra)` (problem+json), or `stream(status,
  headers)` whose `await send(bytes)` raises ConnectionError once the client has gone; `await
  respond.disconnected()` returns when it closes. Every answer gets nosniff and no-store;
- a route writes its own access-log line (`simulator.http.accesslog.log_access`);
- `release()` is called on SIGTERM before the server stops: every `handle` must return soon after
  (the server waits GRACE seconds for requests in flight), and later requests should be refused or
  handed back;
- granian's streams have no flow control: bytes sent to a client that does not read are buffered in
  memory until it closes, so a stream must bound what it sends to a slow client (e.g. a bounded queue
  per subscriber, and drop the subscriber when it is full).

Other servers, for those who want them (the app factory is an ordinary WSGI app; `simulator.wsgi`
builds it and starts the ticker, which a server of its own needs):

    granian --interface wsgi --blocking-threads 8 --port 4777 simulator.wsgi:app
    gunicorn -w 1 --threads 64 -b 127.0.0.1:4777 simulator.wsgi:app

Use one worker (`-w 1`, granian's default): the jobs live in the worker's memory, and two workers would
be two simulations. Under them a held long-poll holds one of their threads (set MAX_LONG_POLLS below
their thread count), and SIGTERM does not release held waits (they end within MAX_WAIT).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from simulator.rsgi import AsyncRoute, Bridge, ErrorBody, Request, problem_error
from simulator.settings import Settings

log = logging.getLogger("server")

#: File descriptors kept back from the connection limit: the log, the store, the thread pools' needs.
RESERVED_FDS = 64
#: The kernel's queue of connections not yet accepted (Linux caps it at net.core.somaxconn).
BACKLOG = 4096
#: Full listings made at once; more are answered 503 with Retry-After at once.
MAX_HEAVY = 2
#: Seconds requests in flight may take to finish after SIGTERM.
GRACE = 10.0

Routes = Callable[[asyncio.AbstractEventLoop], Sequence[AsyncRoute]]


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as far as the OS allows); return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if sys.platform == "darwin":
        wanted = min(wanted, 10_240 * 25)  # macOS refuses more than kern.maxfilesperproc; RLIM_INFINITY fails
    for attempt in (wanted, 10_240):  # 10 240: OPEN_MAX, what macOS accepts when the first try is refused
        if attempt <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (attempt, hard))
            return attempt
        except (ValueError, OSError):
            continue
    return soft


def connection_limit(open_files: int) -> int:
    """Return the connection limit: the open-files limit less RESERVED_FDS."""
    return max(16, open_files - RESERVED_FDS)


class PortBusy(Exception):
    """The address cannot be listened on; the message says why."""


def hold_port(host: str, port: int, *, join: bool = False) -> socket.socket:
    """Bind a placeholder socket with SO_REUSEPORT to (host, port) (0: a port the kernel picks), never listening.

    Granian binds its listener beside it on the same port; closing the placeholder afterwards leaves the
    port to granian alone, without a moment in which anyone else could take it. `join`: the port is meant
    to be shared (`--workers`), so it is not first checked to be free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port and not join:
        # SO_REUSEADDR lets it bind over connections of an earlier server still in TIME_WAIT, but not beside a
        # listener, nor beside another server's placeholder (which lacks SO_REUSEADDR); without SO_REUSEPORT
        # it cannot join either: another `python server.py` on the port, starting or running, makes it fail.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _bind(probe, host, port)
    holder = socket.socket(family, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # granian's listener sets it too: it may join
        _bind(holder, host, port)
    except BaseException:
        holder.close()
        raise
    return holder


def _bind(sock: socket.socket, host: str, port: int) -> None:
    try:
        sock.bind((host, port))
    except OSError as e:
        reason = "it is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise PortBusy(f"Cannot listen on {host}:{port}: {reason}.") from e


def serve(
    app: Callable[..., Any],
    settings: Settings,
    on_shutdown: Callable[[], None],
    *,
    routes: Routes = lambda loop: (),
    heavy: Callable[[Request], bool] | None = None,
    body_limit: Callable[[str, str], int] | None = None,
    announce: Callable[[str], None] | None = None,
    error_body: ErrorBody = problem_error,
    reuse_port: bool = False,
) -> int:
    """Serve the WSGI `app` on HOST:PORT until SIGTERM or SIGINT, then shut down cleanly; return the exit code.

    `routes(loop)` returns the async routes, made in the running event loop; `heavy(request)` marks the
    requests (full listings) run in a pool of MAX_HEAVY threads of their own; `body_limit(method, path)`
    is a route's body limit (default: the app's MAX_CONTENT_LENGTH); `announce` prints the one line.
    `reuse_port` shares the port with other processes that listen on it (SO_REUSEPORT; `--workers`).
    `error_body` words the errors the bridge answers itself (a body over the limit, busy, a failure) as the
    app words them on that path (default: problem+json).
    """
    open_files = raise_open_files_limit()
    limit = connection_limit(open_files)
    try:
        holder = hold_port(settings.HOST, settings.PORT, join=reuse_port)
    except PortBusy as e:
        print(e, file=sys.stderr, flush=True)
        return 2
    if body_limit is None:
        default = int(getattr(app, "config", {}).get("MAX_CONTENT_LENGTH") or 64 * 1024)
        body_limit = lambda method, path: default  # noqa: E731 - one default, named for the Bridge
    say = announce or (lambda line: print(line, flush=True))
    port = holder.getsockname()[1]
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve(app, settings, port, holder, limit, routes, heavy, body_limit, on_shutdown, say,
                                     error_body))
    finally:
        holder.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return uvloop's loop factory where it is installed: it hands requests to the threads and back faster."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


async def _serve(app: Callable[..., Any], settings: Settings, port: int, holder: socket.socket, limit: int,
                 routes: Routes, heavy: Callable[[Request], bool] | None, body_limit: Callable[[str, str], int],
                 on_shutdown: Callable[[], None], say: Callable[[str], None], error_body: ErrorBody) -> int:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    loop = asyncio.get_running_loop()
    bridge = Bridge(app, routes=routes(loop), threads=settings.THREADS, body_limit=body_limit, heavy=heavy,
                    max_heavy=MAX_HEAVY, error_body=error_body)
    host = settings.HOST
    # granian logs its start-up and warns that embedding is experimental; our one line says we are up.
    logging.getLogger("granian").setLevel(logging.ERROR)
    server = Server(bridge, address=host, port=port, interface=Interfaces.RSGI, backlog=BACKLOG,
                    backpressure=limit, log_enabled=False, websockets=False)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(server.serve())
    try:
        await _until_listening(host, port, serving)
    except OSError as e:
        print(f"Cannot listen on {host}:{port}: {e}", file=sys.stderr, flush=True)
        return 2
    holder.close()  # granian's listener holds the port now
    say(f"Serving on http://{f'[{host}]' if ':' in host else host}:{port}")
    log.info("accepting up to %d connections (open files %d less %d reserved)", limit, limit + RESERVED_FDS,
             RESERVED_FDS)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        stopper.cancel()
        log.error("the HTTP server stopped by itself")
        return 1
    log.info("stopping: no new connections; finishing requests in flight")
    bridge.release()  # held long-polls answered at once
    await loop.run_in_executor(None, on_shutdown)  # the change feed closes: every waiter of the app returns
    server.stop()
    try:
        await asyncio.wait_for(asyncio.shield(serving), GRACE)
    except TimeoutError:
        log.warning("requests still in flight after %g s: stopping anyway", GRACE)
    bridge.shutdown()
    # granian's Rust threads finish closing connections after its task ends; an interpreter shutting
    # down under them made it panic once in a few runs (a connection it had answered 400 still closing).
    await asyncio.sleep(0.2)
    return 0


async def _until_listening(host: str, port: int, serving: asyncio.Task[Any], timeout: float = 15.0) -> None:
    """Wait until granian accepts connections on the port; raise OSError if it stopped or did not start in time."""
    connect_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - a mapping
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serving.done():
            error = serving.exception()
            raise OSError(f"the HTTP server stopped while starting: {error or 'no reason given'}")
        try:
            _, writer = await asyncio.open_connection(connect_host, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return
    raise OSError(f"the HTTP server did not listen within {timeout:g} s")
