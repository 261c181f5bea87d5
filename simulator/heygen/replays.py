"""HeyGen's Idempotency-Key on v3 submissions: the first answer is replayed for 24 hours.

As developers.heygen.com documents it: a later call with the same key (from the same user, on the same
route) replays the original answer, even if its body differs; a call that arrives while the first is still
in flight gets 409 `request_in_progress`; keys are 1–255 characters of `[A-Za-z0-9_:.-]`. Answers are kept
in the store (durable with the SQLite store), written in the same transaction as the jobs they made; only
successful answers are kept, so a corrected retry of a refused request goes through.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from simulator.clock import Clock
from simulator.store.records import Replay

if TYPE_CHECKING:
    from simulator.store.base import Store

REPLAY_SECONDS = 24 * 3600
KEY_PATTERN = re.compile(r"[A-Za-z0-9_:.\-]{1,255}")


class RequestInProgress(Exception):
    """A request with this Idempotency-Key is still being answered."""


class ReplayGate:
    """Requests in flight per key (in this process) and the answers kept to replay (in the store)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    @staticmethod
    def scope(user_id: str, route: str, key: str) -> str:
        """Return the key's scope: per user and per route, as HeyGen scopes keys per endpoint and resource."""
        return f"{user_id}\x1f{route}\x1f{key}"

    @contextmanager
    def hold(self, scope: str) -> Iterator[None]:
        """Hold the key while its request is answered; raise RequestInProgress if another request holds it."""
        with self._lock:
            if scope in self._in_flight:
                raise RequestInProgress(scope)
            self._in_flight.add(scope)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(scope)

    def find(self, scope: str) -> Replay | None:
        """Return the answer kept for this key, if it has not expired."""
        with self._store.transaction():
            self._store.prune_replays(self._clock())
            return self._store.replay(scope)

    def remember(self, scope: str, body: str, status: int) -> None:
        """Keep an answer to replay for 24 hours (call inside the transaction that made what it reports)."""
        now = self._clock()
        self._store.put_replay(Replay(scope, body, status, now, now + REPLAY_SECONDS))
