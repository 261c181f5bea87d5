"""How `python server.py` serves the app: waitress, with a graceful drain on SIGTERM/SIGINT."""

from __future__ import annotations

import _thread
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from simulator.settings import Settings

log = logging.getLogger("server")


def _listeners(server: Any) -> list[Any]:
    """Return waitress's listening servers: itself, or those of a MultiSocketServer (a host with several addresses)."""
    from waitress.server import BaseWSGIServer

    if isinstance(server, BaseWSGIServer):
        return [server]
    return [s for s in server.map.values() if isinstance(s, BaseWSGIServer)]


def _drain(server: Any, on_shutdown: Callable[[], None], drained: threading.Event, grace: float = 10.0) -> None:
    """Stop taking connections, release held long-polls, let requests in flight finish, then stop the loop."""
    listeners = _listeners(server)
    for listener in listeners:
        listener.accepting = False
    on_shutdown()
    dispatcher = server.task_dispatcher
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        busy = dispatcher.queue or dispatcher.active_count > 0
        unsent = any(channel.total_outbufs_len for listener in listeners
                     for channel in list(listener.active_channels.values()))
        if not busy and not unsent:
            break
        time.sleep(0.02)
    drained.set()
    _thread.interrupt_main()  # runs on_signal in the main thread, which now stops the loop


def _quiet_channel_class() -> type:
    """Return a waitress channel that does not ask to be written while its worker holds the output lock.

    Stock waitress reports such a channel writable, fails to take the lock in handle_write, and
    goes round its loop again: with hundreds of held long-polls in the socket map that spin holds
    the GIL and /healthz fell from ~1900 to ~50 req/s (bench/load.py). Relies on waitress 3.0.x
    internals, hence the exact pin in requirements.txt.
    """
    from waitress.channel import HTTPChannel

    class QuietChannel(HTTPChannel):
        def writable(self) -> bool:
            busy_writer = (
                self.requests
                and not (self.will_close or self.close_when_flushed)
                and self.total_outbufs_len <= self.adj.outbuf_high_watermark
            )
            if busy_writer:
                if not self.outbuf_lock.acquire(False):
                    return False  # the worker is writing; it pulls the trigger when done
                self.outbuf_lock.release()
            return bool(super().writable())

    return QuietChannel


def shared_socket(host: str, port: int) -> socket.socket:
    """Return a listening socket bound with SO_REUSEPORT: several server processes can listen on the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: Flask, settings: Settings, on_shutdown: Callable[[], None], *, reuse_port: bool = False) -> int:
    """Serve `app` until SIGTERM or SIGINT, then drain (calling `on_shutdown` first); return the exit code.

    `reuse_port` binds with SO_REUSEPORT, so that several processes share the port (`--workers`).
    """
    import waitress  # imported here so that tests of the app do not need it

    try:
        where: dict[str, Any] = {"host": settings.HOST, "port": settings.PORT}
        if reuse_port:
            where = {"sockets": [shared_socket(settings.HOST, settings.PORT)]}
        server = waitress.create_server(
            app,
            **where,
            threads=settings.THREADS,
            connection_limit=settings.THREADS + 512,
            channel_timeout=max(120, int(settings.MAX_WAIT) + 30),
            ident="translation-simulator",
        )
    except OSError as e:
        print(f"Cannot listen on {settings.HOST}:{settings.PORT}: {e.strerror or e}", file=sys.stderr, flush=True)
        return 2
    quiet_channel = _quiet_channel_class()
    for listener in _listeners(server):
        listener.channel_class = quiet_channel
    for listener in _listeners(server):
        host = listener.effective_host
        print(f"Serving on http://{f'[{host}]' if ':' in host else host}:{listener.effective_port}", flush=True)

    stopping, drained = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if drained.is_set():
            raise KeyboardInterrupt  # leaves server.run()
        if not stopping.is_set():
            stopping.set()
            log.info("%s received: finishing requests in flight", signal.Signals(signum).name)
            threading.Thread(target=_drain, args=(server, on_shutdown, drained), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.task_dispatcher.shutdown(timeout=5)
    return 0
