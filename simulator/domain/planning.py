"""Progress and ETA planning: pure functions of a job, the running attempts, the queue and the settings."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from simulator.domain.job import Job
from simulator.domain.status import ROLES, Stage
from simulator.settings import Simulation

#: Queued jobs whose start is planned one by one for an ETA; deeper ones use the average rate.
EXACT_DEPTH = 128


def attempt_seconds(role: str, sim: Simulation, media_seconds: float | None = None) -> float:
    """Return how long an attempt of `role` takes when it does not fail (before jitter).

    With DELAY_PER_MEDIA_SECOND set, a job whose video's duration is known takes that much per second of it;
    otherwise (the setting is 0, or the job came without an upload) it takes TRANSLATION_DELAY.
    """
    if sim.DELAY_PER_MEDIA_SECOND > 0 and media_seconds is not None:
        base = sim.DELAY_PER_MEDIA_SECOND * media_seconds
    else:
        base = sim.TRANSLATION_DELAY
    return base * (sim.PREMIUM_DELAY_FACTOR if role == "premium" else 1.0)


def job_attempt_seconds(job: Job, sim: Simulation) -> float:
    """Return how long an attempt of this job takes when it does not fail (before jitter)."""
    return attempt_seconds(job.role, sim, job.media_seconds)


def progress(job: Job, now: float) -> int:
    """Return 0–100: 0 while queued, linear in the attempt's elapsed time while translating, fixed once stopped."""
    if job.stage is Stage.QUEUED:
        return 0
    if job.stage is Stage.FINISHED:
        return job.progress_at_stop
    if job.attempt_duration <= 0:
        return 99
    return max(0, min(99, int(100 * (now - job.attempt_started_at) / job.attempt_duration)))


def running_eta(job: Job, now: float) -> float:
    """Return seconds until a running attempt ends (it may end by failing)."""
    return max(0.0, job.attempt_ends_at - now)


class StartPlan:
    """When queued jobs are expected to start, taken in queue order (auto mode).

    Slots free up as running attempts end; each queued job then holds a slot for the expected length
    of one attempt (a failed attempt stops, on average, halfway). The first `EXACT_DEPTH` jobs are
    placed slot by slot; deeper ones add their work to a backlog shared by all slots.
    """

    def __init__(self, running_ends: Iterable[float], now: float, sim: Simulation) -> None:
        self.workers = sim.WORKERS
        remaining = sorted(max(0.0, end - now) for end in running_ends)
        if len(remaining) >= self.workers:
            self.slots = remaining[len(remaining) - self.workers :]
        else:
            self.slots = [0.0] * (self.workers - len(remaining)) + remaining
        heapq.heapify(self.slots)
        self.expected = 1.0 - sim.ERROR_RATE / 2
        self.seconds = {role: attempt_seconds(role, sim) * self.expected for role in ROLES}
        self.placed = 0
        self.backlog = 0.0

    def start(self) -> float:
        """Return when the next job in queue order is expected to start, seconds from now."""
        return self.slots[0] + self.backlog / self.workers

    def skip(self, role: str, count: int, attempt: float | None = None) -> None:
        """Let the next `count` jobs of `role` in queue order take their slots.

        `attempt` is their attempt time when it is known (a job timed by its video); by default, the role's.
        """
        seconds = self.seconds[role] if attempt is None else attempt * self.expected
        exact = max(0, min(count, EXACT_DEPTH - self.placed))
        for _ in range(exact):
            heapq.heapreplace(self.slots, self.slots[0] + seconds)
        self.placed += count
        self.backlog += (count - exact) * seconds
