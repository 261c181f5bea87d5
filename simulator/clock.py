"""Clocks: what the simulation reads time from (epoch seconds as a float).

- `system_clock()` — real time (CLOCK=system, the default).
- `ManualClock` — simulated time that moves only when told (CLOCK=manual): `POST /admin/clock/advance`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
CLOCK_KINDS = ("system", "manual")


def system_clock() -> Clock:
    """Return a clock that reads epoch seconds but never goes backwards (monotonic, anchored once)."""
    anchor = time.time() - time.monotonic()
    return lambda: time.monotonic() + anchor


class ManualClock:
    """A clock that stands still until `advance(seconds)` moves it; it starts at the real time it was made.

    Starting at the real time keeps timestamps readable as dates; from then on only `advance` moves it,
    and never backwards.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` (≥ 0) and return the new time."""
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"a clock only moves forward; got {seconds!r} seconds")
        with self._lock:
            self._now += seconds
            return self._now


def make_clock(kind: str) -> Clock:
    """Return a new clock of the kind the CLOCK setting names: `system` or `manual`."""
    if kind == "manual":
        return ManualClock()
    if kind == "system":
        return system_clock()
    raise ValueError(f"CLOCK must be one of {', '.join(CLOCK_KINDS)}, got {kind!r}")
