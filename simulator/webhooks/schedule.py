"""When a failed delivery is tried again: the Standard Webhooks schedule, scaled by a setting, with jitter.

After the first attempt fails, the next ones wait 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (eight
attempts in all, about 27.5 hours), each scaled by WEBHOOK_RETRY_SCALE (0.1 by default: the whole
schedule in under three hours; 1: as written) and spread by ±20 % so that a receiver coming back is not hit
by every retry at once. A receiver that answers 429 or 503 with Retry-After waits at least that long
(capped at a day). Pure functions: the randomness comes in as an argument.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)  # seconds, after each failed attempt
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.2
MAX_RETRY_AFTER = 86400.0


def next_delay(attempts: int, scale: float, rng: random.Random, retry_after: float | None = None) -> float | None:
    """Return seconds until the next attempt after `attempts` failed ones, or None when it is time to give up."""
    if attempts < 1 or attempts >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS[attempts - 1] * scale * rng.uniform(1.0 - JITTER, 1.0 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Read a Retry-After header (seconds, or an HTTP date) as seconds from `now` (epoch s); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)
