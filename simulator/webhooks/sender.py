"""One webhook POST: a timeout on the whole exchange, no redirects followed, at most 64 KiB of the answer read.

Built on `http.client` with one kept-alive connection per destination and thread: a delivery costs a
fraction of a millisecond of CPU on loopback, so a burst of a thousand finished jobs is delivered in
about as long as the receiver takes to answer. A connection the receiver closed while idle is reopened
once; any other failure is the attempt's outcome (the deliverer decides about retries).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_ANSWER_BYTES = 64 * 1024
MAX_CONNECTIONS = 32  # kept-alive connections per thread; the one used longest ago is closed first

Destination = tuple[str, str, int | None]  # scheme, host, port


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: the HTTP status (None when there was no answer), why it failed, Retry-After."""

    status: int | None
    error: str | None = None
    retry_after: str | None = None

    @property
    def delivered(self) -> bool:
        """Tell whether the receiver accepted the event (2xx)."""
        return self.status is not None and 200 <= self.status < 300


class Sender:
    """Posts deliveries, keeping one connection per (thread, scheme, host, port)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
        """POST `body` to `url`; never raise, never follow a redirect, give up after `timeout` seconds."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (parts.scheme, parts.hostname or "", parts.port)
        deadline = time.monotonic() + timeout
        for reused in (True, False):
            connection = self._connection(key, timeout, fresh=not reused)
            was_idle = getattr(connection, "sock", None) is not None
            try:
                connection.request("POST", target, body=body, headers=headers)
                return self._answer(connection, deadline)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self._drop(key)
                if was_idle and reused:
                    continue  # the receiver closed the kept-alive connection: once more on a new one
                return Outcome(None, _describe(e))
            except (OSError, http.client.HTTPException) as e:
                self._drop(key)
                return Outcome(None, _describe(e))
        return Outcome(None, "connection closed")  # pragma: no cover - the loop always returns

    def _answer(self, connection: http.client.HTTPConnection, deadline: float) -> Outcome:
        response = connection.getresponse()
        read = 0
        while read < MAX_ANSWER_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the answer took longer than WEBHOOK_TIMEOUT")
            if connection.sock is not None:
                connection.sock.settimeout(remaining)
            chunk = response.read1(MAX_ANSWER_BYTES - read) if hasattr(response, "read1") else b""
            if not chunk:
                break
            read += len(chunk)
        finished = response.isclosed() or response.length == 0
        response.close()  # the answer, not the connection: that stays open for the next delivery
        if not finished:
            connection.close()  # more than we read: the rest is not worth reading, nor the connection reusing
        return Outcome(response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}",
                       response.getheader("Retry-After"))

    def _connection(self, key: Destination, timeout: float, *, fresh: bool) -> http.client.HTTPConnection:
        pool: OrderedDict[Destination, http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "pool", OrderedDict())
        if fresh:
            self._drop(key)
        connection = pool.get(key)
        if connection is not None:
            pool.move_to_end(key)
        else:
            while len(pool) >= MAX_CONNECTIONS:
                pool.popitem(last=False)[1].close()
            scheme, host, port = key
            if scheme == "https":
                connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                         context=ssl.create_default_context())
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            pool[key] = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop(self, key: Destination) -> None:
        connection = self._local.__dict__.get("pool", {}).pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close the calling thread's connections (each thread that sent closes its own)."""
        for connection in self._local.__dict__.get("pool", {}).values():
            connection.close()
        self._local.__dict__["pool"] = OrderedDict()


def _describe(error: BaseException) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "timed out (WEBHOOK_TIMEOUT)"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]
