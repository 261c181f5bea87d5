"""How long to wait before the next request: pure functions of the answers and failures so far. All times in seconds.

Shared by the sync and the async client. Nothing here sleeps or reads a clock: the callers pass `now`
and an `rng`, so tests drive these functions with a fake clock and a seeded `random.Random`.

The rules, in one place:

- after an answer, a job is not asked about again for at least the floor (`min_interval`, jittered upwards);
- after a failure (no answer, 5xx, 429), nothing is sent until a pause that is at least the floor grown by
  `backoff_factor` per consecutive failure (capped at `floor_cap`), at least the server's Retry-After,
  and, without one, an exponential backoff with jitter;
- while waiting for an unfinished job, the next check lands just after its `eta_seconds` (or Retry-After);
- no sleep and no request budget ever reaches past the caller's deadline.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulator.client.job import Job


@dataclass(frozen=True)
class Pacing:
    """How the client paces itself. All times in seconds."""

    #: The floor: shortest time between an answer about a job and the next request about it; also the
    #: shortest sleep on a hint.
    min_interval: float = 0.05
    #: The floor is jittered upwards by up to this fraction of itself (never below it).
    floor_jitter: float = 0.25
    #: After consecutive failures the floor grows by `backoff_factor` each time, up to this.
    floor_cap: float = 2.0
    #: Longest sleep between two status requests, whatever the hint says.
    max_interval: float = 30.0
    #: Added after a hinted moment, so the request lands just after the job moved.
    slack: float = 0.01
    #: Jitter added after the hinted moment: up to this fraction of the hint ...
    jitter_ratio: float = 0.05
    #: ... and never more than this many seconds.
    jitter_cap: float = 0.05
    #: Backoff without any hint: first delay, growth factor, largest delay, smallest delay.
    backoff_initial: float = 0.25
    backoff_factor: float = 2.0
    backoff_cap: float = 10.0
    backoff_floor: float = 0.1
    #: Longest wait asked of a long-polling server in one request.
    long_poll_max: float = 25.0
    #: A long-poll asks the server to answer this much before the moment it must be back (a deadline, the
    #: next job's check), so that the answer arrives in time; at most half the window.
    long_poll_margin: float = 0.1
    #: Without a deadline (timeout=None), give up after the server gave no HTTP answer for this long.
    unreachable_limit: float = 30.0


def deadline_after(timeout: float | None, now: float) -> float:
    """Return the deadline `timeout` seconds after `now` (infinity for None)."""
    return math.inf if timeout is None else now + max(0.0, timeout)


def request_budget(request_timeout: float, hold: float, now: float, deadline: float) -> float:
    """Return the total seconds one request may take: its timeout plus any long-poll hold, within the deadline."""
    return max(0.0, min(request_timeout + hold, deadline - now))


def _grown(base: float, factor: float, steps: int, cap: float) -> float:
    exponent = min(max(steps, 0), 64)  # bounded exponent: no overflow however many steps
    return min(cap, base * factor**exponent)


def backoff_delay(attempt: int, rng: random.Random, pacing: Pacing = Pacing()) -> float:
    """Return the delay before retry number `attempt` (0-based): exponential, capped, jittered, floored."""
    ceiling = _grown(pacing.backoff_initial, pacing.backoff_factor, attempt, pacing.backoff_cap)
    return max(pacing.backoff_floor, rng.uniform(ceiling / 2, ceiling))


def floor_delay(failures: int, rng: random.Random, pacing: Pacing = Pacing()) -> float:
    """Return the least time before the next request after `failures` consecutive failures (0 after an answer)."""
    floor = _grown(pacing.min_interval, pacing.backoff_factor, failures, max(pacing.floor_cap, pacing.min_interval))
    return floor * (1 + rng.uniform(0, pacing.floor_jitter))


def retry_delay(failures: int, hinted: float | None, rng: random.Random, pacing: Pacing = Pacing()) -> float:
    """Return the pause after the `failures`-th consecutive failure (≥ 1): the grown floor, Retry-After, backoff.

    A Retry-After is honoured exactly unless the floor is longer; without one the pause is the backoff.
    """
    floor = floor_delay(failures, rng, pacing)
    if hinted is not None:
        return max(floor, hinted)
    return max(floor, backoff_delay(failures - 1, rng, pacing))


def hint_delay(
    job: Job, retry_after: float | None, misses: int, rng: random.Random, pacing: Pacing = Pacing()
) -> float:
    """Return how long to sleep before asking about an unfinished `job` again.

    `eta_seconds` says when the job next moves (exact while translating), so sleep until just after
    it, with a little jitter after (never before) that moment. Without it, honour `Retry-After`.
    Without either, back off (`misses` counts the hintless answers so far).
    """
    if job.eta_seconds is not None:
        base = job.eta_seconds + pacing.slack
        delay = base + rng.uniform(0, min(pacing.jitter_cap, pacing.jitter_ratio * base))
    elif retry_after is not None:
        delay = retry_after + rng.uniform(0, min(pacing.jitter_cap, pacing.jitter_ratio * retry_after))
    else:
        return backoff_delay(misses, rng, pacing)
    return min(pacing.max_interval, max(pacing.min_interval, delay))


def long_poll_wait(window: float, pacing: Pacing = Pacing()) -> float:
    """Return the wait to ask of the server when the caller must be back within `window` seconds."""
    window = min(window, pacing.long_poll_max)
    return window - min(pacing.long_poll_margin, window / 2)
