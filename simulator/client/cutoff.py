"""A total time budget for one request made with `requests`: connecting, sending and every read together.

requests' read timeout applies to each read, so a server that trickles its answer a byte at a time (or
sends nothing after the headers, or headers one byte at a time) holds a call for as long as it likes.
urllib3's documentation suggests a watcher that cuts a slow request off; this is that watcher:

- `DeadlineAdapter` is a requests transport adapter whose connections (urllib3's own classes, subclassed
  through urllib3's `ConnectionCls` extension point) tell the request in flight on their thread which
  socket they use;
- `Cutoff` is that request's watcher: at the end of its budget a timer shuts the socket down, which
  wakes any blocked read at once; the request then fails, and `fired` tells the caller why.

Only the public extension points are used: `HTTPAdapter.init_poolmanager` (documented for subclassing),
the pool manager's `pool_classes_by_scheme`, the pools' `ConnectionCls`, `HTTPConnection.request` and
`HTTPConnection.sock`. Not covered: DNS resolution (the resolver ignores socket timeouts) and the reads of a
TLS handshake, which happens before the socket is handed over (each read there is bounded by the connect timeout).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_in_flight = threading.local()


class Cutoff:
    """The watcher of one request: shuts its socket down when the budget is spent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._armed = True
        self.fired = False

    def attach(self, sock: socket.socket | None) -> None:
        """Remember the socket the request uses (cut it at once if the budget is already spent)."""
        with self._lock:
            if not self._armed:
                return
            self._sock = sock
            if self.fired:
                self._shutdown()

    def fire(self) -> None:
        """Cut the request off: shut its socket down, so that a blocked read returns now."""
        with self._lock:
            if not self._armed:
                return
            self.fired = True
            self._shutdown()

    def disarm(self) -> bool:
        """Stop watching (the request is over); return whether it had been cut off."""
        with self._lock:
            self._armed = False
            self._sock = None
            return self.fired

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: nothing left to cut


@contextmanager
def budget(seconds: float) -> Iterator[Cutoff]:
    """Watch the request made on this thread inside the block; cut it off after `seconds`."""
    cutoff = Cutoff()
    timer = threading.Timer(max(0.0, seconds), cutoff.fire)
    timer.daemon = True
    _in_flight.cutoff = cutoff
    timer.start()
    try:
        yield cutoff
    finally:
        timer.cancel()
        cutoff.disarm()
        _in_flight.cutoff = None


class _Watched:
    """Mixin for urllib3 connections: hand the socket to the watcher of the request in flight on this thread."""

    sock: socket.socket | None

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Send the request (connecting first if needed), then hand the socket to this thread's watcher."""
        cutoff: Cutoff | None = getattr(_in_flight, "cutoff", None)
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]  # connects first if needed
        finally:
            if cutoff is not None:
                cutoff.attach(self.sock)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose requests can be cut off by `budget()` (plain and TLS, no proxies)."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        """Build the pool manager, with pools of watched connections."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
