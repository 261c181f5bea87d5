"""The hourly limit on free submissions: flask-limiter's moving window, keyed without the limit's amount."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask_limiter import Limiter
from limits import RateLimitItem
from limits.strategies import STRATEGIES, MovingWindowRateLimiter
from limits.util import WindowStats


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


def make_limiter(app: Flask, key_func: Callable[[], str], *, storage_uri: str = "memory://",
                 key_prefix: str = "") -> Limiter:
    """Create the app's own limiter (never shared between apps) with the moving window above.

    In memory by default; with the Redis store, on the same Redis (`storage_uri`, keys under
    `key_prefix`), so that the hourly limit is one count for every process. limits' Redis storage
    runs the moving window as one Lua script per hit, so concurrent submissions in several processes
    cannot pass more than the limit.
    """
    return Limiter(
        key_func=key_func,
        app=app,
        storage_uri=storage_uri,
        key_prefix=key_prefix,
        strategy="runtime-moving-window",
        headers_enabled=False,  # added by the app's after_request: flask-limiter would overwrite a 202's Retry-After
        # Redis unreachable: let the request through; the store refuses it with 503 store_unavailable anyway.
        swallow_errors=storage_uri != "memory://",
    )
