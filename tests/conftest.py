"""Shared fixtures: a fake clock, engines and apps driven by it, an admin auth helper, a real server."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import requests

import config
from jobs import JobEngine
from server import create_app

ROOT = Path(__file__).resolve().parent.parent

#: The package's pytest plugin (fixture `translation_server`), loaded from the checkout unless an installed copy
#: of the package already registers it through its `pytest11` entry point (loading it twice is an error).
PLUGIN = "simulator.testing.pytest_plugin"
PLUGIN_INSTALLED = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
pytest_plugins = ["pytester"] if PLUGIN_INSTALLED else ["pytester", PLUGIN]
ADMIN_TOKEN = "test-admin-token"
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeClock:
    """A clock that only moves when told to: `clock()` reads it, `clock.advance(s)` moves it."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        assert seconds >= 0
        self.now += seconds


#: Fast, deterministic settings: no jitter, no failures, manual processing off.
FAST = {
    "TRANSLATION_DELAY": 10.0,
    "PREMIUM_DELAY_FACTOR": 0.5,
    "DELAY_JITTER": 0.0,
    "ERROR_RATE": 0.0,
    "MAX_RETRIES": 3,
    "WORKERS": 2,
    "RATE_LIMIT": 5,
    "RANDOM_SEED": 7,
    "ADMIN_TOKEN": ADMIN_TOKEN,
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_engine(clock: FakeClock, **overrides: Any) -> JobEngine:
    """Build an engine on `clock` with FAST settings plus `overrides`."""
    settings = config.from_mapping({**FAST, **overrides})
    return JobEngine(settings, clock=clock, rng=random.Random(settings.RANDOM_SEED))


@pytest.fixture
def engine(clock: FakeClock) -> JobEngine:
    return make_engine(clock)


@pytest.fixture
def app(clock: FakeClock):
    return create_app(FAST, clock=clock)


@pytest.fixture
def client(app):
    return app.test_client()


class AuthHeaders:
    """Headers for admin calls: `auth.ok`, `auth.wrong`, `auth.missing`."""

    def __init__(self) -> None:
        self.ok = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self.wrong = {"Authorization": "Bearer not-the-token"}
        self.missing: dict[str, str] = {}


@pytest.fixture
def auth() -> AuthHeaders:
    return AuthHeaders()


def free_port() -> int:
    """Return a TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """`python server.py` in a subprocess on a free port, with settings passed through the environment."""

    def __init__(self, settings: dict[str, Any], port: int | None = None) -> None:
        self.settings = {**FAST, **settings}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> RunningServer:
        """Start the server and wait until /healthz answers."""
        env = {**os.environ, **{k: str(v) for k, v in self.settings.items()}, "PORT": str(self.port)}
        env.pop("HOST", None)
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if requests.get(self.url + "/healthz", timeout=0.5).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def stop(self) -> int | None:
        """Stop the server with SIGTERM and return its exit code."""
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
        return code


@pytest.fixture
def run_server() -> Iterator[Any]:
    """Start servers with `run_server(settings)`; every one is stopped at the end of the test."""
    servers: list[RunningServer] = []

    def start(settings: dict[str, Any] | None = None, port: int | None = None) -> RunningServer:
        server = RunningServer(settings or {}, port)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
