"""Refuse a client that keeps presenting wrong API keys: at most `limit` failures per client in a sliding minute."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque

from simulator.clock import Clock, system_clock

WINDOW_SECONDS = 60.0
MAX_CLIENTS = 10_000  # clients tracked at once; the one idle longest is forgotten first


class FailureThrottle:
    """Counts wrong keys per client (its address) over the last minute."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or system_clock()
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str, limit: int) -> int | None:
        """Return whole seconds until `client` may try a key again, or None when it may now."""
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if times is None or len(times) < limit:
                return None
            return max(1, math.ceil(times[-limit] + WINDOW_SECONDS - now))

    def failed(self, client: str) -> None:
        """Count one wrong key from `client`."""
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if times is None:
                times = self._failures[client] = deque(maxlen=1000)
            times.append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > MAX_CLIENTS:
                self._failures.popitem(last=False)

    def clear(self) -> None:
        """Forget every failure (a reset)."""
        with self._lock:
            self._failures.clear()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times
