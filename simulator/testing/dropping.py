"""A proxy that drops connections mid-answer on purpose: to check that a download resumes where it stopped.

    with DroppingProxy(server.url, drop_after_bytes=1_000_000) as proxy:
        client = TranslationClient(proxy.url)
        client.download_result(job, "out.mp4")    # the first answer is cut after 1 MB; the client resumes
        proxy.requests                              # [(first request line, its Range header or None), ...]

Every connection is piped to the target as it is. The first `drops` connections whose first request's path
starts with `path_prefix` are cut (both ways shut) once `drop_after_bytes` of the answer went through;
`sent_bytes` counts the answer bytes the proxy passed on, so a test can tell that a resumed try sent only the rest.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from typing import Any
from urllib.parse import urlsplit


class _Handler(socketserver.BaseRequestHandler):
    server: DroppingProxy

    def handle(self) -> None:
        """Pipe one connection to the target, cutting it if it is one of the connections to drop."""
        proxy = self.server
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        line, _, rest = head.partition(b"\r\n")
        range_header = next((h.split(b":", 1)[1].strip().decode() for h in rest.split(b"\r\n")
                             if h.lower().startswith(b"range:")), None)
        with proxy.lock:
            proxy.requests.append((line.decode("latin-1"), range_header))
            path = line.split(b" ")[1].decode("latin-1") if line.count(b" ") >= 2 else ""
            drop = path.startswith(proxy.path_prefix) and proxy.dropped < proxy.drops
            if drop:
                proxy.dropped += 1
        upstream = socket.create_connection(proxy.target)
        try:
            upstream.sendall(head)
            forward = threading.Thread(target=_pipe, args=(client, upstream, None, None), daemon=True)
            forward.start()
            _pipe(upstream, client, proxy, proxy.drop_after_bytes if drop else None)
            forward.join()
        finally:
            upstream.close()


def _pipe(source: socket.socket, sink: socket.socket, proxy: DroppingProxy | None, limit: int | None) -> None:
    """Copy bytes from `source` to `sink` until either ends or `limit` bytes went through; then shut both."""
    passed = 0
    try:
        while limit is None or passed < limit:
            chunk = source.recv(65536 if limit is None else max(1, min(65536, limit - passed)))
            if not chunk:
                break
            if proxy is not None:  # counted first: once sent, the client may read the count at once
                with proxy.lock:
                    proxy.sent_bytes += len(chunk)
            sink.sendall(chunk)
            passed += len(chunk)
    except OSError:
        pass
    for sock in (source, sink):  # one side ended (or the cut came): end the other direction too
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class DroppingProxy(socketserver.ThreadingTCPServer):
    """A TCP proxy on 127.0.0.1 and a free port in front of `target_url`; use it as a context manager."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_url: str, *, drop_after_bytes: int, drops: int = 1,
                 path_prefix: str = "/results/") -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.drop_after_bytes = drop_after_bytes
        self.drops = drops
        self.path_prefix = path_prefix
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None]] = []
        self.dropped = 0
        self.sent_bytes = 0
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, name="dropping-proxy", daemon=True)

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
