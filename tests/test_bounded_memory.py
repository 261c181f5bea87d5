"""Memory stays bounded: 200 000 jobs over simulated hours never exceed the MAX_JOBS and JOB_TTL bounds."""

from __future__ import annotations

import random

import config
from jobs import CapacityExceeded, JobEngine
from tests.conftest import FakeClock

JOBS = 200_000


def test_two_hundred_thousand_jobs_stay_within_the_ttl_bound() -> None:
    """Jobs finished over ten simulated hours are forgotten after JOB_TTL, with their idempotency keys."""
    clock = FakeClock()
    settings = config.from_mapping({"TRANSLATION_DELAY": 0.5, "DELAY_JITTER": 0.2, "ERROR_RATE": 0.1,
                                    "MAX_RETRIES": 1, "WORKERS": 64, "JOB_TTL": 600, "MAX_JOBS": 100_000})
    engine = JobEngine(settings, clock=clock, rng=random.Random(1))
    interval = 10 * 3600 / JOBS  # 200 000 submissions spread over ten hours: 0.18 s apart
    peak = 0
    for n in range(JOBS):
        engine.submit("premium" if n % 3 == 0 else "free", f"user{n % 500}", idempotency_key=f"key-{n}")
        clock.advance(interval)
        if n % 1000 == 0:
            peak = max(peak, engine.counts()["jobs"])
    clock.advance(601)  # past the TTL of the last jobs
    engine.advance()
    # A job lives about its translation time plus JOB_TTL: 600.5 s of submissions 0.18 s apart.
    bound = int(601 / interval) + 64
    assert peak <= bound
    assert engine.counts() == {"jobs": 0, "queued": 0, "running": 0}
    engine.advance()  # drops the stale entries of attempts that ended
    internals = vars(engine.store)
    assert internals["_idempotency"] == {} and internals["_by_user"] == {} and internals["_finished"] == {}
    assert internals["_ends"] == [] and internals["_running"] == {} and vars(engine.feed)["_job_waits"] == {}
    assert engine.check_invariants() == []


def test_max_jobs_refuses_submissions_beyond_it_with_a_retry_hint() -> None:
    """At MAX_JOBS stored jobs a submission is refused with retry_after; an expiry makes room again."""
    clock = FakeClock()
    settings = config.from_mapping({"TRANSLATION_DELAY": 1, "DELAY_JITTER": 0, "ERROR_RATE": 0, "WORKERS": 10,
                                    "JOB_TTL": 60, "MAX_JOBS": 10})
    engine = JobEngine(settings, clock=clock, rng=random.Random(1))
    for _ in range(10):
        engine.submit("free", "u")
    clock.advance(1)
    try:
        engine.submit("free", "u")
    except CapacityExceeded as e:
        assert e.extra["retry_after"] == 60
    else:
        raise AssertionError("the eleventh job must be refused")
    assert engine.counts()["jobs"] == 10
    clock.advance(60)
    engine.submit("free", "u")
    assert engine.counts()["jobs"] == 1
