"""Unit tests of the planning functions: progress and when queued jobs are expected to start (pure, no engine)."""

from __future__ import annotations

import pytest

import config
from simulator.domain.job import Job
from simulator.domain.planning import EXACT_DEPTH, StartPlan, attempt_seconds, progress
from simulator.domain.status import Stage

NOW = 1000.0


def sim(**overrides: object) -> config.Settings:
    """Return settings with 10 s free attempts (5 s premium), no failures, plus `overrides`."""
    return config.from_mapping({"TRANSLATION_DELAY": 10.0, "PREMIUM_DELAY_FACTOR": 0.5, "ERROR_RATE": 0.0,
                                **overrides})


def test_attempt_seconds_scale_premium_by_its_factor() -> None:
    """A free attempt takes TRANSLATION_DELAY, a premium one that times PREMIUM_DELAY_FACTOR."""
    assert (attempt_seconds("free", sim()), attempt_seconds("premium", sim())) == (10.0, 5.0)


def test_idle_slots_start_the_next_job_now() -> None:
    """With fewer running attempts than WORKERS, the next jobs start at once, one per idle slot."""
    plan = StartPlan([NOW + 4.0], NOW, sim(WORKERS=3))
    assert plan.start() == 0.0
    plan.skip("free", 2)  # the two idle slots
    assert plan.start() == 4.0  # then the running attempt's end


def test_an_attempt_already_due_frees_its_slot_now_and_one_due_soon_then() -> None:
    """An end in the past counts as now, an end 0.4 s away as 0.4 s (not rounded to a second)."""
    assert StartPlan([NOW - 3.0], NOW, sim(WORKERS=1)).start() == 0.0
    assert StartPlan([NOW + 0.4], NOW, sim(WORKERS=1)).start() == pytest.approx(0.4)


def test_with_more_attempts_running_than_workers_a_slot_frees_when_the_excess_has_ended() -> None:
    """Three attempts running, WORKERS 2 (lowered meanwhile): the next job starts when the second of them ends."""
    plan = StartPlan([NOW + 1.0, NOW + 7.0, NOW + 3.0], NOW, sim(WORKERS=2))
    assert plan.start() == 3.0
    plan.skip("free", 1)
    assert plan.start() == 7.0


def test_jobs_ahead_take_their_expected_attempt_in_the_earliest_free_slot() -> None:
    """Each skipped job holds the slot that frees first for its role's attempt: 5 s premium, 10 s free."""
    plan = StartPlan([NOW + 2.0, NOW + 6.0], NOW, sim(WORKERS=2))
    plan.skip("premium", 1)  # 2 → 7
    assert plan.start() == 6.0
    plan.skip("free", 2)  # 6 → 16, 7 → 17
    assert plan.start() == 16.0


def test_failures_shorten_the_expected_attempt_by_half_the_error_rate() -> None:
    """With ERROR_RATE 0.4 an attempt is expected to take 80 % of its time (a failure stops halfway on average)."""
    plan = StartPlan([], NOW, sim(WORKERS=1, ERROR_RATE=0.4))
    plan.skip("free", 1)
    assert plan.start() == pytest.approx(8.0)


def test_beyond_the_exact_depth_jobs_share_a_backlog_among_the_workers() -> None:
    """Jobs deeper than EXACT_DEPTH add their attempt to a backlog that the WORKERS slots share."""
    workers = 4
    plan = StartPlan([], NOW, sim(WORKERS=workers))
    plan.skip("free", EXACT_DEPTH)  # 32 rounds of 10 s on each slot
    assert plan.start() == 320.0
    plan.skip("free", 1)
    assert plan.start() == pytest.approx(320.0 + 10.0 / workers)
    plan.skip("free", workers - 1)
    assert plan.start() == pytest.approx(330.0)  # the same as placing them slot by slot


def test_skipping_in_steps_or_at_once_plans_the_same() -> None:
    """Skipping 200 jobs one by one (a listing) or at once (one job's ETA) gives the same start."""
    one_by_one = StartPlan([NOW + 3.0], NOW, sim(WORKERS=3))
    at_once = StartPlan([NOW + 3.0], NOW, sim(WORKERS=3))
    for _ in range(200):
        one_by_one.skip("free", 1)
    at_once.skip("free", 200)
    assert one_by_one.start() == pytest.approx(at_once.start())


def translating(duration: float, started_at: float = NOW) -> Job:
    """Return a job whose attempt of `duration` seconds started at `started_at`."""
    return Job(job_id="j", role="free", user_id="u", created_at=started_at, video_url=None, target_language=None,
               idempotency_key=None, max_retries=3, stage=Stage.TRANSLATING, attempt_started_at=started_at,
               attempt_duration=duration, attempt_ends_at=started_at + duration)


def test_progress_is_held_below_100_until_the_attempt_is_finished() -> None:
    """A translating job shows at most 99, even read after its end, and 99 for an attempt of no length."""
    job = translating(10.0)
    assert [progress(job, NOW + s) for s in (0.0, 2.5, 9.99, 10.0, 60.0)] == [0, 25, 99, 99, 99]
    assert progress(translating(0.0), NOW) == 99


def test_progress_is_zero_while_queued_and_frozen_once_finished() -> None:
    """A queued job shows 0; a finished one shows where it stopped, whatever the time."""
    job = translating(10.0)
    job.stage = Stage.QUEUED
    assert progress(job, NOW + 5) == 0
    job.stage, job.progress_at_stop = Stage.FINISHED, 40
    assert progress(job, NOW + 500) == 40
