"""What the HTTP layer shares per app: the engine and the service's own parts, kept in `app.extensions`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flask import current_app
from flask_limiter import Limiter

from simulator.domain import JobEngine
from simulator.http.delays import ResponseDelayer
from simulator.http.faults import FaultInjector
from simulator.http.journal import RequestJournal
from simulator.settings import Settings


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


@dataclass
class Simulator:
    """One app's engine, limiter, long-poll gate, fault injector, request journal and delays, and its admin token."""

    settings: Settings  # as started; the engine holds the current ones
    engine: JobEngine
    limiter: Limiter
    faults: FaultInjector
    long_polls: LongPollGate = field(default_factory=LongPollGate)
    journal: RequestJournal = field(default_factory=RequestJournal)
    started: float = field(default_factory=time.monotonic)
    delays: ResponseDelayer = field(init=False)

    def __post_init__(self) -> None:
        self.delays = ResponseDelayer(derived_seed(self.settings.RANDOM_SEED, 2))

    @property
    def admin_token(self) -> bytes:
        """Return the admin token as bytes, for a constant-time comparison."""
        return (self.settings.ADMIN_TOKEN or "").encode()

    def reset(self, *, keep_config: bool = False) -> int:
        """Leave the service as freshly started: no job, idempotency key, rate-limit window or journal entry;
        start-up settings back unless `keep_config`; the fault and delay generators seeded anew. Return how many
        jobs were removed.

        Done while holding the store, so no request of the engine sees half of it.
        """
        engine = self.engine
        with engine.store.transaction():
            removed = engine.reset(restore_config=not keep_config)
            self.limiter.reset()
            self.journal.clear()
            self.faults = FaultInjector(derived_seed(engine.settings.RANDOM_SEED, 1))
            self.delays = ResponseDelayer(derived_seed(engine.settings.RANDOM_SEED, 2))
            return removed

    def release_waiters(self) -> None:
        """Answer every held long-poll at once and hold no new one (the server is stopping)."""
        self.long_polls.draining = True
        self.engine.release_waiters()


def derived_seed(seed: int | None, offset: int) -> int | None:
    """Return the seed of a generator of the service's own (faults, latency): RANDOM_SEED plus `offset`, or None."""
    return None if seed is None else seed + offset


def sim() -> Simulator:
    """Return the current app's Simulator."""
    return current_app.extensions["simulator"]
