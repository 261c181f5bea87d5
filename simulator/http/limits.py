"""The hourly limit on free submissions: flask-limiter's moving window, keyed without the limit's amount,
kept in a storage that reads the simulation's clock.

Only submissions pay for it: `POST /translate`, and HeyGen's `POST /v2/video_translate` and `POST
/v3/video-translations` (one per output language). The view calls `HourlyLimit.check()` once it knows the
submission counts (a free one that is new: not a replay, not refused), through flask-limiter's documented
`with limiter.shared_limit(...)` form: a shared limit is keyed on its scope and the user, not on the route,
so the routes draw on one window per user. flask-limiter adds a before-, an after- and a teardown-request hook to
the app it is given, and they cost every request of that app about 30 µs even with nothing to limit
(a quarter of a status read; `bench/request_path.py`); so the limiter is given a Flask app of its own
that serves nothing, and the app that serves never runs its hooks.

`limits`' own memory storage reads `time.time()`, so with CLOCK=manual the hour would pass in real time
while the jobs live in simulated time. `SimulationClockStorage` implements `limits`' public storage
interface (the moving window) on the engine's clock instead: advancing a manual clock by an hour ends
the hour's window, and nothing else does.

With a store shared by several processes (Redis), the windows live in that Redis instead (`limits`'
Redis storage, under the store's key prefix), so the hourly limit is one count for every process; they
are timed by the real clock there (several processes share no manual clock: see `simulator.main`).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from limits import RateLimitItem
from limits.storage import MovingWindowSupport, Storage
from limits.strategies import STRATEGIES, MovingWindowRateLimiter
from limits.util import WindowStats

from simulator.clock import Clock

#: The storage scheme of `SimulationClockStorage` (a `limits` storage URI: `simulation-clock://`).
STORAGE_SCHEME = "simulation-clock"
#: Acquisitions between sweeps of windows that have emptied (keeps memory bounded by the active users).
SWEEP_EVERY = 1024


class SimulationClockStorage(Storage, MovingWindowSupport):
    """Moving windows (and plain counters) in memory, timed by the clock passed as the `clock` option."""

    STORAGE_SCHEME = [STORAGE_SCHEME]  # noqa: RUF012 - the registry of `limits` reads a class attribute

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *, clock: Clock,
                 **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[str, list[float]] = {}  # key -> hit times, oldest first
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._acquired = 0

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        """Return the errors this storage raises of its own (none)."""
        return ()

    # ---------------------------------------------------------------- moving window

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Take `amount` entries of the window of `key` if fewer than `limit` remain taken within `expiry` s."""
        with self._lock:
            now = self._clock()
            events = self._window(key, now, expiry)
            self._acquired += 1
            if self._acquired % SWEEP_EVERY == 0:
                self._sweep(now, expiry)
            if amount > limit or len(events) + amount > limit:
                return False
            events.extend([now] * amount)
            self._events[key] = events
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return the time of the oldest entry within the window of `key` (now if none) and how many there are."""
        with self._lock:
            now = self._clock()
            events = self._window(key, now, expiry)
            return (events[0], len(events)) if events else (now, 0)

    def _window(self, key: str, now: float, expiry: int) -> list[float]:
        """Return the entries of `key` younger than `expiry` seconds at `now`, dropping the others.

        An entry counts for exactly `expiry` seconds: at the instant its hour is up it no longer does,
        which is when the Retry-After of a refusal says to come back.
        """
        events = self._events.get(key, [])
        start = bisect.bisect_right(events, now - expiry)
        if start:
            del events[:start]
        if not events:
            self._events.pop(key, None)
        return events

    def _sweep(self, now: float, expiry: int) -> None:
        for key in list(self._events):
            self._window(key, now, expiry)

    # ---------------------------------------------------------------- counters (fixed windows; unused here)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add `amount` to the counter of `key`, which expires `expiry` s after it was first incremented."""
        with self._lock:
            now = self._clock()
            count, expires = self._counters.get(key, (0, now + expiry))
            if expires <= now:
                count, expires = 0, now + expiry
            self._counters[key] = (count + amount, expires)
            return count + amount

    def get(self, key: str) -> int:
        """Return the counter of `key` (0 once expired)."""
        with self._lock:
            count, expires = self._counters.get(key, (0, 0.0))
            return count if expires > self._clock() else 0

    def get_expiry(self, key: str) -> float:
        """Return when the counter of `key` expires (now if it has none)."""
        with self._lock:
            return self._counters.get(key, (0, self._clock()))[1]

    # ---------------------------------------------------------------- housekeeping

    def check(self) -> bool:
        """Tell that the storage is usable (it always is: it is memory)."""
        return True

    def reset(self) -> int | None:
        """Forget every window and counter; return how many keys were held."""
        with self._lock:
            held = len(self._events) + len(self._counters)
            self._events.clear()
            self._counters.clear()
            return held

    def clear(self, key: str) -> None:
        """Forget the window and counter of `key`."""
        with self._lock:
            self._events.pop(key, None)
            self._counters.pop(key, None)


SCOPE = "free-submissions"


class _AmountFreeKey:
    """A rate-limit item as the storage sees it: the same amount and window, keyed without the amount."""

    def __init__(self, item: RateLimitItem) -> None:
        self.amount = item.amount
        self.get_expiry = item.get_expiry
        self._suffix = f"{item.multiples}/{item.GRANULARITY.name}"
        self._namespace = item.namespace

    def key_for(self, *identifiers: str) -> str:
        """Return the storage key: namespace, identifiers and window, but not the amount."""
        return "/".join([self._namespace, *map(str, identifiers), self._suffix])


class RuntimeLimitWindow(MovingWindowRateLimiter):
    """The moving window, keyed without the limit's amount.

    `limits` puts the amount in the storage key, so a runtime change of RATE_LIMIT would start every
    user's hour afresh; keyed without it, the hits already made count against the new limit at once.
    """

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Consume `cost` from the window if it allows it."""
        return super().hit(_AmountFreeKey(item), *identifiers, cost=cost)  # type: ignore[arg-type]

    def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Tell whether `cost` could be consumed."""
        return super().test(_AmountFreeKey(item), *identifiers, cost=cost)  # type: ignore[arg-type]

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """Return the reset time and what remains (never below 0, even after RATE_LIMIT was lowered)."""
        reset, remaining = super().get_window_stats(_AmountFreeKey(item), *identifiers)  # type: ignore[arg-type]
        return WindowStats(reset, max(0, remaining))


# flask-limiter picks its strategy by name from this registry; ours is the moving window above.
STRATEGIES.setdefault("runtime-moving-window", RuntimeLimitWindow)

class HourlyLimit:
    """One app's own limiter (never shared between apps), in memory on the simulation's clock, moving window.

    With `storage_uri` (the Redis of a shared store), the windows live there instead, under `key_prefix`,
    so that the hourly limit is one count for every process: `limits`' Redis storage takes an entry of
    the moving window in one Lua script, so concurrent submissions in several processes cannot pass
    more than the limit. Those windows are timed by the real clock. If that Redis cannot be reached the
    request is let through: the store refuses it with 503 store_unavailable anyway.
    """

    def __init__(self, key_func: Callable[[], str], amount: Callable[[], str], clock: Clock, *,
                 storage_uri: str | None = None, key_prefix: str = "") -> None:
        storage: dict[str, Any] = {"storage_uri": f"{STORAGE_SCHEME}://", "storage_options": {"clock": clock}}
        if storage_uri is not None:
            storage = {"storage_uri": storage_uri, "storage_options": {"key_prefix": key_prefix},
                       "swallow_errors": True}
        self.limiter = Limiter(
            key_func=key_func,
            app=Flask(f"{__name__}.hooks"),  # its hooks go here, where no request ever runs them
            strategy="runtime-moving-window",
            headers_enabled=False,  # the view adds them: flask-limiter would overwrite a 202's Retry-After
            **storage,
        )
        self._amount = amount

    def check(self, cost: int = 1) -> None:
        """Count `cost` submissions against the user's hour, all or none; raise RateLimitExceeded (429) if over."""
        with self.limiter.shared_limit(self._amount, scope=SCOPE, cost=cost):
            pass

    def headers(self) -> dict[str, str]:
        """Return the X-RateLimit-* headers of the limit this request was checked against ({} if none)."""
        current = self.limiter.current_limit
        if current is None:
            return {}
        return {
            "X-RateLimit-Limit": str(current.limit.amount),
            "X-RateLimit-Remaining": str(current.remaining),
            "X-RateLimit-Reset": str(current.reset_at),
        }
