"""Helpers shared by the benchmark scripts: servers in subprocesses, percentiles, tables, the machine."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token"  # noqa: S105 - for throwaway servers on 127.0.0.1


def free_port() -> int:
    """Return a TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server in a subprocess, settings passed through the environment, log kept in a file.

    `command` defaults to `python server.py`, as users run it. Our server is started on PORT=0 and its
    port read from the `Serving on http://HOST:PORT` line it prints (`reports_port`, the default for it);
    another program (a stand-in, a candidate server) gets a port found free just before. The working
    directory is a temporary one, so that a developer's `.env` cannot change what is measured; it holds
    the server's log and is removed when the server stops, unless BENCH_KEEP_LOGS is set.
    """

    def __init__(self, settings: Mapping[str, Any], command: Sequence[str] | None = None, name: str = "server",
                 *, reports_port: bool | None = None):
        self.settings = {"ADMIN_TOKEN": ADMIN_TOKEN, **settings}
        self.reports_port = command is None if reports_port is None else reports_port
        self.port = 0 if self.reports_port else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = list(command or [sys.executable, str(ROOT / "server.py")])
        self.name = name
        self.workdir = tempfile.mkdtemp(prefix=f"bench-{name}-")
        self.log_path = os.path.join(self.workdir, "server.log")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """Return the server's process id."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 20.0) -> Server:
        """Start the server and wait until /healthz answers."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> Server:
        """Start the server process without waiting for it (start several, then `wait_ready` each)."""
        env = {**os.environ, **{k: str(v) for k, v in self.settings.items()}, "PORT": str(self.port)}
        env.pop("HOST", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, cwd=self.workdir, env=env, stdout=log, stderr=log)
        return self

    def wait_ready(self, timeout: float = 20.0) -> Server:
        """Wait until /healthz answers."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if not self.port:
                self._read_port()
                if not self.port:
                    time.sleep(0.05)
                    continue
            try:
                if requests.get(self.url + "/healthz", timeout=0.5).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start in {timeout} s; see {self.log_path}")

    def _read_port(self) -> None:
        """Learn the port our server chose from its `Serving on` line, once it has printed it."""
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith("Serving on http://"):
                    self.port = int(line.strip().rsplit(":", 1)[1])
                    self.url = f"http://127.0.0.1:{self.port}"
                    return

    def stop(self) -> int | None:
        """Stop the server with SIGTERM (SIGKILL after 15 s) and return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code

    def rss_bytes(self) -> int:
        """Return the server's resident memory (VmRSS from /proc), in bytes."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> requests.Response:
        """Send an admin request and return the response (raise on an HTTP error)."""
        response = requests.request(method, self.url + path, json=body, timeout=timeout,
                                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        response.raise_for_status()
        return response

    def configure(self, **changes: Any) -> None:
        """Change runtime settings through POST /config."""
        self.admin("POST", "/config", changes)


def percentile(values: Sequence[float], p: float) -> float:
    """Return the p-th percentile (nearest rank) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def epoch(iso_text: str) -> float:
    """Return epoch seconds of an ISO 8601 UTC timestamp such as the server's `finished_at`."""
    return dt.datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """Return a Markdown table; `align` has one letter per column, l or r (default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1)) for w, a in
                          zip(widths, align, strict=True)) + "|"
    return "\n".join([line([str(h) for h in headers]), rule, *(line(r) for r in cells)])


def machine() -> str:
    """Describe the machine: cores, CPU model, Python, date."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, {now}"


def revision() -> str:
    """Name the code measured: the commit, and whether the product's files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", "server.py", "jobs.py", "client.py",
                                  "config.py", "simulator"],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "code: unknown revision"
    return f"code: commit {commit}" + (" with uncommitted changes to the product" if changed.strip() else "")


def ms(seconds: float, digits: int = 1) -> str:
    """Format seconds as milliseconds."""
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.{digits}f}"
