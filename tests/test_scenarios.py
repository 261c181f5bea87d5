"""Scripted outcomes per job (`simulate`): the script's checks, and the engine playing it on every store."""

from __future__ import annotations

import math
from typing import Any

import pytest

import config
from jobs import (
    IdempotencyMismatch,
    Job,
    JobEngine,
    MemoryStore,
    ReadFault,
    Scenario,
    ScenarioError,
    ScenariosDisabled,
    Status,
    iso,
)
from simulator.clock import ManualClock
from tests.conftest import FAST, START, make_engine

FULL = {
    "outcomes": ["fail", "fail", "succeed"],
    "attempt_seconds": [1, 1, 2],
    "fail_code": "timeout",
    "fail_message": "The GPU node was lost.",
    "status_faults": [{"status": 503, "retry_after": 1, "times": 2}, {"status": 500}],
}


def t(seconds: float) -> str | None:
    """Return the ISO timestamp `seconds` after START."""
    return iso(START + seconds)


def scripted_engine(**overrides: Any) -> tuple[JobEngine, ManualClock]:
    """Build an engine on a manual clock at START, with the test settings plus `overrides`."""
    clock = ManualClock(START)
    return make_engine(clock, **overrides), clock  # type: ignore[arg-type]


def submit(engine: JobEngine, script: dict[str, Any] | None, **kwargs: Any) -> str:
    """Submit a free job of alice with `script` and return its id."""
    view, _ = engine.submit("free", "alice", simulate=None if script is None else Scenario.parse(script), **kwargs)
    return view["job_id"]


# ------------------------------------------------------------------------------------------ the script


def test_a_full_script_is_accepted_and_shown_normalized() -> None:
    """Every member is kept; numbers become seconds, a fault gets its default `times` and `retry_after`."""
    assert Scenario.parse(FULL).to_json() == {
        "outcomes": ["fail", "fail", "succeed"],
        "attempt_seconds": [1.0, 1.0, 2.0],
        "fail_code": "timeout",
        "fail_message": "The GPU node was lost.",
        "status_faults": [{"status": 503, "retry_after": 1, "times": 2},
                          {"status": 500, "retry_after": None, "times": 1}],
    }


def test_a_script_shows_only_the_members_it_was_given() -> None:
    """A script of outcomes alone shows outcomes alone."""
    assert Scenario.parse({"outcomes": ["succeed"]}).to_json() == {"outcomes": ["succeed"]}


def test_the_last_entry_of_outcomes_and_attempt_seconds_repeats() -> None:
    """Attempts past the end of a list take its last entry; without a list nothing is scripted."""
    script = Scenario.parse({"outcomes": ["fail", "succeed"], "attempt_seconds": [3]})
    assert [script.outcome(n) for n in (1, 2, 3, 9)] == ["fail", "succeed", "succeed", "succeed"]
    assert [script.seconds(n) for n in (1, 5)] == [3.0, 3.0]
    assert Scenario.parse({"fail_code": "unknown"}).outcome(1) is None
    assert Scenario.parse({"fail_code": "unknown"}).seconds(1) is None


def test_status_faults_answer_reads_in_order_then_stop() -> None:
    """Each fault answers `times` reads in turn; later reads are not faulted."""
    script = Scenario.parse(FULL)
    assert [script.read_fault(n) for n in range(4)] == [ReadFault(503, 1), ReadFault(503, 1), ReadFault(500, None),
                                                        None]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "must be an object"),
        ("fail", "must be an object"),
        ({}, "must script something"),
        ({"outcome": ["fail"]}, "unknown member 'outcome'"),
        ({"outcomes": "fail"}, "outcomes must be a list"),
        ({"outcomes": []}, "outcomes must be a list of 1–100"),
        ({"outcomes": ["fail"] * 101}, "outcomes must be a list of 1–100"),
        ({"outcomes": ["fail", "maybe"]}, "outcomes[1] must be 'succeed' or 'fail'"),
        ({"outcomes": ["FAIL"]}, "outcomes[0]"),
        ({"attempt_seconds": [1, -1]}, "attempt_seconds[1] must be a number in [0, 86400]"),
        ({"attempt_seconds": [86401]}, "attempt_seconds[0]"),
        ({"attempt_seconds": [True]}, "attempt_seconds[0]"),
        ({"attempt_seconds": ["1"]}, "attempt_seconds[0]"),
        ({"attempt_seconds": [math.nan]}, "attempt_seconds[0]"),
        ({"fail_code": "oom"}, "fail_code must be one of timeout, internal_error, unknown"),
        ({"fail_message": ""}, "fail_message must be a non-empty string"),
        ({"fail_message": "  "}, "fail_message"),
        ({"fail_message": "m" * 501}, "fail_message"),
        ({"fail_message": 5}, "fail_message"),
        ({"status_faults": [503]}, "status_faults[0] must be an object with a status"),
        ({"status_faults": [{"retry_after": 1}]}, "status_faults[0] must be an object with a status"),
        ({"status_faults": [{"status": 404}]}, "status_faults[0].status must be one of 429, 500, 502, 503, 504"),
        ({"status_faults": [{"status": True}]}, "status_faults[0].status"),
        ({"status_faults": [{"status": 503, "retry_after": 0}]}, "status_faults[0].retry_after"),
        ({"status_faults": [{"status": 503, "retry_after": 1.5}]}, "status_faults[0].retry_after must be an integer"),
        ({"status_faults": [{"status": 503, "times": 0}]}, "status_faults[0].times"),
        ({"status_faults": [{"status": 503, "times": 1001}]}, "status_faults[0].times"),
        ({"status_faults": [{"status": 503, "count": 2}]}, "unknown member 'count'"),
    ],
)
def test_bad_scripts_are_refused_naming_the_member(value: Any, message: str) -> None:
    """A script that is not an object of known, well-formed members is refused with a message naming what is wrong."""
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"fail_code": "oom"}, "fail_code must be one of timeout, internal_error, unknown, got 'oom'"),
        ({"fail_message": 5}, "fail_message must be a non-empty string of at most 500 characters, got 5"),
        ({"status_faults": [503]},
         "status_faults[0] must be an object with a status and optionally retry_after and times, got 503"),
        ({"status_faults": [{"status": 503, "count": 2}]},
         "status_faults[0] has an unknown member 'count'; allowed: status, retry_after, times"),
        ({"status_faults": [{"status": 404}]},
         "status_faults[0].status must be one of 429, 500, 502, 503, 504, got 404"),
        ({"status_faults": [{"status": 503, "times": 2.5}]}, "status_faults[0].times must be an integer in [1, 1000]"),
    ],
)
def test_a_refusal_shows_the_value_given(value: Any, message: str) -> None:
    """Each refusal ends with the value it refused, so the caller sees what was wrong with it."""
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(value)
    assert str(caught.value).startswith(message)


ALL = "outcomes, attempt_seconds, fail_code, fail_message, status_faults"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], f"must be an object with one or more of {ALL}, got []"),
        ({"outcome": ["fail"]}, f"unknown member 'outcome'; allowed: {ALL}"),
        ({}, f"must script something: one or more of {ALL}"),
        ({"outcomes": "fail"}, "outcomes must be a list of 1–100 entries, got 'fail'"),
        ({"outcomes": ["maybe"]}, "outcomes[0] must be 'succeed' or 'fail', got 'maybe'"),
    ],
)
def test_a_refusal_of_the_whole_script_names_every_member(value: Any, message: str) -> None:
    """The script-level refusals list the members allowed, and show the value refused."""
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(value)
    assert str(caught.value) == message


def test_the_upper_bounds_are_allowed() -> None:
    """100 entries, 86400 s of attempt and 1000 faulty reads are each the most a script may ask for."""
    script = Scenario.parse({"outcomes": ["succeed"] * 100, "attempt_seconds": [86400],
                             "status_faults": [{"status": 503, "times": 1000}]}).to_json()
    assert (len(script["outcomes"]), script["attempt_seconds"], script["status_faults"][0]["times"]) == (
        100, [86400.0], 1000)


def test_a_long_refused_value_is_cut_to_60_characters() -> None:
    """A value is shown whole up to 60 characters; a longer one by its first 57 and an ellipsis."""
    for code, shown in [("x" * 58, repr("x" * 58)), ("x" * 59, repr("x" * 57)[:57] + "...")]:
        with pytest.raises(ScenarioError) as caught:
            Scenario.parse({"fail_code": code})
        assert str(caught.value).endswith(f"got {shown}")


def test_a_fail_message_of_exactly_500_characters_is_accepted() -> None:
    """MAX_MESSAGE is the longest message allowed, not the first refused."""
    assert Scenario.parse({"fail_message": "m" * 500}).to_json()["fail_message"] == "m" * 500


# ------------------------------------------------------------------------------------------ the engine playing it


@pytest.mark.usefixtures("each_store")
def test_fail_fail_succeed_in_auto_mode_retries_at_once_with_the_scripted_errors() -> None:
    """Each attempt takes its scripted time and fails or succeeds as scripted; a retry starts as the attempt fails."""
    engine, clock = scripted_engine()
    job_id = submit(engine, FULL)
    clock.advance(1)
    job = engine.get(job_id)
    assert (job["status"], job["attempts"], job["stage"]) == ("pending", 2, "translating")
    assert job["error"] == {"code": "timeout", "message": "The GPU node was lost.", "attempt": 1, "at": t(1)}
    clock.advance(1)
    assert engine.get(job_id)["error"]["attempt"] == 2
    assert engine.get(job_id)["eta_seconds"] == 2.0
    clock.advance(2)
    done = engine.get(job_id)
    assert (done["status"], done["attempts"], done["finished_at"], done["error"]) == ("completed", 3, t(4), None)
    assert done["simulate"] == Scenario.parse(FULL).to_json()


@pytest.mark.usefixtures("each_store")
def test_in_manual_mode_the_failed_status_lasts_until_the_retry_is_started() -> None:
    """With PROCESSING_MODE=manual a scripted failure leaves the job `failed` in the queue until it is processed."""
    engine, clock = scripted_engine(PROCESSING_MODE="manual")
    job_id = submit(engine, {"outcomes": ["fail", "succeed"], "attempt_seconds": [5]})
    engine.start_next()
    clock.advance(5)
    failed = engine.get(job_id)
    assert (failed["status"], failed["stage"], failed["queue_position"]) == ("failed", "queued", 1)
    assert failed["error"]["code"] == "internal_error"  # the default code of a scripted failure
    clock.advance(3600)
    assert engine.get(job_id)["status"] == "failed"
    engine.start_next()
    clock.advance(5)
    assert engine.get(job_id)["status"] == "completed"


@pytest.mark.usefixtures("each_store")
def test_a_job_scripted_to_fail_more_than_max_retries_ends_permanently_failed() -> None:
    """Retries stay bounded by MAX_RETRIES: ["fail"] repeats, so the job gives up after 1 + MAX_RETRIES attempts."""
    engine, clock = scripted_engine(MAX_RETRIES=2)
    job_id = submit(engine, {"outcomes": ["fail"], "attempt_seconds": [1]})
    clock.advance(10)
    job = engine.get(job_id)
    assert (job["status"], job["attempts"], job["finished_at"]) == ("permanently_failed", 3, t(3))


@pytest.mark.usefixtures("each_store")
def test_what_the_script_leaves_out_is_drawn_as_configured() -> None:
    """Without outcomes ERROR_RATE decides (here always fail, at a random moment); the scripted message is kept."""
    engine, clock = scripted_engine(ERROR_RATE=1.0, MAX_RETRIES=0)
    job_id = submit(engine, {"attempt_seconds": [4], "fail_message": "Out of memory."})
    clock.advance(4)
    job = engine.get(job_id)
    assert job["status"] == "permanently_failed"
    assert job["error"]["message"] == "Out of memory."
    assert job["error"]["code"] in ("timeout", "internal_error", "unknown")
    assert t(0) < job["finished_at"] <= t(4)


@pytest.mark.usefixtures("each_store")
def test_without_attempt_seconds_the_configured_duration_applies() -> None:
    """A script of outcomes alone takes TRANSLATION_DELAY per attempt, and a scripted failure comes at its end."""
    engine, clock = scripted_engine(TRANSLATION_DELAY=7.0)
    job_id = submit(engine, {"outcomes": ["fail", "succeed"]})
    clock.advance(7)
    assert engine.get(job_id)["error"]["at"] == t(7)
    clock.advance(7)
    assert engine.get(job_id)["finished_at"] == t(14)


@pytest.mark.usefixtures("each_store")
def test_scenarios_off_refuses_a_scripted_submission_and_stores_nothing() -> None:
    """With SCENARIOS=off a submission with a script is refused; one without is accepted as always."""
    engine, _ = scripted_engine(SCENARIOS="off")
    with pytest.raises(ScenariosDisabled, match="SCENARIOS=off"):
        submit(engine, {"outcomes": ["fail"]})
    assert engine.total() == 0
    assert engine.get(submit(engine, None))["simulate"] is None


@pytest.mark.usefixtures("each_store")
def test_an_idempotency_key_replays_only_the_same_script() -> None:
    """The same key with the same script answers the first job; with another script it is a mismatch."""
    engine, _ = scripted_engine()
    first = submit(engine, {"outcomes": ["fail", "succeed"]}, idempotency_key="k1")
    view, replayed = engine.submit("free", "alice", idempotency_key="k1",
                                   simulate=Scenario.parse({"outcomes": ["fail", "succeed"]}))
    assert (view["job_id"], replayed) == (first, True)
    with pytest.raises(IdempotencyMismatch):
        engine.submit("free", "alice", idempotency_key="k1", simulate=Scenario.parse({"outcomes": ["succeed"]}))
    with pytest.raises(IdempotencyMismatch):
        engine.submit("free", "alice", idempotency_key="k1")
    assert engine.total() == 1


@pytest.mark.usefixtures("each_store")
def test_read_faults_are_taken_in_order_then_reads_answer_normally() -> None:
    """take_read_fault answers the scripted faults read by read, then None; an unscripted or unknown job never."""
    engine, _ = scripted_engine()
    job_id = submit(engine, FULL)
    plain = submit(engine, None)
    taken = [engine.take_read_fault(job_id) for _ in range(5)]
    assert taken == [ReadFault(503, 1), ReadFault(503, 1), ReadFault(500, None), None, None]
    assert [engine.take_read_fault(plain) for _ in range(3)] == [None, None, None]
    assert engine.take_read_fault("00000000-0000-4000-8000-000000000000") is None
    assert engine.store.reads_counted(job_id) == 3  # the script's 3 faulty reads; the reads after them not counted
    assert engine.store.reads_counted(plain) == 0


@pytest.mark.usefixtures("each_store")
def test_a_removed_job_takes_its_read_count_with_it() -> None:
    """Cleaning up a scripted job forgets how many of its reads were used."""
    engine, clock = scripted_engine()
    job_id = submit(engine, {"attempt_seconds": [1], "status_faults": [{"status": 503}]})
    assert engine.take_read_fault(job_id) == ReadFault(503, None)
    clock.advance(1)
    assert engine.cleanup([Status.COMPLETED]) == 1
    assert engine.store.reads_counted(job_id) == 0  # bounded memory: only stored jobs are counted


class SharedMemoryStore(MemoryStore):
    """A memory store that says it is shared by several processes, and counts the jobs it is asked for.

    On a shared store the engine remembers the jobs it has seen without status_faults, so that their status
    reads cost no store read for the script (a job's script never changes).
    """

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, job_id: str) -> Job | None:
        self.gets += 1
        return super().get(job_id)


def test_on_a_shared_store_a_job_without_status_faults_costs_no_script_read_and_a_scripted_one_always_does() -> None:
    """Jobs submitted alone or in a batch, with a script of outcomes or none, are remembered as having no faults;
    a job with status_faults never is, so its faults are answered; a job submitted by another process is
    remembered after its first read."""
    store = SharedMemoryStore()
    engine = JobEngine(config.from_mapping(FAST), store=store, clock=ManualClock(START))
    other_process = JobEngine(config.from_mapping(FAST), store=store, clock=ManualClock(START))
    faults = Scenario.parse({"status_faults": [{"status": 503, "times": 2}]})
    outcomes = Scenario.parse({"outcomes": ["succeed"]})
    plain = [v["job_id"] for v in engine.submit_many("free", "alice", [{}, {}])]
    plain += [v["job_id"] for v in engine.submit_many("free", "alice", [{}], simulate=outcomes)]
    plain += [engine.submit("free", "alice")[0]["job_id"],
              engine.submit("free", "alice", simulate=outcomes)[0]["job_id"]]
    scripted = [engine.submit_many("free", "alice", [{}], simulate=faults)[0]["job_id"],
                engine.submit("free", "alice", simulate=faults)[0]["job_id"],
                engine.submit("free", "alice", simulate=faults, idempotency_key="k")[0]["job_id"]]
    assert engine.submit("free", "alice", simulate=faults, idempotency_key="k") == (engine.get(scripted[-1]), True)
    foreign = other_process.submit("free", "bob")[0]["job_id"]
    store.gets = 0
    assert [engine.take_read_fault(job_id) for job_id in plain] == [None] * 5
    assert store.gets == 0
    for job_id in scripted:
        assert [engine.take_read_fault(job_id) for _ in range(3)] == [ReadFault(503, None)] * 2 + [None]
    store.gets = 0
    assert [engine.take_read_fault(foreign) for _ in range(3)] == [None] * 3
    assert store.gets == 1
