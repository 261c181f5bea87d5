"""The manual clock (CLOCK=manual): it stands still until advanced, and advancing runs every due event in order."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from jobs import ClockNotManual, InvalidArgument, JobEngine, iso
from simulator.clock import ManualClock, make_clock, system_clock
from simulator.domain.engine import MAX_CLOCK_STEP
from tests.conftest import START, count_feed_sleeps, make_engine

#: The store contract: the engine tests run once per store implementation.
pytestmark = pytest.mark.usefixtures("each_store")


def t(seconds: float) -> str | None:
    """Return the ISO timestamp `seconds` after START."""
    return iso(START + seconds)


def manual_engine(**overrides: Any) -> tuple[JobEngine, ManualClock]:
    """Build an engine on a manual clock at START with the test settings plus `overrides`."""
    clock = ManualClock(START)
    return make_engine(clock, **overrides), clock  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the clock itself


def test_a_manual_clock_stands_still_until_advanced() -> None:
    """Reading a manual clock never moves it; advance moves it by exactly the seconds given."""
    clock = ManualClock(START)
    assert clock() == clock() == START
    assert clock.advance(2.5) == START + 2.5
    assert clock() == START + 2.5


@pytest.mark.parametrize("seconds", [-1, -0.001, math.nan])
def test_a_manual_clock_never_goes_backwards(seconds: float) -> None:
    """A negative or NaN step is refused and leaves the clock where it was."""
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(seconds)
    assert clock() == START


def test_a_manual_clock_starts_at_the_real_time_by_default() -> None:
    """Without a start, a manual clock starts at the wall-clock time, so its timestamps read as today."""
    before = time.time()
    clock = ManualClock()
    assert before <= clock() <= time.time()


def test_make_clock_follows_the_clock_setting() -> None:
    """CLOCK=manual makes a ManualClock, CLOCK=system a real one; anything else is refused."""
    assert isinstance(make_clock("manual"), ManualClock)
    real = make_clock("system")
    assert not isinstance(real, ManualClock) and abs(real() - system_clock()()) < 1
    with pytest.raises(ValueError, match="CLOCK"):
        make_clock("sundial")


# ------------------------------------------------------------------------------------------ advancing the engine


def test_advance_clock_refuses_a_system_clock(clock) -> None:
    """Only a manual clock can be moved: the system clock is refused with ClockNotManual."""
    engine = make_engine(clock)
    assert engine.manual_clock is False
    with pytest.raises(ClockNotManual, match="CLOCK=manual"):
        engine.advance_clock(10)


@pytest.mark.parametrize("seconds", [-1, math.nan, math.inf, True, "10", None, MAX_CLOCK_STEP + 1])
def test_advance_clock_refuses_bad_steps(seconds: Any) -> None:
    """A step that is not a number in [0, ten years] is refused and the clock does not move."""
    engine, clock = manual_engine()
    with pytest.raises(InvalidArgument, match="seconds"):
        engine.advance_clock(seconds)
    assert clock() == START


def test_nothing_happens_while_a_manual_clock_stands_still() -> None:
    """With a manual clock a running attempt never ends by itself, however often the engine is asked."""
    engine, _ = manual_engine()
    job_id = engine.submit()[0]["job_id"]
    for _ in range(3):
        assert engine.advance() == START + 10
        assert engine.get(job_id)["status"] == "pending"


def test_advance_clock_runs_attempt_ends_and_the_jobs_they_start_at_their_own_instants() -> None:
    """One big step replays each attempt end at its instant, and a freed slot starts the next job right then."""
    engine, _ = manual_engine(WORKERS=1)
    first = engine.submit("free", "a")[0]["job_id"]
    second = engine.submit("free", "b")[0]["job_id"]
    answer = engine.advance_clock(25)
    assert answer["now"] == t(25)
    assert answer["advanced_seconds"] == 25.0
    assert answer["changes"] == 3  # first completed, second started, second completed
    one, two = engine.get(first), engine.get(second)
    assert (one["status"], one["finished_at"]) == ("completed", t(10))
    assert (two["started_at"], two["finished_at"]) == (t(10), t(20))


def test_advance_clock_runs_failures_and_retries_in_order() -> None:
    """Failing attempts fail, are retried at the same instant and give up after MAX_RETRIES, all within one step."""
    engine, _ = manual_engine(ERROR_RATE=1.0, MAX_RETRIES=2, WORKERS=1)
    job_id = engine.submit()[0]["job_id"]
    engine.advance_clock(1000)
    job = engine.get(job_id)
    assert (job["status"], job["attempts"]) == ("permanently_failed", 3)
    assert job["finished_at"] == job["error"]["at"]


def test_advance_clock_expires_finished_jobs_at_their_instant_in_order() -> None:
    """A job finished at 10 s with JOB_TTL 5 is removed at 15 s, in order among the other events of the step."""
    engine, _ = manual_engine(JOB_TTL=5.0, WORKERS=1)
    first = engine.submit("free", "a")[0]["job_id"]
    engine.submit("free", "b")
    cursor = engine.feed.cursor()
    engine.advance_clock(100)
    changes = [(c.kind, c.at - START) for c in engine.feed.since(cursor)]
    assert changes == [("completed", 10), ("started", 10), ("removed", 15), ("completed", 20), ("removed", 25)]
    assert next(c.job_id for c in engine.feed.since(cursor) if c.kind == "removed") == first
    assert engine.total() == 0


def test_clock_state_shows_now_and_the_next_event() -> None:
    """clock_state tells the clock's kind, the simulated now and the time to the next event (None when idle)."""
    engine, _ = manual_engine()
    idle = engine.clock_state()
    assert idle == {"clock": "manual", "now": t(0), "epoch_seconds": START, "next_event_at": None,
                    "next_event_in_seconds": None}
    engine.submit()
    engine.advance_clock(4)
    busy = engine.clock_state()
    assert (busy["now"], busy["next_event_at"], busy["next_event_in_seconds"]) == (t(4), t(10), 6.0)


def test_clock_state_counts_the_last_fraction_of_a_second_and_names_a_system_clock(clock) -> None:
    """Half a second before the next event it says 0.5 s; on the system clock it says `system`."""
    engine, _ = manual_engine()
    engine.submit()
    engine.advance_clock(9.5)
    assert engine.clock_state()["next_event_in_seconds"] == 0.5
    assert make_engine(clock).clock_state()["clock"] == "system"


def test_advance_clock_takes_both_ends_of_its_range() -> None:
    """A step of 0 s is allowed (it runs what is due now) and so is the longest, ten years."""
    engine, clock = manual_engine()
    assert engine.advance_clock(0)["advanced_seconds"] == 0.0
    assert clock() == START
    assert engine.advance_clock(MAX_CLOCK_STEP)["epoch_seconds"] == START + MAX_CLOCK_STEP


def test_advance_clock_on_the_system_clock_says_how_to_get_a_manual_one(clock) -> None:
    """The refusal names the setting to start the server with, in full."""
    with pytest.raises(ClockNotManual) as refused:
        make_engine(clock).advance_clock(1)
    assert str(refused.value) == ("The clock is the system clock (CLOCK=system); start the server with CLOCK=manual "
                                  "to move simulated time yourself.")


def test_advance_clock_wakes_a_long_poll_whose_job_changed() -> None:
    """A wait held on a job answers as soon as the clock is advanced past its attempt's end."""
    engine, _ = manual_engine()
    job_id = engine.submit()[0]["job_id"]
    since = engine.get(job_id)["version"]
    answers: dict[str, Any] = {}

    def wait() -> None:
        began = time.monotonic()
        answers["job"] = engine.wait_for_change(job_id, since, timeout=5)
        answers["elapsed"] = time.monotonic() - began

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    deadline = time.monotonic() + 2
    while engine.feed.waiting() == 0 and time.monotonic() < deadline:
        threading.Event().wait(0.005)  # until the waiter holds its wait
    engine.advance_clock(10)
    waiter.join(3)
    assert answers["job"]["status"] == "completed"
    assert answers["elapsed"] < 2.0


def test_a_long_poll_on_a_manual_clock_does_not_wake_for_an_attempt_that_cannot_end() -> None:
    """On a manual clock a wait on a running job is held for its whole timeout: the attempt cannot end by itself."""
    engine, _ = manual_engine(TRANSLATION_DELAY=0.001)
    job_id = engine.submit()[0]["job_id"]
    version = engine.get(job_id)["version"]
    sleeps = count_feed_sleeps(engine)
    began = time.monotonic()
    view = engine.wait_for_change(job_id, timeout=0.2)
    assert time.monotonic() - began >= 0.19
    assert (view["status"], view["version"]) == ("pending", version)
    assert len(sleeps) == 1  # one sleep for the whole timeout, not one wake-up per "due" attempt end
