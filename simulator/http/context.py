"""What the HTTP layer shares per app: the engine and the service's own parts, kept in `app.extensions`."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import current_app

from simulator.auth.keys import KeyRing
from simulator.auth.throttle import FailureThrottle
from simulator.domain import JobEngine
from simulator.events import EventHub
from simulator.heygen.service import HeyGenService
from simulator.http.delays import ResponseDelayer
from simulator.http.faults import FaultInjector
from simulator.http.journal import RequestJournal
from simulator.http.limits import HourlyLimit
from simulator.http.metrics import Metrics
from simulator.links import ResultLinks
from simulator.settings import Settings
from simulator.webhooks.service import WebhookService


class LongPollGate:
    """Counts held long-polls and refuses to hold more than the cap (the refused ones answer at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0
        self.draining = False

    def enter(self, cap: int) -> bool:
        """Take a place if fewer than `cap` are held and the server is not shutting down."""
        with self._lock:
            if self.draining or self.held >= cap:
                return False
            self.held += 1
            return True

    def leave(self) -> None:
        """Give a place back."""
        with self._lock:
            self.held -= 1


class KeyedLocks:
    """One lock per key, made when first held and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, key: Hashable | None) -> Iterator[None]:
        """Hold the lock of `key` (None: no lock at all) for the block."""
        if key is None:
            yield
            return
        with self._lock:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._lock:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


@dataclass
class Simulator:
    """One app's engine, hourly limit, long-poll gate, faults, journal, delays, event hub, metrics, admin token;
    its API keys, HeyGen's routes and webhooks."""

    settings: Settings  # as started; the engine holds the current ones
    engine: JobEngine
    hourly_limit: HourlyLimit
    faults: FaultInjector
    long_polls: LongPollGate = field(default_factory=LongPollGate)
    journal: RequestJournal = field(default_factory=RequestJournal)
    submissions: KeyedLocks = field(default_factory=KeyedLocks)  # one user's Idempotency-Key at a time
    started: float = field(default_factory=time.monotonic)
    keys: KeyRing = field(default=None)  # type: ignore[assignment]  # API keys in the store (create_app)
    auth_failures: FailureThrottle = field(default_factory=FailureThrottle)
    heygen: HeyGenService = field(default=None)  # type: ignore[assignment]  # HeyGen's routes (create_app)
    links: ResultLinks = field(default=None)  # type: ignore[assignment]  # signed result links (create_app)
    webhooks: WebhookService = field(default=None)  # type: ignore[assignment]  # endpoints, the log (create_app)
    delays: ResponseDelayer = field(init=False)
    events: EventHub = field(init=False)  # GET /events: the change feed fanned out to every open stream
    metrics: Metrics = field(init=False)  # GET /metrics

    def __post_init__(self) -> None:
        self.delays = ResponseDelayer(derived_seed(self.settings.RANDOM_SEED, 2))
        self.events = EventHub(self.engine)
        self.metrics = Metrics(self)

    @property
    def admin_token(self) -> bytes:
        """Return the admin token as bytes, for a constant-time comparison."""
        return (self.settings.ADMIN_TOKEN or "").encode()

    @property
    def metrics_token(self) -> bytes | None:
        """Return the token GET /metrics requires, as bytes (None: /metrics is open)."""
        token = self.settings.METRICS_TOKEN
        return token.encode() if token else None

    def reset(self, *, keep_config: bool = False) -> int:
        """Leave the service as freshly started: no job, idempotency key, rate-limit window or journal entry;
        start-up settings back unless `keep_config`; the fault and delay generators seeded anew. Return how many
        jobs were removed.

        Webhook deliveries (the outbox and its log), HeyGen's stored Idempotency-Key answers and the count of
        wrong API keys go with the jobs they belong to; API keys, webhook endpoints and the store's secrets
        stay, as the set-up a test made before it ran (`DELETE /api-keys/<id>` and the endpoint routes remove
        them). Done in one step of the engine, so no request of the engine sees half of it. With a shared
        store the jobs (with their deliveries and stored answers), the settings and the rate-limit windows are
        reset for every process; the journal and the fault and delay generators are this process's own.
        """
        engine = self.engine

        def service() -> None:
            self.hourly_limit.limiter.reset()
            self.auth_failures.clear()
            self.journal.clear()
            self.faults = FaultInjector(derived_seed(engine.settings.RANDOM_SEED, 1))
            self.delays = ResponseDelayer(derived_seed(engine.settings.RANDOM_SEED, 2))

        return engine.reset(restore_config=not keep_config, also=service)

    def release_waiters(self) -> None:
        """Answer every held long-poll at once, end every event stream, hold no new one (the server is stopping)."""
        self.long_polls.draining = True
        self.engine.release_waiters()
        self.events.close()


def derived_seed(seed: int | None, offset: int) -> int | None:
    """Return the seed of a generator of the service's own (faults, latency): RANDOM_SEED plus `offset`, or None."""
    return None if seed is None else seed + offset


def sim() -> Simulator:
    """Return the current app's Simulator."""
    return current_app.extensions["simulator"]
