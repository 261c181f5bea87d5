"""Shared fixtures: a fake clock, engines and apps driven by it, an admin auth helper, a real server."""

from __future__ import annotations

import random
import socket
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import config
from jobs import JobEngine
from server import create_app
from simulator.domain.job import to_record
from simulator.store import MemoryStore, Store
from simulator.store.records import as_dict
from simulator.store.redis_store import RedisStore
from simulator.store.sqlite import SqliteStore
from simulator.testing import ServerProcess
from simulator.testing.redis_server import RedisServer

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


#: Every store implementation; the engine tests (the store contract) run once per store.
STORE_KINDS = ("memory", "sqlite", "redis")
#: The stores of one process, which hold a lock in it for a transaction (not the shared Redis store).
LOCAL_STORE_KINDS = ("memory", "sqlite")
_new_store: ContextVar[Callable[[], Store]] = ContextVar("new_store", default=MemoryStore)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Yield the URL of a real redis-server started for this test session on a free port."""
    with RedisServer() as server:
        yield server.url


def redis_store_url(redis_url: str) -> str:
    """Return a STORE URL on the session's Redis with a prefix of its own (nothing shared between tests)."""
    return f"{redis_url}?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=STORE_KINDS)
def each_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Run the test once per store: engines made by `make_engine` (and `make_store`) use it (see `_each`)."""
    yield from _each(request, tmp_path)


@pytest.fixture(params=LOCAL_STORE_KINDS)
def each_local_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Run the test once per in-process store (memory, SQLite): for what only a store of one process does."""
    yield from _each(request, tmp_path)


def _each(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Make `make_engine` and `make_store` use the store `request.param` names, and check it afterwards.

    After a test on SQLite, each database is closed and read back, and must hold exactly the jobs
    that were in memory, and the other records too (API keys, endpoints, deliveries, replays, secrets): every
    test of the engine is also a test of what the SQLite store saves. After a test on Redis, a second store
    opened on the same keys must read exactly the same jobs and records.
    """
    opened: list[SqliteStore] = []
    shared: list[RedisStore] = []

    def new_store() -> Store:
        if request.param == "memory":
            return MemoryStore()
        if request.param == "redis":
            store = RedisStore(redis_store_url(request.getfixturevalue("redis_url")))
            shared.append(store)
            return store
        store = SqliteStore(str(tmp_path / f"jobs-{len(opened)}.db"))
        opened.append(store)
        return store

    token = _new_store.set(new_store)
    try:
        yield request.param
    finally:
        _new_store.reset(token)
    for redis_store in shared:
        check_redis_reads_back(redis_store)
    for store in opened:
        in_memory = {job.job_id: to_record(job) for job in store.jobs()}
        records = stored_records(store)
        store.close()
        reopened = SqliteStore(store.path)
        try:
            assert {job.job_id: to_record(job) for job in reopened.jobs()} == in_memory
            assert [j.job_id for j in reopened.queued()] == [j.job_id for j in store.queued()]
            assert indexes(reopened) == indexes(store)
            assert stored_records(reopened) == records
        finally:
            reopened.close()


def indexes(store: Store) -> dict[str, object]:
    """Return what a store's indexes answer: each user's jobs, the idempotency keys, running and finished jobs."""
    users = {job.user_id for job in store.jobs()}
    keyed = [(job.user_id, job.idempotency_key) for job in store.jobs() if job.idempotency_key is not None]
    return {
        "by_user": {user: [job.job_id for job in store.jobs(user)] for user in users},
        "newest": {user: store.newest(user).job_id for user in users},  # type: ignore[union-attr]
        "keys": {key: store.find_idempotent(*key).job_id for key in keyed},  # type: ignore[union-attr]
        "running": sorted(job.job_id for job in store.running()),
        "finished": sorted(job.job_id for job in store.finished()),
        "finishing order": [job.finished_at for job in store.finished()],  # jobs that finished together: any order
    }


def check_redis_reads_back(store: RedisStore) -> None:
    """Assert that another store on the same Redis keys reads the same jobs, lanes and running set, and the same
    API keys, endpoints and deliveries (nothing is kept in one process), then close both."""
    other = RedisStore(f"{store.url}?prefix={store.prefix}")
    try:
        records = {}
        for reader in (store, other):
            with reader.transaction():
                records[reader] = ({job.job_id: to_record(job) for job in reader.jobs()},
                                   [j.job_id for j in reader.queued()], sorted(j.job_id for j in reader.running()),
                                   [as_dict(k) for k in reader.api_keys()], [as_dict(e) for e in reader.endpoints()],
                                   [as_dict(d) for d in reader.deliveries()], reader.next_delivery_due())
        assert records[store] == records[other]
    finally:
        other.close()
        store.close()


def stored_records(store: MemoryStore) -> dict[str, Any]:
    """Return every record besides jobs that a store holds, as plain values (for comparing two stores)."""
    return {
        "api_keys": [as_dict(k) for k in store.api_keys()],
        "endpoints": [as_dict(e) for e in store.endpoints()],
        "deliveries": [as_dict(d) for d in store.deliveries()],
        "replays": sorted((r.replay_key, r.body, r.expires_at) for r in store._replays.values()),
        "secrets": dict(store._secrets),
        "next_delivery_due": store.next_delivery_due(),
    }


def make_store() -> Store:
    """Return a new store of the kind `each_store` is running (a memory store outside it)."""
    return _new_store.get()()


def make_engine(clock: FakeClock, **overrides: Any) -> JobEngine:
    """Build an engine on `clock` with FAST settings plus `overrides`, on the store of `each_store`."""
    settings = config.from_mapping({**FAST, **overrides})
    return JobEngine(settings, store=_new_store.get()(), clock=clock, rng=random.Random(settings.RANDOM_SEED))


def count_feed_sleeps(engine: JobEngine) -> list[float]:
    """Record the timeout of every wait a long-poll makes on the change feed (each is a sleep until woken)."""
    sleeps: list[float] = []
    wait_for_job = engine.feed.wait_for_job

    def counted(job_id: str, cursor: int, timeout: float) -> Any:
        sleeps.append(timeout)
        return wait_for_job(job_id, cursor, timeout)

    engine.feed.wait_for_job = counted  # type: ignore[method-assign]
    return sleeps


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


@pytest.fixture
def closed_port() -> Iterator[int]:
    """Yield a port on 127.0.0.1 that refuses connections: bound by this test, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class RunningServer(ServerProcess):
    """`python server.py` in a subprocess with FAST settings plus `settings`, on a port it chose (or `port`)."""

    def __init__(self, settings: dict[str, Any], port: int | None = None) -> None:
        super().__init__({**FAST, **settings}, port=port or 0, cwd=ROOT)

    def start(self, timeout: float = 15.0) -> RunningServer:
        """Start the server and wait until it listens."""
        super().start(timeout)
        return self


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
