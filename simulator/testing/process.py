"""`ServerProcess`: a real `python server.py` in a subprocess, on the port it chose itself (PORT=0 by default).

The server prints `Serving on http://HOST:PORT` once it listens; the port is read from that line, so
no port is guessed in advance (binding a free port, closing it and hoping it stays free is racy).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "server.py"
_SERVING = re.compile(r"Serving on (http://\S+?):(\d+)\s*$")


class ServerProcess:
    """`python server.py` with `settings` in its environment; `start()` returns once it listens."""

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        port: int = 0,
        command: Sequence[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr: IO[Any] | int | None = subprocess.DEVNULL,
        inherit_env: bool = True,
    ) -> None:
        self.settings = {k: str(v) for k, v in (settings or {}).items()}
        self.requested_port = port
        self.command = list(command) if command else _default_command()
        self.cwd = cwd
        self.stderr = stderr
        self.inherit_env = inherit_env
        self.process: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.url = ""
        self.stdout_lines: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """Return the server's process id."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start the server and wait until it says it listens; raise RuntimeError if it exits or takes too long."""
        env = dict(os.environ) if self.inherit_env else {"PATH": os.environ.get("PATH", "")}
        env.pop("HOST", None)
        env.update(self.settings)
        env["PORT"] = str(self.requested_port)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._ready.clear()
        self.stdout_lines = []
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read_stdout, args=(self.process,), daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or self.port is None:
            try:
                code = self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            self.stop()
            said = " | ".join(self.stdout_lines[-3:])
            if code is not None:
                raise RuntimeError(f"the server exited with code {code} before listening: {said}")
            raise RuntimeError(f"the server did not listen within {timeout} s: {said}")
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the server with SIGTERM (SIGKILL if it hangs) and return its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._finish(process)
        return process.returncode

    def kill(self) -> int:
        """Kill the server with SIGKILL, as a crash would, and return its exit code."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        code = process.wait()
        self._finish(process)
        return code

    def _finish(self, process: subprocess.Popen[str]) -> None:
        """Let the reader see the end of the output, then close the pipe."""
        if self._reader is not None:
            self._reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        self.process = None

    def _read_stdout(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            match = _SERVING.search(line)
            if match and not self._ready.is_set():
                self.url = f"{match.group(1)}:{match.group(2)}"
                self.port = int(match.group(2))
                self._ready.set()
        if not self._ready.is_set():
            self._ready.set()  # exited without listening: start() reports it


def _default_command() -> list[str]:
    return [sys.executable, str(SERVER_SCRIPT)]
