"""Clocks: what the simulation reads time from (epoch seconds as a float)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


def system_clock() -> Clock:
    """Return a clock that reads epoch seconds but never goes backwards (monotonic, anchored once)."""
    anchor = time.time() - time.monotonic()
    return lambda: time.monotonic() + anchor
