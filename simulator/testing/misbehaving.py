"""Servers that misbehave on purpose, on a free port: to check that a client gives up on time and on the spot.

    with MisbehavingServer("trickle-body", interval=2.0) as server:
        ...  # point your client at server.url; server.hits counts the requests it received

- `trickle-body`: sends a JSON 200's headers at once, then its body one byte every `interval` seconds;
- `trickle-headers`: sends the status line and headers one byte every `interval` seconds;
- `silent`: accepts the connection, reads the request, never answers;
- `html`: answers every request at once with a 200 HTML page (another web server, not this API).
"""

from __future__ import annotations

import socketserver
import threading
from typing import Any

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
HTML = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
MODES = ("trickle-body", "trickle-headers", "silent", "html")


class _Handler(socketserver.BaseRequestHandler):
    server: MisbehavingServer

    def handle(self) -> None:
        """Read one request, then misbehave as the server's mode says."""
        self.server.hits += 1
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            received += chunk
        stop, interval = self.server.stopping, self.server.interval
        try:
            if self.server.mode == "html":
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                                     + str(len(HTML)).encode() + b"\r\nConnection: close\r\n\r\n" + HTML)
            elif self.server.mode == "silent":
                stop.wait(60)
            elif self.server.mode == "trickle-body":
                self.request.sendall(HEADERS)
                while not stop.wait(interval):
                    self.request.sendall(b" ")
            else:
                for byte in HEADERS:
                    if stop.wait(interval):
                        break
                    self.request.sendall(bytes([byte]))
        except OSError:
            pass  # the client hung up: what it should do


class MisbehavingServer(socketserver.ThreadingTCPServer):
    """A TCP server on 127.0.0.1 and a free port that misbehaves in `mode`; use it as a context manager."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str, interval: float = 2.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.interval = interval
        self.hits = 0
        self.stopping = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
