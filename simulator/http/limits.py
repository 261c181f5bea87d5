"""The hourly limit on free submissions: flask-limiter's moving window, keyed without the limit's amount.

Only `POST /translate` pays for it. The view calls `HourlyLimit.check()` once it knows the submission
counts (a free one that is new: not a replay, not refused), through flask-limiter's documented
`with limiter.limit(...)` form. flask-limiter adds a before-, an after- and a teardown-request hook to
the app it is given, and they cost every request of that app about 30 µs even with nothing to limit
(a quarter of a status read; `bench/request_path.py`); so the limiter is given a Flask app of its own
that serves nothing, and the app that serves never runs its hooks.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask_limiter import Limiter
from limits import RateLimitItem
from limits.strategies import STRATEGIES, MovingWindowRateLimiter
from limits.util import WindowStats

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
    """One app's own limiter (never shared between apps), in memory, with the moving window above."""

    def __init__(self, key_func: Callable[[], str], amount: Callable[[], str]) -> None:
        self.limiter = Limiter(
            key_func=key_func,
            app=Flask(f"{__name__}.hooks"),  # its hooks go here, where no request ever runs them
            storage_uri="memory://",
            strategy="runtime-moving-window",
            headers_enabled=False,  # the view adds them: flask-limiter would overwrite a 202's Retry-After
        )
        self._amount = amount

    def check(self) -> None:
        """Count this request against its user's hour, or raise RateLimitExceeded (429) when it is used up."""
        with self.limiter.limit(self._amount, scope=SCOPE):
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
