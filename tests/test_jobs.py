"""Unit tests of `jobs.JobEngine`, driven by the fake clock: no sleeping, no sockets."""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import config
from jobs import (
    ERROR_CODES,
    CapacityExceeded,
    IdempotencyMismatch,
    InvalidArgument,
    JobEngine,
    JobNotFound,
    Status,
    TransitionRefused,
    iso,
)
from simulator.store import MemoryStore
from tests.conftest import START, FakeClock, count_feed_sleeps, make_engine

#: The store contract: every test here runs once per store implementation.
pytestmark = pytest.mark.usefixtures("each_store")

# ------------------------------------------------------------------------------------------- helpers


def t(seconds: float) -> str | None:
    """Return the ISO timestamp `seconds` after the start of the fake clock."""
    return iso(START + seconds)


def go_to(clock: FakeClock, seconds: float) -> None:
    """Move the fake clock to `seconds` after its start."""
    clock.advance(START + seconds - clock.now)


def run_to_next_event(clock: FakeClock, engine: JobEngine) -> float:
    """Move the fake clock to the engine's next due event and return that instant (absolute)."""
    due = engine.advance()
    assert due is not None
    clock.advance(due - clock.now)
    return due


def submit(engine: JobEngine, role: str = "free", user_id: str = "alice", **kwargs: Any) -> str:
    """Submit a job and return its id."""
    view, replayed = engine.submit(role, user_id, **kwargs)
    assert replayed is False
    return view["job_id"]


def queued_ids(engine: JobEngine) -> list[str]:
    """Return the ids of the queued jobs in the order they will start."""
    return [view["job_id"] for view in engine.queue()["queued"]]


def running_ids(engine: JobEngine) -> set[str]:
    """Return the ids of the running jobs."""
    return {view["job_id"] for view in engine.queue()["running"]}


def make_job_in(status: Status, clock: FakeClock) -> tuple[JobEngine, str]:
    """Build a manual-mode engine holding one job that is in `status` now."""
    failing = status in (Status.FAILED, Status.PERMANENTLY_FAILED)
    engine = make_engine(
        clock,
        PROCESSING_MODE="manual",
        ERROR_RATE=1.0 if failing else 0.0,
        MAX_RETRIES=1 if status is Status.FAILED else 0,
    )
    job_id = submit(engine)
    if status is Status.CANCELLED:
        engine.cancel(job_id, "test")
    elif status is not Status.PENDING:
        engine.start_next()
        run_to_next_event(clock, engine)
    assert engine.get(job_id)["status"] == status
    return engine, job_id


class SignallingClock(FakeClock):
    """A fake clock that sets `read` whenever someone reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.read = threading.Event()

    def __call__(self) -> float:
        self.read.set()
        return super().__call__()


def in_thread(target: Any, errors: list[BaseException]) -> threading.Thread:
    """Start a daemon thread running `target`, recording any exception in `errors`."""

    def run() -> None:
        try:
            target()
        except BaseException as e:  # reported by the test body
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def held_wait(clock: SignallingClock, wait: Callable[[], Any],
              act: Callable[[], Any]) -> tuple[dict[str, Any], list[BaseException], threading.Thread]:
    """Run `wait()` in one thread and `act()` in another once the waiter has read the clock (it then holds the
    engine's lock until it waits, so `act` comes after the wait began); return the wait's answer (`job`) and its
    real duration (`elapsed`), the errors either raised, and the waiter's thread (joined for up to 3 s)."""
    answers: dict[str, Any] = {}
    errors: list[BaseException] = []

    def waiter_body() -> None:
        began = time.monotonic()
        try:
            answers["job"] = wait()
        finally:
            answers["elapsed"] = time.monotonic() - began

    def actor_body() -> None:
        if not clock.read.wait(2):
            raise AssertionError("the waiter never started")
        act()

    clock.read.clear()
    waiter = in_thread(waiter_body, errors)
    actor = in_thread(actor_body, errors)
    actor.join(3)
    waiter.join(3)
    return answers, errors, waiter


# ------------------------------------------------------------------------------------------- submitting


def test_submit_records_the_request(engine: JobEngine) -> None:
    """A new job carries its role, priority, user, video, language, a UUID4 id and its creation time."""
    view, replayed = engine.submit("premium", "bob", video_url="https://v/1.mp4", target_language="fr")
    assert replayed is False
    assert uuid.UUID(view["job_id"]).version == 4
    assert view["role"] == "premium"
    assert view["priority"] == 1
    assert view["user_id"] == "bob"
    assert view["video_url"] == "https://v/1.mp4"
    assert view["target_language"] == "fr"
    assert view["created_at"] == view["updated_at"] == t(0)
    assert view["attempts"] == 1  # a free slot: it started at once
    assert view["max_retries"] == 3
    assert view["error"] is None
    assert view["cancel_reason"] is None


def test_free_job_has_priority_zero(engine: JobEngine) -> None:
    """Free jobs have priority 0."""
    view, _ = engine.submit("free", "bob")
    assert view["priority"] == 0


@pytest.mark.parametrize("role", ["admin", "", "Premium", None])
def test_submit_refuses_unknown_roles(engine: JobEngine, role: Any) -> None:
    """A role other than free or premium raises InvalidArgument and stores nothing."""
    with pytest.raises(InvalidArgument) as caught:
        engine.submit(role, "bob")
    assert str(caught.value) == f"role must be one of free, premium, got {role!r}."
    assert engine.counts()["jobs"] == 0


def test_a_job_submitted_without_a_user_belongs_to_anonymous(engine: JobEngine) -> None:
    """The default user is `anonymous`, lower case, as the API documents."""
    assert engine.submit()[0]["user_id"] == "anonymous"


@pytest.mark.parametrize("seconds", [-0.5, math.inf, math.nan])
def test_submit_refuses_a_media_duration_that_is_negative_or_not_finite(engine: JobEngine, seconds: float) -> None:
    """An upload's duration must be a finite number of seconds ≥ 0; anything else is refused, naming it."""
    with pytest.raises(InvalidArgument) as caught:
        engine.submit("free", "bob", upload_id="u-1", media_seconds=seconds)
    assert str(caught.value) == f"media_seconds must be a finite number ≥ 0, got {seconds!r}."
    assert engine.counts()["jobs"] == 0


def test_an_uploads_duration_times_a_free_attempt(clock: FakeClock) -> None:
    """With DELAY_PER_MEDIA_SECOND a free job made from an upload takes that many seconds per second of video
    (half a second of video included, and 0 s is allowed); the job shows its upload, and once completed its
    result's URL."""
    engine = make_engine(clock, DELAY_PER_MEDIA_SECOND=0.5, WORKERS=3)
    half = engine.submit("free", "bob", upload_id="u-1", media_seconds=0.5)[0]
    empty = engine.submit("free", "bob", upload_id="u-2", media_seconds=0.0)[0]
    assert (half["upload_id"], empty["upload_id"]) == ("u-1", "u-2")
    done = engine.get(empty["job_id"])  # 0 s of video: done as it starts
    assert (done["status"], done["result_url"]) == ("completed", f"/results/{empty['job_id']}")
    assert engine.get(half["job_id"])["result_url"] is None
    clock.advance(0.2)
    assert engine.get(half["job_id"])["status"] == "pending"
    clock.advance(0.05)
    assert engine.get(half["job_id"])["finished_at"] == t(0.25)


def test_without_delay_per_media_second_an_upload_takes_translation_delay(clock: FakeClock) -> None:
    """DELAY_PER_MEDIA_SECOND 0 (the default) times every attempt by TRANSLATION_DELAY, uploads included."""
    engine = make_engine(clock)
    job_id = engine.submit("free", "bob", upload_id="u-1", media_seconds=3.0)[0]["job_id"]
    clock.advance(10)
    assert engine.get(job_id)["finished_at"] == t(10)


def test_etas_in_the_queue_count_each_uploads_duration(clock: FakeClock) -> None:
    """A queued job's ETA adds the expected length of each attempt before it, an upload's timed by its video, and
    get() shows the ETA the queue's listing shows (it counted the job ahead by TRANSLATION_DELAY: 30 s)."""
    engine = make_engine(clock, DELAY_PER_MEDIA_SECOND=0.5, WORKERS=1)
    engine.submit("free", "bob")  # running: ends at 10
    video = engine.submit("free", "bob", upload_id="u-1", media_seconds=3.0)[0]["job_id"]  # 1.5 s
    plain = engine.submit("free", "bob")[0]["job_id"]  # 10 s
    assert engine.get(video)["eta_seconds"] == 11.5
    assert engine.get(plain)["eta_seconds"] == 21.5
    assert [v["eta_seconds"] for v in engine.queue()["queued"]] == [11.5, 21.5]


# ------------------------------------------------------------------------------------ priority and order


def test_premium_starts_before_free_regardless_of_submission_order(clock: FakeClock) -> None:
    """Premium jobs are queued ahead of free ones submitted earlier, and start first."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    f1, f2 = submit(engine, "free"), submit(engine, "free")
    p1, p2 = submit(engine, "premium"), submit(engine, "premium")
    assert queued_ids(engine) == [p1, p2, f1, f2]
    assert [view["job_id"] for view in engine.start_next(4)] == [p1, p2, f1, f2]


def test_premium_takes_the_freed_slot_in_auto_mode(clock: FakeClock) -> None:
    """When a slot frees, a premium job submitted later starts before waiting free jobs."""
    engine = make_engine(clock, WORKERS=1)
    first, free = submit(engine, "free"), submit(engine, "free")
    premium = submit(engine, "premium")
    go_to(clock, 10)
    assert running_ids(engine) == {premium}
    assert engine.get(premium)["started_at"] == t(10)
    assert engine.get(first)["status"] == "completed"
    assert engine.get(free)["queue_position"] == 1


def test_fifo_within_a_priority(clock: FakeClock) -> None:
    """Jobs of one priority start in the order they were submitted."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    ids = [submit(engine, "free", f"user{i}") for i in range(5)]
    assert queued_ids(engine) == ids
    assert [view["queue_position"] for view in engine.jobs()] == [1, 2, 3, 4, 5]
    assert [view["job_id"] for view in engine.start_next(2)] == ids[:2]
    assert queued_ids(engine) == ids[2:]


@pytest.mark.parametrize(
    ("role", "expected_order"),
    [
        # The failed free job goes behind the other free jobs; the premium job took the slot.
        ("free", ["same1", "same2", "retried"]),
        # The failed premium job goes behind the other premium job but stays ahead of free ones.
        ("premium", ["same2", "retried", "other"]),
    ],
)
def test_retried_job_goes_to_the_back_of_its_priority(
    clock: FakeClock, role: str, expected_order: list[str]
) -> None:
    """A job whose attempt failed is queued again behind the jobs of its priority already waiting."""
    engine = make_engine(clock, WORKERS=1, ERROR_RATE=1.0)
    names = {"retried": submit(engine, role)}  # its first attempt will fail
    engine.configure({"ERROR_RATE": 0.0})
    names["same1"] = submit(engine, role)
    names["same2"] = submit(engine, role)
    names["other"] = submit(engine, "free" if role == "premium" else "premium")
    run_to_next_event(clock, engine)
    by_id = {job_id: name for name, job_id in names.items()}
    assert [by_id[i] for i in queued_ids(engine)] == expected_order
    retried = engine.get(names["retried"])
    assert retried["status"] == "failed"
    assert retried["queue_position"] == expected_order.index("retried") + 1


def test_queue_order_survives_many_starts_and_cancellations(clock: FakeClock) -> None:
    """Queue positions stay right after thousands of starts and cancellations from the middle."""
    engine = make_engine(clock, PROCESSING_MODE="manual", TRANSLATION_DELAY=1000.0)
    ids = [submit(engine, "free", "u") for _ in range(1500)]
    started = engine.start_next(1100)
    assert [view["job_id"] for view in started] == ids[:1100]
    for job_id in ids[1200:1300]:
        engine.cancel(job_id)
    expected = ids[1100:1200] + ids[1300:]
    assert queued_ids(engine) == expected
    assert engine.get(ids[1300])["queue_position"] == 101
    assert engine.get(ids[-1])["queue_position"] == len(expected)


# ---------------------------------------------------------------------------------- slots in auto mode


def test_auto_mode_runs_at_most_workers_jobs(clock: FakeClock) -> None:
    """In auto mode WORKERS jobs run at once and the rest wait, even when processed in one late advance."""
    engine = make_engine(clock, WORKERS=2)
    ids = [submit(engine) for _ in range(5)]
    assert running_ids(engine) == set(ids[:2])
    assert queued_ids(engine) == ids[2:]
    go_to(clock, 1000)
    views = [engine.get(i) for i in ids]
    assert [v["started_at"] for v in views] == [t(0), t(0), t(10), t(10), t(20)]
    assert [v["finished_at"] for v in views] == [t(10), t(10), t(20), t(20), t(30)]


def test_raising_workers_starts_more_jobs_at_once(clock: FakeClock) -> None:
    """Raising WORKERS starts queued jobs in the new slots at the instant of the change."""
    engine = make_engine(clock, WORKERS=1)
    ids = [submit(engine) for _ in range(4)]
    go_to(clock, 3)
    engine.configure({"WORKERS": 3})
    assert running_ids(engine) == set(ids[:3])
    assert [engine.get(i)["started_at"] for i in ids[1:3]] == [t(3), t(3)]
    assert queued_ids(engine) == ids[3:]


def test_lowering_workers_lets_running_jobs_finish_and_starts_fewer(clock: FakeClock) -> None:
    """After WORKERS is lowered, running jobs finish and only the new number of slots is refilled."""
    engine = make_engine(clock, WORKERS=2)
    ids = [submit(engine) for _ in range(4)]
    go_to(clock, 1)
    engine.configure({"WORKERS": 1})
    assert running_ids(engine) == set(ids[:2])
    go_to(clock, 10)
    assert running_ids(engine) == {ids[2]}
    go_to(clock, 100)
    assert engine.get(ids[3])["started_at"] == t(20)


def test_switching_manual_to_auto_starts_jobs_at_once(clock: FakeClock) -> None:
    """Switching to auto mode starts WORKERS queued jobs at the instant of the switch."""
    engine = make_engine(clock, PROCESSING_MODE="manual", WORKERS=2)
    ids = [submit(engine) for _ in range(3)]
    go_to(clock, 7)
    engine.configure({"PROCESSING_MODE": "auto"})
    assert running_ids(engine) == set(ids[:2])
    assert engine.get(ids[0])["started_at"] == t(7)
    assert engine.queue()["mode"] == "auto"


def test_switching_auto_to_manual_stops_refilling_slots(clock: FakeClock) -> None:
    """In manual mode a freed slot stays empty: the next job waits for start_next."""
    engine = make_engine(clock, WORKERS=1)
    first, second = submit(engine), submit(engine)
    engine.configure({"PROCESSING_MODE": "manual"})
    go_to(clock, 50)
    assert engine.get(first)["status"] == "completed"
    assert engine.get(second)["stage"] == "queued"
    assert engine.get(second)["attempts"] == 0


# ------------------------------------------------------------------------------------------ manual mode


def test_manual_mode_starts_nothing_until_start_next(clock: FakeClock) -> None:
    """In manual mode jobs stay queued however much time passes, until start_next starts them."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    ids = [submit(engine) for _ in range(3)]
    go_to(clock, 500)
    assert engine.queue()["running"] == []
    assert all(engine.get(i)["attempts"] == 0 for i in ids)
    started = engine.start_next(2)
    assert [v["job_id"] for v in started] == ids[:2]
    assert all(v["started_at"] == t(500) for v in started)
    assert queued_ids(engine) == ids[2:]


def test_start_next_ignores_workers(clock: FakeClock) -> None:
    """start_next starts as many jobs as asked, even beyond WORKERS."""
    engine = make_engine(clock, PROCESSING_MODE="manual", WORKERS=1)
    ids = [submit(engine) for _ in range(4)]
    assert len(engine.start_next(3)) == 3
    assert running_ids(engine) == set(ids[:3])


def test_start_next_with_a_count_larger_than_the_queue_starts_them_all(clock: FakeClock) -> None:
    """A count beyond the queue length starts every queued job, and an empty queue starts none."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    ids = [submit(engine) for _ in range(2)]
    assert [v["job_id"] for v in engine.start_next(10)] == ids
    assert engine.start_next(10) == []


def test_start_next_does_not_restart_running_or_finished_jobs(clock: FakeClock) -> None:
    """start_next only picks queued jobs."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    done, running = submit(engine), submit(engine)
    engine.start_next()
    go_to(clock, 10)
    engine.start_next()
    assert engine.start_next(5) == []
    assert engine.get(done)["attempts"] == 1
    assert engine.get(running)["attempts"] == 1


@pytest.mark.parametrize("count", [0, -1, 1.5, "2", True, None])
def test_start_next_refuses_invalid_counts(clock: FakeClock, count: Any) -> None:
    """A count that is not an integer ≥ 1 raises InvalidArgument and starts nothing."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    submit(engine)
    with pytest.raises(InvalidArgument, match=r"count must be an integer ≥ 1, got "):
        engine.start_next(count)
    assert engine.queue()["running"] == []


# ---------------------------------------------------------------------------------------------- timing


@pytest.mark.parametrize(("role", "seconds"), [("free", 10.0), ("premium", 5.0)])
def test_attempt_takes_its_delay_exactly(clock: FakeClock, role: str, seconds: float) -> None:
    """Without jitter a free attempt takes TRANSLATION_DELAY, a premium one that times PREMIUM_DELAY_FACTOR."""
    engine = make_engine(clock)
    job_id = submit(engine, role)
    go_to(clock, seconds - 1e-6)
    assert engine.get(job_id)["status"] == "pending"
    go_to(clock, seconds)
    view = engine.get(job_id)
    assert view["status"] == "completed"
    assert (view["started_at"], view["finished_at"], view["updated_at"]) == (t(0), t(seconds), t(seconds))


def test_job_finishes_at_its_due_instant_when_asked_much_later(clock: FakeClock) -> None:
    """A job asked about long after it was due says it finished at the due instant."""
    engine = make_engine(clock)
    job_id = submit(engine)
    go_to(clock, 1000)
    view = engine.get(job_id)
    assert view["finished_at"] == view["updated_at"] == t(10)


def test_freed_slot_starts_the_next_job_at_the_same_instant(clock: FakeClock) -> None:
    """The next job's started_at equals the finished_at of the job whose slot it took."""
    engine = make_engine(clock, WORKERS=1)
    first, second = submit(engine), submit(engine)
    go_to(clock, 13)
    assert engine.get(second)["started_at"] == engine.get(first)["finished_at"] == t(10)
    assert engine.get(second)["progress"] == 30


def test_a_late_advance_replays_a_chain_of_jobs_with_exact_timestamps(clock: FakeClock) -> None:
    """One late advance processes a chain of premium and free jobs, each at its own instant."""
    engine = make_engine(clock, WORKERS=1)
    f1, f2 = submit(engine, "free"), submit(engine, "free")
    go_to(clock, 2)
    p1, p2 = submit(engine, "premium"), submit(engine, "premium")
    go_to(clock, 500)
    expected = {f1: (0, 10), p1: (10, 15), p2: (15, 20), f2: (20, 30)}
    for job_id, (start, end) in expected.items():
        view = engine.get(job_id)
        assert (view["started_at"], view["finished_at"]) == (t(start), t(end))


def test_a_job_ends_exactly_at_its_due_instant_after_a_mid_run_submission(clock: FakeClock) -> None:
    """Submitting while others run does not shift their end times."""
    engine = make_engine(clock, WORKERS=2)
    a = submit(engine)
    go_to(clock, 4)
    b = submit(engine)
    go_to(clock, 60)
    assert engine.get(a)["finished_at"] == t(10)
    assert engine.get(b)["finished_at"] == t(14)


def test_a_cancelled_attempt_does_not_hold_up_the_other_ends_of_a_late_advance(clock: FakeClock) -> None:
    """After a running job is cancelled, one late advance still ends every other attempt at its own instant."""
    engine = make_engine(clock, WORKERS=2)
    cancelled = submit(engine)
    go_to(clock, 1)
    b = submit(engine)
    c, d, e = submit(engine), submit(engine), submit(engine)
    go_to(clock, 2)
    engine.cancel(cancelled)  # its attempt would have ended at 10; c takes the slot at 2
    go_to(clock, 100)
    ends = {job_id: engine.get(job_id)["finished_at"] for job_id in (b, c, d, e)}
    assert ends == {b: t(11), c: t(12), d: t(21), e: t(22)}


def test_an_attempt_that_failed_and_restarted_does_not_hold_up_an_earlier_end(clock: FakeClock) -> None:
    """A job that fails and is retried at once ends later; a job due in between still ends on time."""
    engine = make_engine(clock, WORKERS=2, ERROR_RATE=1.0)
    failing = submit(engine)
    fails_in = engine.get(failing)["eta_seconds"]  # exact: the moment its attempt fails
    engine.configure({"ERROR_RATE": 0.0})  # the retry and the next job succeed
    other = submit(engine)
    go_to(clock, 10 + fails_in / 2)  # past the other's end (10), before the retry's (fails_in + 10)
    engine.advance()
    assert engine.get(other)["status"] == "completed"
    assert engine.get(other)["finished_at"] == t(10)
    retried = engine.get(failing)
    assert (retried["status"], retried["attempts"]) == ("pending", 2)
    assert retried["eta_seconds"] == pytest.approx(fails_in / 2, abs=1e-3)


def test_jitter_keeps_durations_inside_the_allowed_spread(clock: FakeClock) -> None:
    """With DELAY_JITTER j every attempt takes between (1-j) and (1+j) times its base, and they vary."""
    engine = make_engine(clock, DELAY_JITTER=0.5, WORKERS=100)
    for role in ("free", "premium"):
        submit(engine, role)
    free = [engine.submit("free", "u")[0]["eta_seconds"] for _ in range(40)]
    premium = [engine.submit("premium", "u")[0]["eta_seconds"] for _ in range(40)]
    assert all(5.0 - 1e-3 <= d <= 15.0 + 1e-3 for d in free)
    assert all(2.5 - 1e-3 <= d <= 7.5 + 1e-3 for d in premium)
    assert max(free) - min(free) > 3.0
    assert max(premium) - min(premium) > 1.5


def test_jittered_job_finishes_when_its_eta_said(clock: FakeClock) -> None:
    """A jittered attempt ends exactly after the duration its eta announced at the start."""
    engine = make_engine(clock, DELAY_JITTER=0.3)
    view, _ = engine.submit()
    duration = view["eta_seconds"]
    assert duration != 10.0
    go_to(clock, duration - 0.01)
    assert engine.get(view["job_id"])["status"] == "pending"
    go_to(clock, duration + 0.01)
    assert engine.get(view["job_id"])["status"] == "completed"


def test_a_zero_delay_job_is_completed_when_submitted(clock: FakeClock) -> None:
    """With TRANSLATION_DELAY 0 the submission already answers the completed job (it ended at that instant)."""
    engine = make_engine(clock, TRANSLATION_DELAY=0.0)
    view, _ = engine.submit()
    assert view["status"] == "completed"
    assert view["progress"] == 100
    assert view["finished_at"] == t(0)


def test_zero_delay_jobs_complete_when_started_manually(clock: FakeClock) -> None:
    """In manual mode, zero-delay jobs are completed in the views start_next returns."""
    engine = make_engine(clock, TRANSLATION_DELAY=0.0, PROCESSING_MODE="manual")
    for _ in range(3):
        submit(engine)
    started = engine.start_next(3)
    assert [v["status"] for v in started] == ["completed"] * 3


# -------------------------------------------------------------------------------------------- failures


def test_a_failed_attempt_records_its_error_and_queues_the_job_again(clock: FakeClock) -> None:
    """With ERROR_RATE 1 the attempt fails with a known error code and the job is `failed` and queued."""
    engine = make_engine(clock, PROCESSING_MODE="manual", ERROR_RATE=1.0, MAX_RETRIES=2)
    job_id = submit(engine)
    engine.start_next()
    due = run_to_next_event(clock, engine)
    view = engine.get(job_id)
    assert view["status"] == "failed"
    assert view["result"] == "pending"
    assert view["done"] is False
    assert view["stage"] == "queued"
    assert view["queue_position"] == 1
    assert view["progress"] == 0
    assert view["attempts"] == 1
    assert view["finished_at"] is None
    assert view["updated_at"] == iso(due)
    assert view["error"]["code"] in ("timeout", "internal_error", "unknown")
    assert view["error"]["message"]
    assert view["error"]["attempt"] == 1


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_a_job_fails_permanently_after_one_plus_max_retries_attempts(clock: FakeClock, max_retries: int) -> None:
    """A job that keeps failing is `permanently_failed` after exactly 1 + MAX_RETRIES attempts."""
    engine = make_engine(clock, PROCESSING_MODE="manual", ERROR_RATE=1.0, MAX_RETRIES=max_retries)
    job_id = submit(engine)
    for attempt in range(1, max_retries + 2):
        assert [v["job_id"] for v in engine.start_next()] == [job_id]
        due = run_to_next_event(clock, engine)
        view = engine.get(job_id)
        assert view["attempts"] == attempt
        assert view["error"]["attempt"] == attempt
        expected = "permanently_failed" if attempt == max_retries + 1 else "failed"
        assert view["status"] == expected
    assert view["finished_at"] == iso(due)
    assert view["result"] == "error"
    assert view["done"] is True
    assert engine.start_next() == []


def test_a_failed_job_is_retried_at_once_when_a_slot_is_free(clock: FakeClock) -> None:
    """In auto mode a failed attempt with a free slot starts its retry at the instant it failed."""
    engine = make_engine(clock, ERROR_RATE=1.0)
    job_id = submit(engine)
    engine.configure({"ERROR_RATE": 0.0})
    due = run_to_next_event(clock, engine)
    view = engine.get(job_id)
    assert (view["status"], view["stage"], view["attempts"]) == ("pending", "translating", 2)
    assert view["error"]["at"] == iso(due)  # the last failure stays visible while the retry runs
    assert view["started_at"] == t(0)  # when the first attempt started
    go_to(clock, 100)
    view = engine.get(job_id)
    assert (view["status"], view["error"], view["finished_at"]) == ("completed", None, iso(due + 10))


def test_failures_happen_at_a_moment_inside_the_attempt(clock: FakeClock) -> None:
    """Failing attempts end at varied moments within their duration, never at or after its end."""
    engine = make_engine(clock, PROCESSING_MODE="manual", ERROR_RATE=1.0, MAX_RETRIES=0)
    ids = [submit(engine) for _ in range(30)]
    engine.start_next(30)
    go_to(clock, 9.999)
    views = [engine.get(i) for i in ids]
    assert all(v["status"] == "permanently_failed" for v in views)
    assert all(t(0) <= v["finished_at"] < t(10) for v in views)
    assert all(0 <= v["progress"] < 100 for v in views)
    assert len({v["finished_at"] for v in views}) > 20
    assert {v["error"]["code"] for v in views} == set(ERROR_CODES)


def test_progress_of_a_failed_attempt_is_where_it_stopped(clock: FakeClock) -> None:
    """A permanently failed job keeps the progress its attempt reached when it failed."""
    engine = make_engine(clock, PROCESSING_MODE="manual", ERROR_RATE=1.0, MAX_RETRIES=0)
    job_id = submit(engine)
    engine.start_next()
    due = run_to_next_event(clock, engine)
    assert engine.get(job_id)["progress"] == int(100 * (due - START) / 10.0)


def test_error_rate_zero_never_fails(clock: FakeClock) -> None:
    """With ERROR_RATE 0 every job completes at its first attempt."""
    engine = make_engine(clock, DELAY_JITTER=0.5, WORKERS=10)
    for i in range(60):
        submit(engine, "premium" if i % 2 else "free")
    go_to(clock, 1000)
    views = engine.jobs()
    assert all(v["status"] == "completed" and v["attempts"] == 1 and v["error"] is None for v in views)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.PERMANENTLY_FAILED, Status.CANCELLED])
def test_terminal_statuses_never_change(clock: FakeClock, status: Status) -> None:
    """A finished job keeps its status, version and timestamps through time, processing and config changes."""
    engine, job_id = make_job_in(status, clock)
    before = engine.get(job_id)
    engine.configure({"PROCESSING_MODE": "auto", "ERROR_RATE": 0.5, "MAX_RETRIES": 10})
    assert engine.start_next(3) == []
    clock.advance(1000)
    if status is not Status.CANCELLED:
        with pytest.raises(TransitionRefused):
            engine.cancel(job_id, "too late")
    after = engine.get(job_id)
    assert after == before


# ---------------------------------------------------------------------- progress, position, eta, version


def test_progress_is_zero_queued_linear_translating_and_full_when_completed(clock: FakeClock) -> None:
    """Progress is 0 while queued, elapsed/duration while translating (below 100) and 100 when completed."""
    engine = make_engine(clock, WORKERS=1)
    first, second = submit(engine), submit(engine)
    assert engine.get(second)["progress"] == 0
    for seconds, expected in [(0, 0), (2.5, 25), (5, 50), (7.77, 77), (9.999, 99)]:
        go_to(clock, seconds)
        assert engine.get(first)["progress"] == expected
    go_to(clock, 10)
    assert engine.get(first)["progress"] == 100
    go_to(clock, 11)
    assert engine.get(second)["progress"] == 10


def test_queue_position_is_one_based_while_queued_and_none_otherwise(clock: FakeClock) -> None:
    """Queued jobs count from 1 with premium ahead; running and finished jobs have no position."""
    engine = make_engine(clock, WORKERS=1)
    running, free1, free2 = submit(engine), submit(engine), submit(engine)
    premium = submit(engine, "premium")
    positions = {i: engine.get(i)["queue_position"] for i in (running, premium, free1, free2)}
    assert positions == {running: None, premium: 1, free1: 2, free2: 3}
    go_to(clock, 10)
    assert engine.get(running)["queue_position"] is None  # completed
    assert engine.get(premium)["queue_position"] is None  # translating
    assert engine.get(free1)["queue_position"] == 1


def test_eta_is_exact_while_translating(clock: FakeClock) -> None:
    """A translating job's eta is the time left in its attempt."""
    engine = make_engine(clock)
    free, premium = submit(engine, "free"), submit(engine, "premium")
    go_to(clock, 2.25)
    assert engine.get(free)["eta_seconds"] == 7.75
    assert engine.get(premium)["eta_seconds"] == 2.75
    go_to(clock, 2.8765432)
    assert engine.get(free)["eta_seconds"] == 7.123  # to the millisecond


def test_eta_is_exact_while_translating_in_manual_mode(clock: FakeClock) -> None:
    """Manual mode still knows when a running attempt ends."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    engine.start_next()
    go_to(clock, 4)
    assert engine.get(job_id)["eta_seconds"] == 6.0


def test_eta_while_queued_in_auto_mode_estimates_the_end(clock: FakeClock) -> None:
    """A queued job's eta counts the slot it waits for plus its own attempt, and matches the real end."""
    engine = make_engine(clock, WORKERS=1)
    _, free1, free2 = submit(engine), submit(engine), submit(engine)
    assert engine.get(free1)["eta_seconds"] == 20.0
    assert engine.get(free2)["eta_seconds"] == 30.0
    premium = submit(engine, "premium")
    assert engine.get(premium)["eta_seconds"] == 15.0
    go_to(clock, 4)
    assert engine.get(free1)["eta_seconds"] == 21.0
    assert engine.get(free2)["eta_seconds"] == 31.0
    go_to(clock, 100)
    assert engine.get(free1)["finished_at"] == t(25)
    assert engine.get(free2)["finished_at"] == t(35)


def test_eta_while_queued_with_several_workers(clock: FakeClock) -> None:
    """With two slots a queued job waits for the earlier of the two running attempts."""
    engine = make_engine(clock, WORKERS=2)
    submit(engine)
    go_to(clock, 2)
    submit(engine)
    waiting = submit(engine)
    assert engine.get(waiting)["eta_seconds"] == 18.0
    go_to(clock, 100)
    assert engine.get(waiting)["finished_at"] == t(20)


def test_eta_while_queued_when_more_jobs_run_than_workers(clock: FakeClock) -> None:
    """When more jobs run than WORKERS allows, a queued job waits until the count drops below WORKERS."""
    engine = make_engine(clock, PROCESSING_MODE="manual", WORKERS=1)
    for start in (0, 2, 4):
        go_to(clock, start)
        submit(engine)
        engine.start_next()
    waiting = submit(engine)
    go_to(clock, 5)
    engine.configure({"PROCESSING_MODE": "auto"})
    assert engine.get(waiting)["eta_seconds"] == 19.0
    go_to(clock, 100)
    assert engine.get(waiting)["started_at"] == t(14)
    assert engine.get(waiting)["finished_at"] == t(24)


def test_a_queued_eta_counts_each_job_ahead_as_an_expected_attempt_when_attempts_fail(clock: FakeClock) -> None:
    """With ERROR_RATE r each job ahead holds its slot for (1 - r/2) of an attempt: failures stop halfway."""
    engine = make_engine(clock, WORKERS=1, ERROR_RATE=0.5)
    running = submit(engine)
    free_next, premium_next = submit(engine), submit(engine, "premium")
    last = submit(engine)
    left = engine.get(running)["eta_seconds"]  # exact: when the running attempt ends, by failing or not
    assert engine.get(premium_next)["eta_seconds"] == pytest.approx(left + 5.0, abs=1e-3)
    assert engine.get(free_next)["eta_seconds"] == pytest.approx(left + 5.0 * 0.75 + 10.0, abs=1e-3)
    assert engine.get(last)["eta_seconds"] == pytest.approx(left + 5.0 * 0.75 + 10.0 * 0.75 + 10.0, abs=1e-3)


def test_etas_deep_in_the_queue_share_the_backlog_among_the_workers(clock: FakeClock) -> None:
    """Past the depth planned slot by slot, the ETA still grows by one attempt per WORKERS jobs ahead."""
    workers = 4
    engine = make_engine(clock, WORKERS=workers)  # 10 s attempts, no failures, no jitter: the truth is known
    for _ in range(workers + 300):
        submit(engine)
    etas = [view["eta_seconds"] for view in engine.queue()["queued"]]
    assert len(etas) == 300
    for position, eta in enumerate(etas, 1):
        exact = 10.0 * ((position - 1) // workers + 1) + 10.0  # its slot frees after every job ahead of it
        assert exact - 10.0 <= eta <= exact + 10.0, position
        if position > 128 and (position - 1) % workers == 0:
            assert eta == exact, position


def test_a_running_jobs_eta_counts_down_to_zero_in_its_last_second(clock: FakeClock) -> None:
    """A translating job's eta keeps falling below one second (0.75 s, 0.001 s), and the job behind counts from it."""
    engine = make_engine(clock, WORKERS=1)
    job_id, behind = submit(engine), submit(engine)
    go_to(clock, 9.25)
    assert engine.get(job_id)["eta_seconds"] == 0.75
    assert engine.get(behind)["eta_seconds"] == 10.75
    go_to(clock, 9.999)
    assert engine.get(job_id)["eta_seconds"] == 0.001
    assert engine.get(job_id)["progress"] == 99


def test_progress_of_a_short_attempt_moves_with_its_time(clock: FakeClock) -> None:
    """An attempt shorter than a second still reports its share done (25, 50, 99), not a constant."""
    engine = make_engine(clock, TRANSLATION_DELAY=0.5)
    job_id = submit(engine)
    for seconds, expected in [(0.125, 25), (0.25, 50), (0.375, 75), (0.498046875, 99)]:  # exact in binary
        go_to(clock, seconds)
        assert engine.get(job_id)["progress"] == expected
    go_to(clock, 0.5)
    assert engine.get(job_id)["progress"] == 100


def test_eta_is_none_while_queued_in_manual_mode(clock: FakeClock) -> None:
    """Nothing starts by itself in manual mode, so a queued job has no eta."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    assert engine.get(job_id)["eta_seconds"] is None


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.PERMANENTLY_FAILED, Status.CANCELLED])
def test_eta_is_none_when_finished(clock: FakeClock, status: Status) -> None:
    """A finished job has no eta."""
    engine, job_id = make_job_in(status, clock)
    assert engine.get(job_id)["eta_seconds"] is None


def test_version_grows_on_every_transition_and_only_then(clock: FakeClock) -> None:
    """The version rises at submission→start, fail, retry start and give-up, but not as time or others move."""
    engine = make_engine(clock, PROCESSING_MODE="manual", ERROR_RATE=1.0, MAX_RETRIES=1)
    ahead = submit(engine)
    job_id = submit(engine)
    versions = [engine.get(job_id)["version"]]
    engine.start_next()  # the job ahead starts: this one only moves up the queue
    engine.cancel(ahead)
    assert engine.get(job_id)["queue_position"] == 1
    assert engine.get(job_id)["version"] == versions[-1]
    for _ in range(2):
        engine.start_next()
        versions.append(engine.get(job_id)["version"])  # attempt started
        clock.advance(1e-4)
        assert engine.get(job_id)["version"] == versions[-1]  # time passing is no transition
        run_to_next_event(clock, engine)
        versions.append(engine.get(job_id)["version"])  # failed, then permanently failed
    assert engine.get(job_id)["status"] == "permanently_failed"
    assert len(versions) == 5
    assert versions == sorted(set(versions))


def test_every_change_of_a_job_is_published_with_its_kind_and_new_version(clock: FakeClock) -> None:
    """The change feed numbers each job's changes: submitted 1, started 2, failed 3, retried 4, then its end."""
    engine = make_engine(clock, ERROR_RATE=1.0, MAX_RETRIES=1, WORKERS=1)
    doomed = submit(engine)
    run_to_next_event(clock, engine)  # fails, and the retry starts at once
    run_to_next_event(clock, engine)  # fails again: no retry left
    engine.configure({"ERROR_RATE": 0.0})
    done, dropped = submit(engine), submit(engine)
    engine.cancel(dropped)
    run_to_next_event(clock, engine)
    engine.advance()
    changes: dict[str, list[tuple[str, int]]] = {}
    for change in engine.feed.since(0):
        changes.setdefault(change.job_id, []).append((change.kind, change.version))
    assert changes[doomed] == [("submitted", 1), ("started", 2), ("failed", 3), ("retried", 4),
                               ("permanently_failed", 5)]
    assert changes[done] == [("submitted", 1), ("started", 2), ("completed", 3)]
    assert changes[dropped] == [("submitted", 1), ("cancelled", 2)]
    submitted_at = clock.now - 10  # `done` was submitted and started 10 s before it completed, now
    assert [c.at for c in engine.feed.since(0) if c.job_id == done] == [submitted_at, submitted_at, clock.now]
    assert engine.get(done)["version"] == 3


def test_cancellation_raises_the_version(clock: FakeClock) -> None:
    """Cancelling a job is a transition of its own."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    before = engine.get(job_id)["version"]
    assert engine.cancel(job_id)[0]["version"] > before


@pytest.mark.parametrize(
    ("status", "result", "done"),
    [
        (Status.PENDING, "pending", False),
        (Status.FAILED, "pending", False),
        (Status.COMPLETED, "completed", True),
        (Status.PERMANENTLY_FAILED, "error", True),
        (Status.CANCELLED, "error", True),
    ],
)
def test_result_and_done_match_the_spec(clock: FakeClock, status: Status, result: str, done: bool) -> None:
    """`result` is the three-value view of the status and `done` tells whether it is terminal."""
    engine, job_id = make_job_in(status, clock)
    view = engine.get(job_id)
    assert (view["status"], view["result"], view["done"]) == (status.value, result, done)
    assert (view["finished_at"] is not None) is done


# ------------------------------------------------------------------------------------------ cancellation


def test_cancel_a_queued_job(clock: FakeClock) -> None:
    """Cancelling a queued job finishes it now with its reason, and the jobs behind it move up."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    doomed, behind = submit(engine), submit(engine)
    go_to(clock, 3)
    view, already = engine.cancel(doomed, "duplicate")
    assert already is False
    assert (view["status"], view["cancel_reason"], view["finished_at"]) == ("cancelled", "duplicate", t(3))
    assert (view["queue_position"], view["progress"], view["attempts"]) == (None, 0, 0)
    assert engine.get(behind)["queue_position"] == 1
    assert queued_ids(engine) == [behind]


def test_cancel_a_running_job_frees_its_slot_at_that_instant(clock: FakeClock) -> None:
    """Cancelling a running job keeps its progress, and the next job starts at the same instant."""
    engine = make_engine(clock, WORKERS=1)
    doomed, waiting = submit(engine), submit(engine)
    go_to(clock, 4)
    view, already = engine.cancel(doomed, "wrong language")
    assert already is False
    assert (view["status"], view["progress"], view["finished_at"]) == ("cancelled", 40, t(4))
    assert view["cancel_reason"] == "wrong language"
    assert engine.get(waiting)["started_at"] == t(4)
    go_to(clock, 100)  # past the cancelled attempt's old end: nothing happens to it
    assert engine.get(doomed) == {**view, "progress": 40}
    assert engine.get(waiting)["finished_at"] == t(14)


def test_cancel_a_running_job_in_manual_mode_starts_nothing(clock: FakeClock) -> None:
    """In manual mode the slot a cancellation frees stays empty."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    doomed, waiting = submit(engine), submit(engine)
    engine.start_next()
    engine.cancel(doomed)
    assert engine.get(waiting)["stage"] == "queued"


def test_cancel_a_failed_job_waiting_for_its_retry(clock: FakeClock) -> None:
    """A failed job queued for a retry can be cancelled; it shows no progress from the failed attempt."""
    engine, job_id = make_job_in(Status.FAILED, clock)
    view, already = engine.cancel(job_id, "give up")
    assert already is False
    assert (view["status"], view["progress"], view["queue_position"]) == ("cancelled", 0, None)
    assert view["error"] is not None  # the failure that happened stays on record
    assert engine.start_next() == []


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.PERMANENTLY_FAILED])
def test_cancel_a_finished_job_is_refused(clock: FakeClock, status: Status) -> None:
    """Completed and permanently failed jobs cannot be cancelled."""
    engine, job_id = make_job_in(status, clock)
    with pytest.raises(TransitionRefused) as caught:
        engine.cancel(job_id, "late")
    assert caught.value.extra == {"job_id": job_id, "job_status": status.value}
    assert caught.value.detail == str(caught.value) == f"Job {job_id} is {status.value} and can no longer be cancelled."
    assert engine.get(job_id)["cancel_reason"] is None


def test_cancel_a_cancelled_job_again_answers_already(clock: FakeClock) -> None:
    """Cancelling twice returns already=True and keeps the first reason and version."""
    engine = make_engine(clock)
    job_id = submit(engine)
    first, _ = engine.cancel(job_id, "first")
    clock.advance(5)
    again, already = engine.cancel(job_id, "second")
    assert already is True
    assert again == first
    assert again["cancel_reason"] == "first"


def test_cancel_an_unknown_job_raises_not_found(engine: JobEngine) -> None:
    """Cancelling an id that never existed raises JobNotFound."""
    with pytest.raises(JobNotFound):
        engine.cancel("no-such-job")


def test_get_an_unknown_job_raises_not_found(engine: JobEngine) -> None:
    """Reading an id that never existed raises JobNotFound."""
    job_id = str(uuid.uuid4())
    with pytest.raises(JobNotFound) as caught:
        engine.get(job_id)
    assert (caught.value.detail, caught.value.extra) == (f"No job with id {job_id!r}.", {"job_id": job_id})


# ---------------------------------------------------------------------------------------------- cleanup


def finished_mix(clock: FakeClock) -> tuple[JobEngine, dict[str, str]]:
    """Return an engine holding one job of each status (failed excepted) and their ids by status."""
    engine = make_engine(clock, PROCESSING_MODE="manual", ERROR_RATE=1.0, MAX_RETRIES=0)
    ids = {"permanently_failed": submit(engine)}
    engine.start_next()
    go_to(clock, 10)
    engine.configure({"ERROR_RATE": 0.0})
    ids["completed"] = submit(engine)
    engine.start_next()
    go_to(clock, 20)
    ids["cancelled"] = submit(engine)
    engine.cancel(ids["cancelled"])
    ids["pending"] = submit(engine)
    return engine, ids


def test_cleanup_removes_completed_jobs_by_default(clock: FakeClock) -> None:
    """Without arguments cleanup removes only completed jobs and says how many."""
    engine, ids = finished_mix(clock)
    assert engine.cleanup() == 1
    with pytest.raises(JobNotFound):
        engine.get(ids["completed"])
    assert {v["status"] for v in engine.jobs()} == {"permanently_failed", "cancelled", "pending"}


def test_cleanup_removes_the_given_statuses(clock: FakeClock) -> None:
    """Cleanup with statuses removes exactly the finished jobs in those statuses."""
    engine, _ = finished_mix(clock)
    assert engine.cleanup([Status.CANCELLED, Status.PERMANENTLY_FAILED]) == 2
    assert {v["status"] for v in engine.jobs()} == {"completed", "pending"}
    assert engine.cleanup([Status.CANCELLED]) == 0


def test_cleanup_older_than_keeps_younger_jobs(clock: FakeClock) -> None:
    """older_than removes jobs finished at least that long ago and keeps younger ones."""
    engine = make_engine(clock, WORKERS=1)
    old, young = submit(engine), submit(engine)  # finish at 10 and 20
    go_to(clock, 30)
    assert engine.cleanup(older_than=15) == 1
    assert engine.get(young)["status"] == "completed"
    with pytest.raises(JobNotFound):
        engine.get(old)
    assert engine.cleanup(older_than=10.001) == 0
    assert engine.cleanup(older_than=10) == 1  # finished exactly 10 s ago


@pytest.mark.parametrize("statuses", [[Status.PENDING], [Status.FAILED], [Status.COMPLETED, Status.PENDING]])
def test_cleanup_refuses_unfinished_statuses(clock: FakeClock, statuses: list[Status]) -> None:
    """Asking to clean up a non-terminal status raises InvalidArgument and removes nothing."""
    engine, _ = finished_mix(clock)
    with pytest.raises(InvalidArgument):
        engine.cleanup(statuses)
    assert engine.counts()["jobs"] == 4


def test_cleanup_refuses_a_negative_age(engine: JobEngine) -> None:
    """A negative older_than raises InvalidArgument."""
    with pytest.raises(InvalidArgument):
        engine.cleanup(older_than=-1)


def test_cleanup_errors_say_what_was_wrong(engine: JobEngine) -> None:
    """A refused cleanup names the unfinished statuses asked for, or the negative age."""
    with pytest.raises(InvalidArgument, match=r"not failed, pending\."):
        engine.cleanup([Status.PENDING, Status.COMPLETED, Status.FAILED])
    with pytest.raises(InvalidArgument, match=r"older_than must be ≥ 0, got -1"):
        engine.cleanup(older_than=-1)


def test_removed_jobs_are_gone_everywhere(clock: FakeClock) -> None:
    """A cleaned-up job raises JobNotFound on get, cancel and wait, and leaves the listings."""
    engine = make_engine(clock)
    job_id = submit(engine, user_id="carol")
    go_to(clock, 10)
    engine.cleanup()
    for call in (engine.get, engine.cancel, engine.wait_for_change):
        with pytest.raises(JobNotFound):
            call(job_id)
    assert engine.jobs() == []
    with pytest.raises(JobNotFound):
        engine.newest("carol")


def test_cleanup_forgets_the_idempotency_keys_of_removed_jobs(clock: FakeClock) -> None:
    """After its job is removed, an Idempotency-Key makes a new job."""
    engine = make_engine(clock)
    old = submit(engine, idempotency_key="k1")
    go_to(clock, 10)
    engine.cleanup()
    assert engine.find_idempotent("alice", "k1") is None
    new = submit(engine, idempotency_key="k1")
    assert new != old
    assert engine.find_idempotent("alice", "k1") == new


def test_cleanup_and_expiry_publish_each_removal_at_its_instant(clock: FakeClock) -> None:
    """Each removed job is a `removed` change on the feed, at the time it was removed, for event streams to follow."""
    engine = make_engine(clock, JOB_TTL=100.0)
    cleaned, expired = submit(engine), submit(engine, user_id="bob")
    go_to(clock, 10)
    engine.advance()  # both completed at 10
    cursor = engine.feed.cursor()
    engine.cleanup(older_than=0)  # both completed at 10: removes both, in an order a store may choose
    assert sorted((c.kind, c.job_id, c.user_id, c.at) for c in engine.feed.since(cursor)) == sorted([
        ("removed", cleaned, "alice", START + 10), ("removed", expired, "bob", START + 10)])
    kept = submit(engine)
    go_to(clock, 20)
    engine.advance()  # completed at 20
    cursor = engine.feed.cursor()
    go_to(clock, 120)
    engine.advance()
    assert [(c.kind, c.job_id, c.at) for c in engine.feed.since(cursor)] == [("removed", kept, START + 120)]


def test_job_ttl_removes_finished_jobs(clock: FakeClock) -> None:
    """A finished job disappears JOB_TTL seconds after it finished, with its key; unfinished ones stay."""
    engine = make_engine(clock, JOB_TTL=60.0, WORKERS=1)
    done = submit(engine, idempotency_key="k")
    waiting = submit(engine)
    engine.configure({"PROCESSING_MODE": "manual"})
    go_to(clock, 69.999)
    assert engine.get(done)["status"] == "completed"
    go_to(clock, 70)
    with pytest.raises(JobNotFound):
        engine.get(done)
    assert engine.find_idempotent("alice", "k") is None
    go_to(clock, 10_000)
    assert [v["job_id"] for v in engine.jobs()] == [waiting]


def test_job_ttl_never_removes_unfinished_jobs(clock: FakeClock) -> None:
    """Queued jobs outlive JOB_TTL."""
    engine = make_engine(clock, JOB_TTL=1.0, PROCESSING_MODE="manual")
    job_id = submit(engine)
    go_to(clock, 10_000)
    assert engine.get(job_id)["status"] == "pending"


# ----------------------------------------------------------------------------------------- idempotency


def test_same_key_and_body_replays_the_job(clock: FakeClock) -> None:
    """Reusing a key with the same body returns the original job, flagged as a replay, and creates nothing."""
    engine = make_engine(clock)
    first, replayed = engine.submit("premium", "dave", video_url="v", target_language="de", idempotency_key="k")
    assert replayed is False
    clock.advance(1)
    again, replayed = engine.submit("premium", "dave", video_url="v", target_language="de", idempotency_key="k")
    assert replayed is True
    assert again["job_id"] == first["job_id"]
    assert engine.counts()["jobs"] == 1


@pytest.mark.parametrize(
    "changed",
    [{"role": "free"}, {"video_url": "other"}, {"video_url": None}, {"target_language": "es"}],
)
def test_same_key_with_a_different_body_is_refused(clock: FakeClock, changed: dict[str, Any]) -> None:
    """Reusing a key with a different role, video or language raises IdempotencyMismatch naming the job."""
    engine = make_engine(clock)
    body = {"role": "premium", "video_url": "v", "target_language": "de"}
    first, _ = engine.submit(user_id="dave", idempotency_key="k", **body)
    with pytest.raises(IdempotencyMismatch) as caught:
        engine.submit(user_id="dave", idempotency_key="k", **{**body, **changed})
    assert caught.value.extra["job_id"] == first["job_id"]
    assert str(caught.value) == "This Idempotency-Key was already used with a different request body."
    assert engine.counts()["jobs"] == 1


def test_idempotency_keys_are_per_user(clock: FakeClock) -> None:
    """Two users with the same key get two jobs."""
    engine = make_engine(clock)
    a = submit(engine, user_id="a", idempotency_key="k")
    b = submit(engine, user_id="b", idempotency_key="k")
    assert a != b
    assert engine.find_idempotent("a", "k") == a
    assert engine.find_idempotent("b", "k") == b


def test_would_create_says_whether_a_submission_makes_a_new_job(clock: FakeClock) -> None:
    """would_create is False for a key the user already used and once MAX_JOBS are stored, True otherwise."""
    engine = make_engine(clock, MAX_JOBS=2)
    submit(engine, user_id="a", idempotency_key="k")
    assert engine.would_create("a", "k") is False
    assert engine.would_create("b", "k") is True
    assert engine.would_create("a", None) is True
    submit(engine, user_id="a")
    assert engine.would_create("c", None) is False


def test_submissions_without_a_key_are_never_merged(engine: JobEngine) -> None:
    """Identical submissions without a key make separate jobs."""
    assert submit(engine, video_url="v") != submit(engine, video_url="v")


# -------------------------------------------------------------------------------------------- capacity


def test_max_jobs_refuses_new_jobs_with_retry_after(clock: FakeClock) -> None:
    """At MAX_JOBS a submission raises CapacityExceeded with retry_after; a replay is still answered."""
    engine = make_engine(clock, MAX_JOBS=2, JOB_TTL=100.0, PROCESSING_MODE="manual")
    submit(engine, idempotency_key="k")
    submit(engine)
    with pytest.raises(CapacityExceeded) as caught:
        engine.submit()
    assert caught.value.extra["retry_after"] == 100  # nothing finished: a whole JOB_TTL
    assert str(caught.value) == "The server holds 2 jobs (MAX_JOBS); retry later or clean up."
    assert engine.submit("free", "alice", idempotency_key="k")[1] is True
    assert engine.counts()["jobs"] == 2


def test_max_jobs_retry_after_counts_to_the_oldest_expiry(clock: FakeClock) -> None:
    """retry_after is the whole seconds until the oldest finished job expires, and room returns then."""
    engine = make_engine(clock, MAX_JOBS=2, JOB_TTL=100.0, WORKERS=1)
    submit(engine)
    submit(engine)  # finishes at 10 and 20
    go_to(clock, 30.5)
    with pytest.raises(CapacityExceeded) as caught:
        engine.submit()
    assert caught.value.extra["retry_after"] == math.ceil(110 - 30.5)
    go_to(clock, 110)
    submit(engine)


def test_a_full_store_says_room_is_expected_in_at_least_a_second(clock: FakeClock) -> None:
    """retry_after rounds the time to the oldest job's expiry up to whole seconds, and is never below 1."""
    engine = make_engine(clock, MAX_JOBS=1, JOB_TTL=100.0)
    submit(engine)
    go_to(clock, 109.6)  # finished at 10, expires at 110: in 0.4 s
    with pytest.raises(CapacityExceeded) as caught:
        submit(engine)
    assert caught.value.extra["retry_after"] == 1
    nothing_finished = make_engine(clock, MAX_JOBS=1, JOB_TTL=0.5, PROCESSING_MODE="manual")
    submit(nothing_finished)
    with pytest.raises(CapacityExceeded) as caught:
        submit(nothing_finished)
    assert caught.value.extra["retry_after"] == 1


def test_cleanup_makes_room_under_max_jobs(clock: FakeClock) -> None:
    """Removing finished jobs lets new submissions in."""
    engine = make_engine(clock, MAX_JOBS=1)
    submit(engine)
    go_to(clock, 10)
    with pytest.raises(CapacityExceeded):
        engine.submit()
    assert engine.cleanup() == 1
    submit(engine)


# ----------------------------------------------------------------------------------------------- listing


def test_jobs_filters_by_user_status_and_role(clock: FakeClock) -> None:
    """jobs() lists oldest first and filters by user, status and role, alone or together."""
    engine = make_engine(clock, WORKERS=1)
    a1 = submit(engine, "free", "a")
    b1 = submit(engine, "premium", "b")
    a2 = submit(engine, "premium", "a")
    a3 = submit(engine, "free", "a")
    assert [v["job_id"] for v in engine.jobs()] == [a1, b1, a2, a3]
    assert [v["job_id"] for v in engine.jobs(user_id="a")] == [a1, a2, a3]
    assert [v["job_id"] for v in engine.jobs(role="premium")] == [b1, a2]
    go_to(clock, 10)
    assert [v["job_id"] for v in engine.jobs(status=Status.COMPLETED)] == [a1]
    assert [v["job_id"] for v in engine.jobs(user_id="a", status=Status.PENDING, role="premium")] == [a2]
    assert engine.jobs(user_id="nobody") == []


def test_grouped_has_every_status_and_role(clock: FakeClock) -> None:
    """grouped() always has all five statuses × both roles, each job under its own."""
    engine = make_engine(clock)
    empty = engine.grouped()
    assert set(empty) == {s.value for s in Status}
    assert all(set(by_role) == {"free", "premium"} and not any(by_role.values()) for by_role in empty.values())
    free, premium = submit(engine, "free", "a"), submit(engine, "premium", "b")
    go_to(clock, 5)
    groups = engine.grouped()
    assert list(groups["completed"]["premium"]) == [premium]
    assert list(groups["pending"]["free"]) == [free]
    assert groups["pending"]["free"][free]["progress"] == 50
    assert list(engine.grouped(user_id="a")["pending"]["free"]) == [free]
    assert engine.grouped(user_id="a")["completed"]["premium"] == {}


def test_newest_returns_the_latest_job_of_a_user_or_anyone(clock: FakeClock) -> None:
    """newest(user) is that user's last submission, newest() anyone's; none raises JobNotFound."""
    engine = make_engine(clock)
    with pytest.raises(JobNotFound):
        engine.newest()
    a1 = submit(engine, user_id="a")
    a2 = submit(engine, user_id="a")
    b1 = submit(engine, user_id="b")
    assert engine.newest("a")["job_id"] == a2
    assert engine.newest()["job_id"] == b1
    assert engine.newest("b")["job_id"] == b1
    assert a1 != a2
    with pytest.raises(JobNotFound):
        engine.newest("c")


def test_newest_names_who_has_no_job(engine: JobEngine) -> None:
    """JobNotFound from newest says whose newest job was asked for: a user's, or anyone's."""
    with pytest.raises(JobNotFound, match="No job has been submitted by anyone"):
        engine.newest()
    with pytest.raises(JobNotFound, match="No job has been submitted by user 'carol'"):
        engine.newest("carol")


def test_total_counts_all_jobs_or_one_users(clock: FakeClock) -> None:
    """total() is how many jobs are stored, total(user) how many of them that user submitted."""
    engine = make_engine(clock)
    for user_id in ("alice", "alice", "bob"):
        submit(engine, user_id=user_id)
    assert (engine.total(), engine.total("alice"), engine.total("bob"), engine.total("carol")) == (3, 2, 1, 0)


def test_grouped_can_be_paged(clock: FakeClock) -> None:
    """grouped(offset=, limit=) groups one page of jobs, in submission order."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    ids = [submit(engine) for _ in range(5)]
    page = engine.grouped(offset=1, limit=2)
    assert list(page["pending"]["free"]) == ids[1:3]
    assert list(engine.grouped(offset=3)["pending"]["free"]) == ids[3:]


def test_queue_lists_queued_in_start_order_and_running(clock: FakeClock) -> None:
    """queue() shows the queued jobs in the order they will start, the running ones, workers and mode."""
    engine = make_engine(clock, WORKERS=1)
    running = submit(engine, "free")
    f1 = submit(engine, "free")
    p1 = submit(engine, "premium")
    f2 = submit(engine, "free")
    queue = engine.queue()
    assert (queue["mode"], queue["workers"]) == ("auto", 1)
    assert [v["job_id"] for v in queue["queued"]] == [p1, f1, f2]
    assert [v["queue_position"] for v in queue["queued"]] == [1, 2, 3]
    assert [v["job_id"] for v in queue["running"]] == [running]
    assert queue["queued_total"] == 3
    assert engine.queue(offset=1, limit=1)["queued_total"] == 3  # a page still tells the whole queue's length
    assert engine.counts() == {"jobs": 4, "queued": 3, "running": 1}


# ------------------------------------------------------------------------------------------------ waiting


def test_wait_returns_at_once_for_a_finished_job(clock: FakeClock) -> None:
    """Waiting on a finished job answers immediately, whatever the timeout."""
    engine, job_id = make_job_in(Status.COMPLETED, clock)
    began = time.monotonic()
    assert engine.wait_for_change(job_id, timeout=5)["status"] == "completed"
    assert time.monotonic() - began < 0.5


def test_wait_returns_at_once_when_the_version_is_already_past(clock: FakeClock) -> None:
    """A `since` below the current version answers immediately."""
    engine = make_engine(clock)
    job_id = submit(engine)
    version = engine.get(job_id)["version"]
    began = time.monotonic()
    view = engine.wait_for_change(job_id, since=version - 1, timeout=5)
    assert time.monotonic() - began < 0.5
    assert view["version"] == version


def test_wait_with_zero_timeout_returns_at_once(clock: FakeClock) -> None:
    """A zero timeout answers the current view without waiting."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    began = time.monotonic()
    assert engine.wait_for_change(job_id, timeout=0) == engine.get(job_id)
    assert time.monotonic() - began < 0.5


def test_wait_times_out_with_the_unchanged_job(clock: FakeClock) -> None:
    """When nothing happens, the wait ends after its timeout with the same version, having slept once: a queued
    job has no attempt to wake for."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    sleeps = count_feed_sleeps(engine)
    began = time.monotonic()
    view = engine.wait_for_change(job_id, timeout=0.05)
    assert 0.04 <= time.monotonic() - began < 1.0
    assert view["version"] == engine.get(job_id)["version"]
    assert len(sleeps) == 1 and 0.04 <= sleeps[0] <= 0.05


def test_a_waiter_is_woken_by_a_transition_in_another_thread() -> None:
    """A held wait answers as soon as another thread advances the clock past the job's end."""
    clock = SignallingClock()
    engine = make_engine(clock)
    job_id = submit(engine)
    since = engine.get(job_id)["version"]

    def drive() -> None:
        clock.advance(10)
        engine.advance()

    answers, errors, waiter = held_wait(clock, lambda: engine.wait_for_change(job_id, since, timeout=5), drive)
    assert not errors
    assert not waiter.is_alive()
    assert answers["job"]["status"] == "completed"
    assert answers["job"]["finished_at"] == t(10)
    assert answers["elapsed"] < 2.0


def test_a_waiter_on_a_running_job_wakes_itself_when_the_attempt_is_due() -> None:
    """A waiter on a translating job wakes by itself when the attempt ends, even if nobody calls the engine."""
    clock = SignallingClock()
    engine = make_engine(clock, TRANSLATION_DELAY=0.05)
    job_id = submit(engine)
    since = engine.get(job_id)["version"]
    answers, errors, waiter = held_wait(clock, lambda: engine.wait_for_change(job_id, since, timeout=5),
                                        lambda: clock.advance(1))  # no call into the engine
    assert not errors
    assert not waiter.is_alive()
    assert answers["job"]["status"] == "completed"


def test_release_waiters_answers_held_waits_at_once() -> None:
    """release_waiters ends every held wait and makes later waits answer at once."""
    clock = SignallingClock()
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    answers, errors, waiter = held_wait(clock, lambda: engine.wait_for_change(job_id, timeout=5),
                                        engine.release_waiters)
    assert not errors
    assert not waiter.is_alive()
    assert answers["job"]["status"] == "pending"
    began = time.monotonic()
    engine.wait_for_change(job_id, timeout=5)
    assert time.monotonic() - began < 0.5


def test_advance_returns_the_next_due_instant(clock: FakeClock) -> None:
    """advance() processes due events and tells when the next attempt ends or finished job expires."""
    engine = make_engine(clock, JOB_TTL=100.0, WORKERS=1)
    assert engine.advance() is None
    submit(engine, "premium")
    submit(engine)
    assert engine.advance() == START + 5
    go_to(clock, 5)
    assert engine.advance() == START + 15
    go_to(clock, 15)
    assert engine.advance() == START + 105  # the first job's expiry


def test_wait_for_next_event_processes_events_already_due(clock: FakeClock) -> None:
    """wait_for_next_event returns at once and processes an event whose time has come."""
    engine = make_engine(clock)
    job_id = submit(engine)
    go_to(clock, 10)
    began = time.monotonic()
    engine.wait_for_next_event(max_seconds=0.05)  # then sleeps towards the next event (its expiry)
    assert time.monotonic() - began < 1.0
    assert engine.counts()["running"] == 0
    assert engine.get(job_id)["status"] == "completed"


def test_a_waiter_returns_on_a_change_that_does_not_finish_the_job() -> None:
    """A held wait answers as soon as its job starts translating, not only when it finishes."""
    clock = SignallingClock()
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    since = engine.get(job_id)["version"]
    answers, errors, waiter = held_wait(clock, lambda: engine.wait_for_change(job_id, since, timeout=5),
                                        engine.start_next)
    assert not errors
    assert not waiter.is_alive()
    assert (answers["job"]["status"], answers["job"]["stage"]) == ("pending", "translating")
    assert answers["job"]["version"] == since + 1
    assert answers["elapsed"] < 2.0


def test_a_waiter_whose_job_finishes_and_expires_at_once_is_told_it_is_gone() -> None:
    """With JOB_TTL 0 a job is removed the instant it finishes: its waiter gets JobNotFound then, not at timeout."""
    clock = SignallingClock()
    engine = make_engine(clock, JOB_TTL=0.0)
    job_id = submit(engine)
    since = engine.get(job_id)["version"]

    def finish() -> None:
        clock.advance(10)
        engine.advance()

    answers, errors, waiter = held_wait(clock, lambda: engine.wait_for_change(job_id, since, timeout=5), finish)
    assert not waiter.is_alive()
    assert [type(e) for e in errors] == [JobNotFound]
    assert answers["elapsed"] < 2.0


def test_a_wait_without_a_timeout_answers_at_once(clock: FakeClock) -> None:
    """wait_for_change's timeout defaults to 0: without one it answers the current view at once."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    job_id = submit(engine)
    began = time.monotonic()
    assert engine.wait_for_change(job_id) == engine.get(job_id)
    assert time.monotonic() - began < 0.5


def test_wait_for_next_event_sleeps_only_until_the_next_event_is_due(clock: FakeClock) -> None:
    """With an attempt due in 0.2 s the ticker's sleep ends then (real seconds), long before max_seconds."""
    engine = make_engine(clock, TRANSLATION_DELAY=0.2)
    submit(engine)
    began = time.monotonic()
    engine.wait_for_next_event(max_seconds=5)
    assert 0.15 <= time.monotonic() - began < 0.9


def test_wait_for_next_event_with_nothing_scheduled_sleeps_max_seconds(clock: FakeClock) -> None:
    """With no attempt running and no finished job to expire, the ticker sleeps max_seconds (by default one second)."""
    engine = make_engine(clock)
    began = time.monotonic()
    engine.wait_for_next_event(max_seconds=0.1)
    assert 0.09 <= time.monotonic() - began < 0.9
    began = time.monotonic()
    engine.wait_for_next_event()
    assert 0.95 <= time.monotonic() - began < 1.9


def test_wait_for_next_event_wakes_when_the_schedule_changes() -> None:
    """A submission that starts an attempt wakes the sleeping ticker at once, so it can sleep until that end."""
    clock = SignallingClock()
    engine = make_engine(clock)
    errors: list[BaseException] = []
    elapsed: list[float] = []

    def tick() -> None:
        began = time.monotonic()
        engine.wait_for_next_event(max_seconds=5)
        elapsed.append(time.monotonic() - began)

    def submit_one() -> None:
        if not clock.read.wait(2):
            raise AssertionError("the ticker never started")
        submit(engine)

    clock.read.clear()
    ticker = in_thread(tick, errors)
    submitter = in_thread(submit_one, errors)
    submitter.join(3)
    ticker.join(3)
    assert not errors and not ticker.is_alive()
    assert elapsed[0] < 2.0


def test_wake_ends_the_tickers_sleep() -> None:
    """wake() (the server stopping) ends a sleep in wait_for_next_event at once."""
    clock = SignallingClock()
    engine = make_engine(clock)
    errors: list[BaseException] = []
    clock.read.clear()
    ticker = in_thread(lambda: engine.wait_for_next_event(max_seconds=5), errors)
    assert clock.read.wait(2)
    engine.wake()
    ticker.join(3)
    assert not errors and not ticker.is_alive()


class WakingClock(FakeClock):
    """A fake clock that calls `engine.wake()` the first time it is read after `arm()`: a wake that comes after the
    ticker noted the schedule and before it sleeps."""

    def __init__(self) -> None:
        super().__init__()
        self.engine: JobEngine | None = None

    def arm(self, engine: JobEngine) -> None:
        self.engine = engine

    def __call__(self) -> float:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.wake()
        return super().__call__()


@pytest.mark.parametrize("earlier_wakes", [0, 1, 2])
def test_a_wake_just_before_the_ticker_sleeps_is_not_slept_through(earlier_wakes: int) -> None:
    """However many wakes came before, one that lands while the ticker plans its sleep ends that sleep at once."""
    clock = WakingClock()
    engine = make_engine(clock)
    for _ in range(earlier_wakes):
        engine.wake()
    clock.arm(engine)
    began = time.monotonic()
    engine.wait_for_next_event(max_seconds=5)
    assert time.monotonic() - began < 2.0


# ------------------------------------------------------------------------------------------ reproducibility


def scripted_run(seed: int) -> list[dict[str, Any]]:
    """Play one fixed sequence of submissions, cancellations and clock moves and return every job's view."""
    clock = FakeClock()
    engine = make_engine(clock, RANDOM_SEED=seed, ERROR_RATE=0.4, DELAY_JITTER=0.3, MAX_RETRIES=1, WORKERS=2)
    for i in range(8):
        view, _ = engine.submit("premium" if i % 3 == 0 else "free", f"user{i % 2}")
        if i == 4:
            engine.cancel(view["job_id"], "changed my mind")
        clock.advance(1.7)
    for _ in range(10):
        clock.advance(3.3)
        engine.advance()
    clock.advance(200)
    return engine.jobs()


def test_same_seed_and_operations_give_identical_runs() -> None:
    """Two engines with one seed and one script agree on every id, timestamp, attempt and error."""
    first, second = scripted_run(7), scripted_run(7)
    assert first == second
    assert any(v["attempts"] > 1 for v in first)  # failures happened, so errors were compared too
    assert {v["status"] for v in first} >= {"completed", "cancelled"}


def test_a_different_seed_gives_a_different_run() -> None:
    """Another seed makes other ids and other timings."""
    first, other = scripted_run(7), scripted_run(8)
    assert {v["job_id"] for v in first}.isdisjoint(v["job_id"] for v in other)
    assert [v["finished_at"] for v in first] != [v["finished_at"] for v in other]


def test_an_id_already_stored_is_never_given_again(clock: FakeClock) -> None:
    """When the generator draws a stored job's id again, the new job gets another one."""
    first = make_engine(clock, RANDOM_SEED=5)
    taken = submit(first)
    again = JobEngine(first.settings, store=first.store, clock=clock, rng=random.Random(5))  # draws `taken` first
    assert submit(again) != taken
    assert first.total() == 2


def test_random_seed_alone_makes_the_run_of_that_seed(clock: FakeClock) -> None:
    """An engine given RANDOM_SEED and no generator draws what random.Random(RANDOM_SEED) draws: the same ids."""
    settings = config.from_mapping({"RANDOM_SEED": 11, "ERROR_RATE": 0.0})
    seeded = JobEngine(settings, store=MemoryStore(), clock=clock)
    explicit = JobEngine(settings, store=MemoryStore(), clock=clock, rng=random.Random(11))
    ids = [[e.submit("free", "u")[0]["job_id"] for _ in range(3)] for e in (seeded, explicit)]
    assert ids[0] == ids[1]
    unseeded = JobEngine(config.from_mapping({"ERROR_RATE": 0.0}), store=MemoryStore(), clock=clock)
    assert unseeded.submit("free", "u")[0]["job_id"] not in ids[0]


# ---------------------------------------------------------------------------------------- configuration


def test_a_delay_change_applies_only_to_attempts_started_after_it(clock: FakeClock) -> None:
    """A running attempt keeps its duration; the next attempt uses the new TRANSLATION_DELAY."""
    engine = make_engine(clock, WORKERS=1)
    running, waiting = submit(engine), submit(engine)
    go_to(clock, 2)
    engine.configure({"TRANSLATION_DELAY": 100.0})
    assert engine.get(running)["eta_seconds"] == 8.0
    go_to(clock, 500)
    assert engine.get(running)["finished_at"] == t(10)
    assert engine.get(waiting)["finished_at"] == t(110)


def test_an_error_rate_change_does_not_touch_the_running_attempt(clock: FakeClock) -> None:
    """Raising ERROR_RATE mid-attempt leaves that attempt's outcome alone; the next attempt fails."""
    engine = make_engine(clock, WORKERS=1, MAX_RETRIES=0)
    running, waiting = submit(engine), submit(engine)
    go_to(clock, 1)
    engine.configure({"ERROR_RATE": 1.0})
    go_to(clock, 100)
    assert engine.get(running)["status"] == "completed"
    assert engine.get(waiting)["status"] == "permanently_failed"


def test_a_max_retries_change_applies_from_the_next_attempt(clock: FakeClock) -> None:
    """A job uses the MAX_RETRIES in force when its attempt started, not when it was submitted or failed."""
    engine = make_engine(clock, PROCESSING_MODE="manual", ERROR_RATE=1.0, MAX_RETRIES=0)
    running, waiting = submit(engine), submit(engine)
    engine.start_next()
    engine.configure({"MAX_RETRIES": 1})
    engine.start_next()
    go_to(clock, 10)
    assert engine.get(running)["status"] == "permanently_failed"  # its attempt started under MAX_RETRIES=0
    assert engine.get(waiting)["status"] == "failed"  # submitted under 0, started under 1
    assert engine.get(waiting)["max_retries"] == 1


def test_configure_returns_the_new_settings(engine: JobEngine) -> None:
    """configure answers the whole new settings and the engine uses them from then on."""
    new = engine.configure({"WORKERS": 5, "ERROR_RATE": 0.25})
    assert (new.WORKERS, new.ERROR_RATE) == (5, 0.25)
    assert engine.settings is new
    assert engine.queue()["workers"] == 5


@pytest.mark.parametrize(
    "changes",
    [
        {"WORKERS": 0},
        {"WORKERS": 5, "ERROR_RATE": 1.5},
        {"PROCESSING_MODE": "sometimes"},
        {"TRANSLATION_DELAY": -1},
        {"DELAY_JITTER": 1.0},
        {"PREMIUM_DELAY_FACTOR": 0},
        {"MAX_RETRIES": 1.5},
        {"WORKERS": True},
        {"NOT_A_KEY": 1},
        {"RANDOM_SEED": 3},
    ],
)
def test_configure_with_a_bad_change_raises_and_changes_nothing(clock: FakeClock, changes: dict[str, Any]) -> None:
    """A bad, unknown or read-only key raises ConfigError naming it, and no setting changes."""
    engine = make_engine(clock, WORKERS=1)
    ids = [submit(engine) for _ in range(3)]
    before = engine.settings
    with pytest.raises(config.ConfigError) as caught:
        engine.configure(changes)
    assert set(caught.value.errors) <= set(changes)
    assert caught.value.errors
    assert engine.settings == before
    assert running_ids(engine) == {ids[0]}


@pytest.mark.parametrize("mode", ["auto", "manual"])
def test_every_page_shows_each_job_as_get_does(clock, mode) -> None:
    """Pages of `jobs` and `queue`, wherever they cut the queue, show the positions and etas `get` shows."""
    engine = make_engine(clock, WORKERS=2, ERROR_RATE=0.2, PROCESSING_MODE=mode)
    for n in range(60):
        engine.submit("premium" if n % 3 == 0 else "free", f"u{n % 4}")
        clock.advance(0.1)
    if mode == "manual":
        engine.start_next(3)
    else:
        clock.advance(7.5)
    for offset, limit in [(0, 5), (7, 9), (40, 30), (58, 1), (100, 5)]:
        jobs_page = engine.jobs(offset=offset, limit=limit)
        queue_page = engine.queue(offset=offset, limit=limit)["queued"]
        for view in jobs_page + queue_page:
            assert view == engine.get(view["job_id"])
        assert [v["job_id"] for v in jobs_page] == [v["job_id"] for v in engine.jobs()[offset : offset + limit]]
        assert [v["queue_position"] for v in queue_page] == list(range(offset + 1, offset + 1 + len(queue_page)))
        queued_total = engine.queue()["queued_total"]
        assert len(queue_page) == max(0, min(limit, queued_total - offset)), "a page holds at most `limit` jobs"
    assert any(v["stage"] == "queued" for v in engine.jobs(offset=40, limit=30))


@pytest.mark.parametrize("mode", ["auto", "manual"])
def test_filtered_pages_and_one_users_queue_show_each_job_as_get_does(clock, mode) -> None:
    """Pages of `jobs` filtered by role or status, and pages of one user's queue, hold exactly the jobs they
    select, each shown as `get` shows it; a user's snapshot counts that user's jobs."""
    engine = make_engine(clock, WORKERS=2, PROCESSING_MODE=mode)
    for n in range(24):
        engine.submit("premium" if n % 3 == 0 else "free", f"u{n % 4}")
        clock.advance(0.1)
    if mode == "manual":
        engine.start_next(3)
    else:
        clock.advance(7.5)  # some finished, two running part-way, the rest queued
    everything = engine.jobs()
    for offset, limit in [(0, 3), (2, 4), (5, 30)]:
        for where, chosen in [({"role": "free"}, lambda v: v["role"] == "free"),
                              ({"status": Status.PENDING}, lambda v: v["status"] == "pending"),
                              ({"status": Status.COMPLETED, "role": "premium"},
                               lambda v: v["status"] == "completed" and v["role"] == "premium")]:
            page = engine.jobs(offset=offset, limit=limit, **where)
            assert [v["job_id"] for v in page] == [v["job_id"] for v in everything if chosen(v)][offset:offset + limit]
            for view in page:
                assert view == engine.get(view["job_id"])
        whole = engine.queue()
        mine = engine.queue(offset=offset, limit=limit, user_id="u1")
        queued_u1 = [v["job_id"] for v in whole["queued"] if v["user_id"] == "u1"]
        assert [v["job_id"] for v in mine["queued"]] == queued_u1[offset:offset + limit]
        assert mine["queued_total"] == len(queued_u1)
        assert mine["running"] == [v for v in whole["running"] if v["user_id"] == "u1"]
        for view in mine["queued"] + mine["running"]:
            assert view == engine.get(view["job_id"])
    assert engine.snapshot(user_id="u1", offset=1, limit=2).total == engine.total("u1") == 6
    assert any(v["stage"] == "translating" for v in engine.jobs(status=Status.PENDING, limit=5))


def test_a_page_holding_only_the_first_queued_job_shows_its_place(clock: FakeClock) -> None:
    """A page of one job that is first in the queue shows position 1 and the ETA get() shows."""
    engine = make_engine(clock, WORKERS=1)
    submit(engine)
    first_queued = submit(engine)
    submit(engine)
    [view] = engine.jobs(offset=1, limit=1)
    assert view["job_id"] == first_queued
    assert (view["queue_position"], view["eta_seconds"]) == (1, 20.0)
    assert view == engine.get(first_queued)


def test_listed_etas_equal_single_etas_in_a_deep_queue(clock) -> None:
    """The one-pass etas of a listing equal those `get` gives one by one, past the exact-simulation depth."""
    engine = make_engine(clock, WORKERS=3, DELAY_JITTER=0.3, ERROR_RATE=0.2)
    for n in range(400):
        engine.submit("premium" if n % 4 == 0 else "free", f"u{n % 7}")
    clock.advance(4.2)
    listed = {view["job_id"]: view["eta_seconds"] for view in engine.queue()["queued"]}
    assert len(listed) == 397
    assert listed == {job_id: engine.get(job_id)["eta_seconds"] for job_id in listed}
    etas = list(listed.values())
    assert etas == sorted(etas), "etas grow along the queue"


# ------------------------------------------------------------------------------------ listing snapshots


def test_copy_job_copies_every_field(engine):
    """copy_job makes a separate Job equal in every field, so a snapshot never shares a record with the store."""
    import dataclasses

    from simulator.domain.job import copy_job

    view, _ = engine.submit("premium", "alice", video_url="https://e.x/v.mp4", target_language="de")
    with engine.store.transaction():  # every store is read in a transaction (Redis's: loaded from the server)
        job = engine.store.get(view["job_id"])
    copy = copy_job(job)
    assert copy is not job
    assert all(getattr(copy, f.name) == getattr(job, f.name) for f in dataclasses.fields(job))


def test_a_snapshot_shows_the_views_of_the_jobs_asked_for(engine: JobEngine) -> None:
    """views(jobs) gives the views of those jobs only, in the order given (GET /jobs groups a snapshot this way)."""
    for user in ("ann", "ben", "cy"):
        engine.submit("free", user)
    snap = engine.snapshot()
    chosen = [snap.jobs[2], snap.jobs[0]]
    assert [v["user_id"] for v in snap.views(chosen)] == ["cy", "ann"]
    assert [v["user_id"] for v in snap.views()] == ["ann", "ben", "cy"]


def test_a_snapshot_shows_the_jobs_as_they_were_when_it_was_taken(engine, clock):
    """Views built from a snapshot after the jobs moved on are the views of the snapshot's instant."""
    engine.configure({"WORKERS": 1})
    ids = [engine.submit("free", f"u{n}")[0]["job_id"] for n in range(3)]
    expected = engine.jobs()
    snapshot = engine.snapshot()
    clock.advance(5)
    engine.cancel(ids[0])
    engine.cancel(ids[2])
    assert snapshot.views() == expected
    assert [v["queue_position"] for v in snapshot.views()] == [None, 1, 2]
    queued, running = engine.queue_snapshot()
    assert snapshot.total == 3 and queued.total == 0 and [j.job_id for j in running.jobs] == [ids[1]]
