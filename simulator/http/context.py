"""What the HTTP layer shares per app: the engine and the service's own parts, kept in `app.extensions`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flask import current_app
from flask_limiter import Limiter

from simulator.auth.keys import KeyRing
from simulator.auth.throttle import FailureThrottle
from simulator.domain import JobEngine
from simulator.heygen.results import ResultFiles
from simulator.heygen.service import HeyGenService
from simulator.http.faults import FaultInjector
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


@dataclass
class Simulator:
    """One app's engine, limiter, long-poll gate and fault injector, and its admin token."""

    settings: Settings  # as started; the engine holds the current ones
    engine: JobEngine
    limiter: Limiter
    faults: FaultInjector
    long_polls: LongPollGate = field(default_factory=LongPollGate)
    started: float = field(default_factory=time.monotonic)
    keys: KeyRing = field(default=None)  # type: ignore[assignment]  # API keys in the store (create_app)
    auth_failures: FailureThrottle = field(default_factory=FailureThrottle)
    heygen: HeyGenService = field(default=None)  # type: ignore[assignment]  # HeyGen's routes (create_app)
    results: ResultFiles = field(default_factory=ResultFiles)
    webhooks: WebhookService = field(default=None)  # type: ignore[assignment]  # endpoints, the log (create_app)

    @property
    def admin_token(self) -> bytes:
        """Return the admin token as bytes, for a constant-time comparison."""
        return (self.settings.ADMIN_TOKEN or "").encode()

    def release_waiters(self) -> None:
        """Answer every held long-poll at once and hold no new one (the server is stopping)."""
        self.long_polls.draining = True
        self.engine.release_waiters()


def sim() -> Simulator:
    """Return the current app's Simulator."""
    return current_app.extensions["simulator"]
