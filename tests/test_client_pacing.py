"""Unit tests of the client's pacing and retries: a scripted session, a fake clock, recorded sleeps."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
import requests

from client import (
    Job,
    JobFailedError,
    NotFoundError,
    Pacing,
    ProtocolError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    TransportError,
    WaitTimeoutError,
    backoff_delay,
    hint_delay,
)
from simulator.client.errors import retry_after
from simulator.client.pacing import long_poll_wait, retry_delay
from tests.client_fakes import JOB_ID, FakeTime, Scripted, job_json, make_client, response

# ------------------------------------------------------------------------------ pure pacing functions


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 5, 10, 100, 10_000])
def test_backoff_stays_between_floor_and_cap(attempt: int) -> None:
    """Backoff grows by its factor, never exceeds the cap, never drops under the floor, and never overflows."""
    pacing = Pacing()
    rng = random.Random(attempt)
    ceiling = min(pacing.backoff_cap, pacing.backoff_initial * pacing.backoff_factor ** min(attempt, 64))
    for _ in range(200):
        delay = backoff_delay(attempt, rng, pacing)
        assert max(pacing.backoff_floor, ceiling / 2) <= delay <= max(pacing.backoff_floor, ceiling)


def test_backoff_jitter_spreads_the_delays() -> None:
    """Two clients backing off at the same attempt do not retry in lockstep."""
    rng = random.Random(3)
    delays = {round(backoff_delay(4, rng), 6) for _ in range(50)}
    assert len(delays) > 40


def test_hint_delay_sleeps_just_after_the_eta() -> None:
    """With eta_seconds the sleep lands after the hinted moment, within slack plus the jitter cap."""
    pacing = Pacing()
    job = Job.from_dict(job_json(eta_seconds=2.5))
    rng = random.Random(5)
    for _ in range(200):
        delay = hint_delay(job, None, 0, rng, pacing)
        assert 2.5 + pacing.slack <= delay <= 2.5 + pacing.slack + pacing.jitter_cap


def test_hint_delay_is_capped_and_floored() -> None:
    """A huge eta sleeps at most max_interval; a zero eta sleeps at least min_interval."""
    pacing = Pacing()
    rng = random.Random(0)
    assert hint_delay(Job.from_dict(job_json(eta_seconds=3600)), None, 0, rng, pacing) == pacing.max_interval
    assert hint_delay(Job.from_dict(job_json(eta_seconds=0)), None, 0, rng, pacing) >= pacing.min_interval


def test_hint_delay_uses_retry_after_without_eta() -> None:
    """Without eta_seconds, Retry-After is honoured (never undercut)."""
    job = Job.from_dict(job_json(eta_seconds=None))
    delay = hint_delay(job, 4.0, 0, random.Random(2))
    assert 4.0 <= delay <= 4.0 + Pacing().jitter_cap


def test_hint_delay_backs_off_without_any_hint() -> None:
    """Without eta or Retry-After the delay follows the backoff for the number of misses."""
    job = Job.from_dict(job_json(eta_seconds=None))
    pacing = Pacing()
    assert hint_delay(job, None, 0, random.Random(1), pacing) <= pacing.backoff_initial
    assert hint_delay(job, None, 6, random.Random(1), pacing) >= pacing.backoff_cap / 2


# ------------------------------------------------------------------------------ hints: what the server says to wait


@pytest.mark.parametrize(
    ("headers", "problem", "expected"),
    [
        ({"Retry-After": "7"}, {}, 7.0),  # the header alone
        ({}, {"retry_after": 3}, 3.0),  # the problem member alone
        ({"Retry-After": "7"}, {"retry_after": 3}, 3.0),  # both: the problem's, which is not rounded up
        ({"Retry-After": "0"}, {}, 0.0),  # zero: now
        ({"Retry-After": "1.5"}, {}, 1.5),
        ({"Retry-After": "-5"}, {}, None),  # nonsense is no hint
        ({"Retry-After": "inf"}, {}, None),
        ({"Retry-After": "nan"}, {}, None),
        ({}, {"retry_after": -1}, None),
        ({}, {"retry_after": float("inf")}, None),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, {}, None),
        ({}, {}, None),
    ],
)
def test_retry_after_reads_the_problem_member_else_the_header(headers, problem, expected) -> None:
    """The problem's retry_after wins over the header; a negative, infinite or unreadable value is no hint."""
    assert retry_after(headers, problem) == expected


def test_a_429_waits_out_the_problem_retry_after_without_a_header() -> None:
    """A rate-limited submission honours the body's retry_after when the header is missing."""
    tc, _, fake = make_client([response(429, {"status": 429, "code": "rate_limited", "retry_after": 3}),
                               response(202, job_json())])
    tc.submit("free", wait_on_rate_limit=5)
    assert fake.sleeps == [3]


def test_a_503_pauses_for_the_header_retry_after_without_a_body_member() -> None:
    """A failed status request honours the Retry-After header alone, exactly, when it is above the floor."""
    tc, _, fake = make_client([response(503, {"status": 503, "code": "unavailable"}, {"Retry-After": "2"}),
                               response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID, timeout=30)
    assert fake.sleeps == [2]


@pytest.mark.parametrize(("value", "low", "high"), [("-5", 0.125, 0.25), ("inf", 0.125, 0.25), ("0", 0.1, 0.125)])
def test_a_useless_retry_after_falls_back_to_the_floor_and_backoff(value: str, low: float, high: float) -> None:
    """A negative or infinite Retry-After is no hint (the first backoff, 0.125–0.25 s); zero leaves the floor alone."""
    tc, _, fake = make_client([response(503, {"status": 503, "code": "unavailable"}, {"Retry-After": value}),
                               response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID, timeout=30)
    assert len(fake.sleeps) == 1 and low <= fake.sleeps[0] <= high


def test_a_retry_after_on_a_200_paces_the_next_check() -> None:
    """An unfinished job without eta_seconds but with Retry-After on a 200 is asked about again just after it."""
    tc, _, fake = make_client([response(200, job_json(eta_seconds=None), {"Retry-After": "4"}),
                               response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID, timeout=30)
    assert len(fake.sleeps) == 1 and 4.0 <= fake.sleeps[0] <= 4.0 + Pacing().jitter_cap


def test_eta_seconds_wins_over_retry_after() -> None:
    """With both hints the exact eta_seconds decides, not the whole-second Retry-After."""
    job = Job.from_dict(job_json(eta_seconds=0.4))
    delay = hint_delay(job, 1.0, 0, random.Random(0))
    assert 0.41 <= delay <= 0.41 * 1.05


@pytest.mark.parametrize("eta", [0.0, 0.2, 0.5])
def test_the_jitter_after_a_short_eta_scales_with_it(eta: float) -> None:
    """After a short eta the jitter is at most jitter_ratio of it (5 % of 0.21 s), not the whole cap."""
    pacing = Pacing()
    job = Job.from_dict(job_json(eta_seconds=eta))
    rng = random.Random(9)
    base = eta + pacing.slack
    delays = [hint_delay(job, None, 0, rng, pacing) for _ in range(300)]
    assert all(max(pacing.min_interval, base) <= d <= max(pacing.min_interval, base * (1 + pacing.jitter_ratio))
               for d in delays)
    if base > pacing.min_interval:
        assert max(delays) > base * (1 + pacing.jitter_ratio / 2), "the jitter spreads over its whole range"


@pytest.mark.parametrize("hinted", [0.4, 0.8])
def test_the_jitter_after_a_short_retry_after_scales_with_it(hinted: float) -> None:
    """After a short Retry-After (no eta) the jitter is at most jitter_ratio of it."""
    pacing = Pacing()
    job = Job.from_dict(job_json(eta_seconds=None))
    rng = random.Random(4)
    delays = [hint_delay(job, hinted, 0, rng, pacing) for _ in range(300)]
    assert all(hinted <= d <= hinted * (1 + pacing.jitter_ratio) for d in delays)
    assert max(delays) > hinted * (1 + pacing.jitter_ratio / 2)


def test_without_hints_the_backoff_doubles_per_miss_from_its_first_delay() -> None:
    """Hintless answers sleep within [c/2, c] for c = 0.25 s, 0.5 s, 1 s, … capped at 10 s, one step per answer."""
    script: list[Scripted] = [response(200, job_json(eta_seconds=None)) for _ in range(8)]
    script.append(response(200, job_json("completed")))
    tc, _, fake = make_client(script)
    tc.wait_for_completion(JOB_ID)
    pacing = Pacing()
    for miss, sleep in enumerate(fake.sleeps):
        ceiling = min(pacing.backoff_cap, pacing.backoff_initial * pacing.backoff_factor**miss)
        assert max(pacing.backoff_floor, ceiling / 2) <= sleep <= ceiling, miss


def test_a_hint_resets_the_backoff() -> None:
    """After an answer with a hint, the next hintless answer backs off from the first delay again."""
    answers = [job_json(eta_seconds=None)] * 3 + [job_json(eta_seconds=1.0)] + [job_json(eta_seconds=None)]
    tc, _, fake = make_client([*(response(200, a) for a in answers), response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID)
    assert fake.sleeps[2] >= 0.5  # the third miss: [0.5, 1]
    assert fake.sleeps[4] <= Pacing().backoff_initial  # the first miss after the hint


def test_the_backoff_without_hints_follows_a_custom_pacing() -> None:
    """Pacing(backoff_initial=4, ...) makes the first hintless sleep 2–4 s, not the default 0.125–0.25 s."""
    pacing = Pacing(backoff_initial=4.0, backoff_cap=40.0)
    job = Job.from_dict(job_json(eta_seconds=None))
    rng = random.Random(3)
    assert all(2.0 <= hint_delay(job, None, 0, rng, pacing) <= 4.0 for _ in range(100))
    assert all(4.0 <= hint_delay(job, None, 1, rng, pacing) <= 8.0 for _ in range(100))


# ------------------------------------------------------------------------------ after failures


def test_retry_delay_grows_the_backoff_from_the_first_failure() -> None:
    """Without Retry-After failure 1 pauses 0.125–0.25 s (the first backoff), failure 2 0.25–0.5 s, 3 0.5–1 s."""
    rng = random.Random(6)
    for failures, (low, high) in {1: (0.125, 0.25), 2: (0.25, 0.5), 3: (0.5, 1.0)}.items():
        for _ in range(100):
            assert low <= retry_delay(failures, None, rng) <= high, failures


def test_retry_delay_honours_retry_after_above_the_floor_exactly() -> None:
    """A Retry-After above the grown floor is the pause, with no jitter; below it the floor wins."""
    rng = random.Random(2)
    assert retry_delay(1, 3.0, rng) == 3.0
    assert retry_delay(10, 0.0, rng) >= Pacing().floor_cap


def test_retry_delay_follows_a_custom_pacing() -> None:
    """A custom Pacing's floor and backoff both shape the pause after a failure."""
    slow_floor = Pacing(min_interval=1.0, floor_cap=8.0)
    assert all(2.0 <= retry_delay(1, None, random.Random(n), slow_floor) <= 2.5 for n in range(50))
    long_backoff = Pacing(backoff_initial=4.0, backoff_cap=40.0)
    assert all(2.0 <= retry_delay(1, None, random.Random(n), long_backoff) <= 4.0 for n in range(50))


@pytest.mark.parametrize(("window", "wait"), [(0.1, 0.05), (0.15, 0.075), (1.0, 0.9), (25.05, 24.9), (100.0, 24.9)])
def test_a_long_poll_asks_to_be_answered_a_margin_before_it_must_be_back(window: float, wait: float) -> None:
    """The wait asked is the window less 0.1 s, at most half the window, within long_poll_max."""
    assert long_poll_wait(window) == pytest.approx(wait)


# ------------------------------------------------------------------------------ the waiting loop


def test_wait_sleeps_on_the_eta_then_finds_the_job_done() -> None:
    """A hint-paced wait makes one request, sleeps just past eta_seconds, and the second request sees the end."""
    tc, session, fake = make_client(
        [response(200, job_json(eta_seconds=2.0)), response(200, job_json("completed"))]
    )
    job = tc.wait_for_completion(JOB_ID)
    assert job.status == "completed"
    assert len(session.calls) == 2
    assert len(fake.sleeps) == 1
    assert 2.0 <= fake.sleeps[0] <= 2.0 + Pacing().slack + Pacing().jitter_cap


def test_wait_never_sleeps_past_the_deadline() -> None:
    """With a 1 s timeout and a 5 s eta, the sleeps add up to exactly the timeout and the last job is carried."""
    tc, session, fake = make_client([response(200, job_json(eta_seconds=5.0, progress=10))])
    with pytest.raises(WaitTimeoutError) as caught:
        tc.wait_for_completion(JOB_ID, timeout=1.0)
    assert sum(fake.sleeps) == pytest.approx(1.0)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.job is not None and caught.value.job.progress == 10
    assert len(session.calls) == 1


def test_wait_retries_transient_failures_within_the_deadline() -> None:
    """Connection errors, 503 with Retry-After and 429 are retried, and the job's real outcome is returned."""
    tc, session, fake = make_client(
        [
            requests.ConnectionError("refused"),
            response(503, {"status": 503, "code": "unavailable", "retry_after": 2}, {"Retry-After": "2"}),
            requests.ReadTimeout("slow"),
            response(429, {"status": 429, "code": "rate_limited", "retry_after": 1}, {"Retry-After": "1"}),
            response(500, {"status": 500, "code": "internal_error"}),
            response(200, job_json("completed")),
        ]
    )
    job = tc.wait_for_completion(JOB_ID, timeout=60)
    assert job.status == "completed"
    assert len(session.calls) == 6
    assert fake.sleeps[1] == 2  # Retry-After of the 503 is honoured exactly
    assert fake.sleeps[3] == 1  # and that of the 429
    assert all(s <= Pacing().backoff_cap for s in fake.sleeps)


def test_wait_gives_up_on_transient_failures_at_the_deadline() -> None:
    """A server that stays down ends the wait with WaitTimeoutError, not TransportError, and no sleep overruns."""
    tc, _session, fake = make_client([requests.ConnectionError("refused")] * 100)
    with pytest.raises(WaitTimeoutError):
        tc.wait_for_completion(JOB_ID, timeout=5.0)
    assert sum(fake.sleeps) == pytest.approx(5.0)


def test_wait_reports_a_missing_job_at_once() -> None:
    """A 404 is not transient: it is raised as NotFoundError without retrying."""
    tc, session, _ = make_client([response(404, {"status": 404, "code": "job_not_found", "detail": "No job"})])
    with pytest.raises(NotFoundError) as caught:
        tc.wait_for_completion(JOB_ID)
    assert caught.value.code == "job_not_found"
    assert len(session.calls) == 1


def test_wait_backs_off_when_there_is_no_hint() -> None:
    """Answers without eta or Retry-After make the sleeps grow, bounded by the cap."""
    script: list[Scripted] = [response(200, job_json(eta_seconds=None)) for _ in range(8)]
    script.append(response(200, job_json("completed")))
    tc, _, fake = make_client(script)
    tc.wait_for_completion(JOB_ID)
    assert len(fake.sleeps) == 8
    assert fake.sleeps[-1] > fake.sleeps[0]
    assert all(Pacing().backoff_floor <= s <= Pacing().backoff_cap for s in fake.sleeps)


def test_on_progress_is_called_once_per_change() -> None:
    """Repeated identical answers do not call on_progress again; each change of status/progress/position does."""
    answers = [
        job_json(queue_position=2, eta_seconds=1),
        job_json(queue_position=2, eta_seconds=1),
        job_json(queue_position=1, eta_seconds=1),
        job_json(progress=40, eta_seconds=1),
        job_json(progress=40, eta_seconds=1),
        job_json("completed"),
    ]
    tc, _, _ = make_client([response(200, a) for a in answers])
    seen: list[tuple[str, int, int | None]] = []
    tc.wait_for_completion(JOB_ID, on_progress=lambda j: seen.append((j.status, j.progress, j.queue_position)))
    assert seen == [("pending", 0, 2), ("pending", 0, 1), ("pending", 40, None), ("completed", 100, None)]


def test_long_poll_asks_for_the_remaining_time_and_sleeps_only_the_floor() -> None:
    """Against a long-polling server the client sends wait (≤ the time left) and since, sleeping only the floor."""
    applied = {"Preference-Applied": "wait=10"}
    tc, session, fake = make_client(
        [
            response(200, job_json(eta_seconds=3, version=2), applied),
            response(200, job_json(eta_seconds=3, version=2), applied),
            response(200, job_json("completed", version=3), applied),
        ],
        long_poll=True,
    )
    job = tc.wait_for_completion(JOB_ID, timeout=10)
    assert job.status == "completed"
    pacing = Pacing()
    assert len(fake.sleeps) == 2
    assert all(pacing.min_interval <= s <= pacing.min_interval * (1 + pacing.floor_jitter) for s in fake.sleeps)
    assert 10 - pacing.long_poll_margin <= float(session.calls[0]["params"]["wait"]) < 10
    assert "since" not in session.calls[0]["params"]  # nothing known yet: the server takes its own version
    assert session.calls[1]["params"]["since"] == 2
    assert float(session.calls[1]["params"]["wait"]) <= 10
    assert tc.server_long_polls is True


def test_long_poll_falls_back_to_hints_when_the_server_does_not_honour_it() -> None:
    """An answer without Preference-Applied turns long-polling off; the client then paces on eta_seconds."""
    tc, _session, fake = make_client(
        [response(200, job_json(eta_seconds=1.5)), response(200, job_json("completed"))], long_poll=True
    )
    tc.wait_for_completion(JOB_ID, timeout=30)
    assert tc.server_long_polls is False
    assert len(fake.sleeps) == 1 and fake.sleeps[0] >= 1.5


def test_wait_for_all_serves_many_jobs_from_one_loop_in_eta_order() -> None:
    """Three jobs with different etas are each checked once just after their own eta, in that order."""
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 4)]
    etas = {ids[0]: 3.0, ids[1]: 1.0, ids[2]: 2.0}
    state: dict[str, int] = {}

    def answer(call: dict[str, Any]) -> requests.Response:
        job_id = call["path"].rsplit("/", 1)[1]
        state[job_id] = state.get(job_id, 0) + 1
        if state[job_id] == 1:
            return response(200, job_json(job_id=job_id, eta_seconds=etas[job_id]))
        return response(200, job_json("completed", job_id=job_id))

    tc, session, fake = make_client([answer] * 6)
    finals = tc.wait_for_all(ids, timeout=30)
    assert {j.status for j in finals.values()} == {"completed"}
    second_round = [c["path"].rsplit("/", 1)[1] for c in session.calls[3:]]
    assert second_round == [ids[1], ids[2], ids[0]]
    assert sum(fake.sleeps) < 3.0 + 0.1


OTHER_ID = "00000000-0000-4000-8000-000000000002"


def refused() -> requests.ConnectionError:
    """Return the error requests raises for a refused connection."""
    return requests.ConnectionError("refused")


def test_a_timed_out_wait_says_how_long_it_waited_and_where_the_job_was() -> None:
    """WaitTimeoutError names the time waited and each unfinished job's status, with no error when none occurred."""
    tc, _, _ = make_client([response(200, job_json(eta_seconds=5.0))])
    with pytest.raises(WaitTimeoutError) as caught:
        tc.wait_for_completion(JOB_ID, timeout=1.0)
    assert not isinstance(caught.value, ServerUnreachableError)
    assert str(caught.value) == f"Waited 1.0 s; not finished: {JOB_ID}: pending"
    assert (caught.value.last_error, caught.value.__cause__) == (None, None)


def test_a_wait_that_times_out_after_no_answer_is_server_unreachable() -> None:
    """After a refused request, the timeout is a ServerUnreachableError naming each job (unknown if never seen)."""
    tc, _, _ = make_client([response(200, job_json(eta_seconds=5.0)), refused()])
    with pytest.raises(ServerUnreachableError) as caught:
        tc.wait_for_all([JOB_ID, OTHER_ID], timeout=0.1)
    error = caught.value.last_error
    assert isinstance(error, TransportError) and caught.value.__cause__ is error
    assert str(caught.value) == (f"Waited 0.1 s; not finished: {JOB_ID}: pending, {OTHER_ID}: unknown; "
                                 f"no answer from the server: {error}")
    assert caught.value.job is None  # the job due first is the one never seen


def test_a_server_unreachable_timeout_carries_the_last_state_seen() -> None:
    """A wait that ends unreachable after an answer carries the job as that answer showed it."""
    tc, _, _ = make_client([response(200, job_json(eta_seconds=0.05, progress=40)), refused()])
    with pytest.raises(ServerUnreachableError) as caught:
        tc.wait_for_completion(JOB_ID, timeout=0.1)
    assert caught.value.job is not None and caught.value.job.progress == 40


def test_a_wait_that_times_out_after_a_5xx_carries_that_error() -> None:
    """After a 503 the timeout is a plain WaitTimeoutError (the server is there) with the 503 as its last error."""
    busy = response(503, {"status": 503, "code": "unavailable", "title": "Busy"}, {"Retry-After": "9"})
    tc, _, _ = make_client([response(200, job_json(eta_seconds=0.05)), busy])
    with pytest.raises(WaitTimeoutError) as caught:
        tc.wait_for_completion(JOB_ID, timeout=2.0)
    error = caught.value.last_error
    assert not isinstance(caught.value, ServerUnreachableError) and isinstance(error, ServerError)
    assert caught.value.__cause__ is error
    assert str(caught.value) == f"Waited 2.0 s; not finished: {JOB_ID}: pending; last error: {error}"
    assert caught.value.job is not None and caught.value.job.status == "pending"


def test_without_a_deadline_silence_after_an_answer_is_given_up_on_after_the_limit() -> None:
    """With timeout=None, refused requests after an answer end the wait unreachable_limit after that answer."""
    tc, _, fake = make_client([response(200, job_json(eta_seconds=0.05, progress=30))] + [refused()] * 100)
    with pytest.raises(ServerUnreachableError) as caught:
        tc.wait_for_completion(JOB_ID, timeout=None)
    silence = fake.now - 1000.0
    assert Pacing().unreachable_limit <= silence <= Pacing().unreachable_limit + Pacing().backoff_cap
    assert str(caught.value) == (f"No answer from the server for {silence:.0f} s; giving up "
                                 f"(last error: {caught.value.last_error})")
    assert isinstance(caught.value.last_error, TransportError)
    assert caught.value.job is not None and caught.value.job.progress == 30


def test_an_answer_resets_the_growth_of_the_pause_after_failures() -> None:
    """The pause after a failure that follows an answer is the first failure's again (0.125–0.25 s), not grown."""
    tc, _, fake = make_client([refused(), refused(), response(200, job_json(eta_seconds=1.0)), refused(),
                               response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID, timeout=60)
    assert 0.25 <= fake.sleeps[1] <= 0.5  # the second failure in a row
    assert 0.125 <= fake.sleeps[3] <= 0.25  # a first failure again


def test_a_hint_from_retry_after_alone_also_resets_the_backoff() -> None:
    """An answer with only Retry-After is a hint: the hintless answer after it backs off from the first delay."""
    answers = [response(200, job_json(eta_seconds=None)) for _ in range(3)]
    answers += [response(200, job_json(eta_seconds=None), {"Retry-After": "1"}), response(200, job_json())]
    tc, _, fake = make_client([*answers, response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID)
    assert fake.sleeps[4] <= Pacing().backoff_initial


def test_a_custom_pacing_shapes_every_pause_of_a_wait() -> None:
    """Pacing's backoff sets the hintless sleeps, and its floor the pauses after failures."""
    pacing = Pacing(backoff_initial=2.0, backoff_cap=20.0, min_interval=0.5)
    script = [response(200, job_json(eta_seconds=None)), refused(), response(200, job_json("completed"))]
    tc, _, fake = make_client(script, pacing=pacing)
    tc.wait_for_completion(JOB_ID, timeout=60)
    assert 1.0 <= fake.sleeps[0] <= 2.0  # hintless: the custom first backoff
    assert 1.0 <= fake.sleeps[1] <= 2.0  # after a failure: at least the custom floor grown once (1.0–1.25)


def test_long_polls_are_paced_by_a_custom_floor_and_wait() -> None:
    """With Pacing(min_interval=0.5, long_poll_max=5) long-polls come at least 0.5 s apart and ask at most 5 s."""
    applied = {"Preference-Applied": "wait=5"}
    tc, session, fake = make_client([response(200, job_json(eta_seconds=30), applied)] * 2
                                    + [response(200, job_json("completed"), applied)],
                                    long_poll=True, pacing=Pacing(min_interval=0.5, long_poll_max=5.0))
    tc.wait_for_completion(JOB_ID, timeout=60)
    assert len(fake.sleeps) == 2 and all(0.5 <= s <= 0.5 * 1.25 for s in fake.sleeps)
    assert all(float(call["params"]["wait"]) <= 5.0 for call in session.calls)


def test_a_held_long_poll_counts_the_next_hint_from_its_end() -> None:
    """A hint in an answer held 3 s counts from when it came, so another job due sooner is served first."""
    first, second = JOB_ID, OTHER_ID
    fake_holder: dict[str, FakeTime] = {}
    asked: list[tuple[str, float | None]] = []

    def server(call: dict[str, Any]) -> requests.Response:
        job_id = call["path"].rsplit("/", 1)[1]
        wait = float(call["params"]["wait"]) if call["params"] and "wait" in call["params"] else None
        asked.append((job_id, wait))
        if len(asked) == 1:
            return response(200, job_json(job_id=first, eta_seconds=1.0))  # plain: its hint counts from now
        if len(asked) == 2:  # a long-poll answered at once (the job was already past), which says it would hold
            return response(200, job_json(job_id=second, eta_seconds=4.0), {"Preference-Applied": "wait"})
        if len(asked) == 3:
            fake_holder["fake"].now += 3.0  # held until the job moved
            return response(200, job_json(job_id=first, eta_seconds=2.0, version=3), {"Preference-Applied": "wait"})
        return response(200, job_json("completed", job_id=job_id), {"Preference-Applied": "wait"})

    tc, _, fake = make_client([server] * 6, long_poll=True)
    fake_holder["fake"] = fake
    tc.wait_for_all([first, second], timeout=60)
    assert asked[2][0] == first and asked[2][1] is not None
    assert asked[2][1] <= 4.0, "the long-poll of the first job ends before the second job is due"
    assert asked[3][0] == second, "the first job's new hint ends at 5 s, after the second job's 4 s"


def test_a_request_at_a_jobs_check_time_probes_for_long_polling() -> None:
    """Even after a server did not hold a request, the check at the hinted time asks for a wait (a free probe)."""
    tc, session, _ = make_client([response(200, job_json(eta_seconds=1.5)), response(200, job_json("completed"))],
                                 long_poll=True)
    tc.wait_for_completion(JOB_ID, timeout=30)
    assert tc.server_long_polls is False
    assert "wait" in session.calls[1]["params"]


def test_a_client_that_does_not_long_poll_never_thinks_the_server_does() -> None:
    """With long_poll=False, server_long_polls stays False after a wait, whatever the answers carry."""
    tc, _, _ = make_client([response(200, job_json(eta_seconds=1.0), {"Preference-Applied": "wait=1"}),
                            response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID)
    assert tc.server_long_polls is False


def test_after_a_submission_the_first_check_is_a_long_poll_once_the_floor_passed() -> None:
    """With long-polling, translate() long-polls its new job after the floor instead of sleeping to its eta."""
    tc, session, fake = make_client([response(202, job_json(eta_seconds=5.0)),
                                     response(200, job_json("completed"), {"Preference-Applied": "wait=5"})],
                                    long_poll=True)
    tc.translate(timeout=60)
    assert len(fake.sleeps) == 1 and fake.sleeps[0] <= Pacing().min_interval * 1.25
    assert "wait" in session.calls[1]["params"]


def test_a_server_known_not_to_hold_requests_is_asked_at_the_eta() -> None:
    """Once a server is known not to long-poll, a new job is asked about at its eta, not long-polled at once."""
    tc, _, fake = make_client([response(202, job_json(eta_seconds=5.0)), response(200, job_json("completed"))],
                              long_poll=True)
    tc.server_long_polls = False  # learnt from an earlier wait
    tc.translate(timeout=60)
    assert len(fake.sleeps) == 1 and 5.0 <= fake.sleeps[0] <= 5.0 + Pacing().slack + Pacing().jitter_cap


def test_a_new_job_is_not_asked_about_before_the_floor() -> None:
    """The submission's answer counts: the first status request waits at least the floor (0.5–0.625 s here)."""
    tc, _, fake = make_client([response(202, job_json(eta_seconds=None)), response(200, job_json("completed"))],
                              pacing=Pacing(min_interval=0.5))
    tc.translate(timeout=60)
    assert len(fake.sleeps) == 1 and 0.5 <= fake.sleeps[0] <= 0.625


def test_a_job_given_twice_is_waited_for_once_and_the_others_still_are() -> None:
    """wait_for_all with a Job and its id waits for it once; a finished one needs no request; later ids are kept."""
    done = Job.from_dict(job_json("completed"))
    tc, session, _ = make_client([])
    assert tc.wait_for_all([done, JOB_ID])[JOB_ID].status == "completed"
    assert session.calls == []
    pending = Job.from_dict(job_json(eta_seconds=1.0))
    tc, session, _ = make_client([response(200, job_json("completed", job_id=OTHER_ID)),  # asked first: no hint yet
                                  response(200, job_json("completed"))])
    assert set(tc.wait_for_all([pending, JOB_ID, OTHER_ID])) == {JOB_ID, OTHER_ID}


def test_retries_and_their_pauses_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Each retried status request and submission logs what failed and how long the pause is."""
    caplog.set_level(logging.INFO, logger="simulator.client")
    busy = response(503, {"status": 503, "code": "unavailable", "title": "Busy"}, {"Retry-After": "2"})
    limited = response(429, {"status": 429, "code": "rate_limited", "retry_after": 3})
    tc, _, _ = make_client([busy, response(202, job_json()), limited, response(202, job_json()), busy,
                            response(200, job_json("completed"))])
    tc.submit()
    tc.submit(wait_on_rate_limit=5)
    tc.wait_for_completion(JOB_ID, timeout=60)
    messages = [r.getMessage() for r in caplog.records if r.name == "simulator.client.waiting"]
    assert len(messages) == 3
    assert messages[0].startswith("submission failed (503 Busy: ")
    assert messages[0].endswith("); retrying in 2.00 s with the same Idempotency-Key")
    assert messages[1] == "rate limited; retrying the submission in 3.0 s"
    assert messages[2].startswith(f"status of {JOB_ID} failed (503 Busy: ")
    assert messages[2].endswith("); retrying in 2.00 s")


# ------------------------------------------------------------------------------ submitting: what mutation testing found


def test_a_submission_with_no_time_left_sends_nothing() -> None:
    """submit(timeout=0) raises WaitTimeoutError at once, before any request, with no error to blame."""
    tc, session, fake = make_client([])
    with pytest.raises(WaitTimeoutError) as caught:
        tc.submit(timeout=0)
    assert session.calls == [] and fake.sleeps == []
    assert not isinstance(caught.value, ServerUnreachableError)
    assert str(caught.value) == "No answer to the submission within 0.0 s"
    assert (caught.value.job, caught.value.last_error, caught.value.__cause__) == (None, None, None)


def test_a_submission_whose_retry_after_reaches_the_deadline_gives_up_at_once() -> None:
    """A 503 asking to wait exactly the time left ends the submission now, naming the 503, instead of sleeping."""
    tc, session, fake = make_client([response(503, {"status": 503, "code": "unavailable", "title": "Busy"},
                                              {"Retry-After": "2"})])
    with pytest.raises(WaitTimeoutError) as caught:
        tc.submit(timeout=2)
    error = caught.value.last_error
    assert isinstance(error, ServerError) and caught.value.__cause__ is error
    assert not isinstance(caught.value, ServerUnreachableError)
    assert str(caught.value) == f"No answer to the submission within 0.0 s; last error: {error}"
    assert len(session.calls) == 1 and fake.sleeps == []


def test_a_refused_submission_that_cannot_be_retried_in_time_is_server_unreachable() -> None:
    """When the pause after a refused connection would pass the deadline, the submission ends unreachable, at once."""
    tc, _, fake = make_client([refused()])
    with pytest.raises(ServerUnreachableError) as caught:
        tc.submit(timeout=0.1)
    error = caught.value.last_error
    assert isinstance(error, TransportError) and caught.value.__cause__ is error
    assert str(caught.value) == f"No answer to the submission within 0.0 s: {error}"
    assert caught.value.job is None and fake.sleeps == []


@pytest.mark.parametrize(
    ("problem", "pacing", "low", "high"),
    [
        ({"retry_after": 0}, Pacing(), 0.05, 0.0625),  # "now": the floor after an answer
        ({}, Pacing(), 0.125, 0.25),  # no hint: the first backoff
        ({"retry_after": 0}, Pacing(min_interval=0.5), 0.5, 0.625),
        ({}, Pacing(backoff_initial=2.0, backoff_cap=20.0), 1.0, 2.0),
    ],
)
def test_a_rate_limited_submission_pauses_at_least_the_floor_or_backs_off(problem, pacing, low, high) -> None:
    """A 429 with Retry-After 0 waits the floor; one without a hint the first backoff; both follow the Pacing."""
    limited = response(429, {"status": 429, "code": "rate_limited", **problem})
    tc, _, fake = make_client([limited, response(202, job_json())], pacing=pacing)
    tc.submit(wait_on_rate_limit=5)
    assert len(fake.sleeps) == 1 and low <= fake.sleeps[0] <= high


def test_a_retry_after_equal_to_the_allowed_wait_is_waited_out() -> None:
    """wait_on_rate_limit=5 covers a Retry-After of exactly 5 s."""
    tc, _, fake = make_client([response(429, {"status": 429, "code": "rate_limited", "retry_after": 5}),
                               response(202, job_json())])
    tc.submit(wait_on_rate_limit=5)
    assert fake.sleeps == [5]


def test_a_failed_submission_is_retried_after_retry_after_or_the_grown_floor() -> None:
    """A 503's Retry-After sets the pause before the retry; without one, the Pacing's floor grown once does."""
    busy = response(503, {"status": 503, "code": "unavailable"}, {"Retry-After": "2"})
    tc, _, fake = make_client([busy, response(202, job_json())])
    tc.submit()
    assert fake.sleeps == [2]
    tc, _, fake = make_client([refused(), response(202, job_json())], pacing=Pacing(min_interval=0.5))
    tc.submit()
    assert len(fake.sleeps) == 1 and 1.0 <= fake.sleeps[0] <= 1.25


def test_a_submission_request_gets_the_client_timeout_as_its_budget() -> None:
    """Without a deadline a submission may take the client's timeout, no more: it is never held like a long-poll."""
    tc, session, _ = make_client([response(202, job_json())], timeout=7.0)
    tc.submit()
    assert session.calls[0]["timeout"][1] == 7.0


# ------------------------------------------------------------------------------ submitting


def test_submit_raises_rate_limit_at_once_by_default() -> None:
    """A 429 on submit raises RateLimitError carrying retry_after, without sleeping or retrying."""
    tc, session, fake = make_client(
        [response(429, {"status": 429, "code": "rate_limited", "retry_after": 120}, {"Retry-After": "120"})]
    )
    with pytest.raises(RateLimitError) as caught:
        tc.submit("free")
    assert caught.value.retry_after == 120
    assert fake.sleeps == [] and len(session.calls) == 1


def test_submit_waits_for_the_rate_limit_when_allowed() -> None:
    """With wait_on_rate_limit covering Retry-After, the client sleeps that long and submits again."""
    tc, session, fake = make_client(
        [
            response(429, {"status": 429, "code": "rate_limited", "retry_after": 3}, {"Retry-After": "3"}),
            response(202, job_json()),
        ]
    )
    assert tc.submit("free", wait_on_rate_limit=5).job_id == JOB_ID
    assert fake.sleeps == [3]
    key = session.calls[0]["headers"]["Idempotency-Key"]
    assert session.calls[1]["headers"]["Idempotency-Key"] == key


def test_submit_does_not_wait_longer_than_allowed_for_the_rate_limit() -> None:
    """A Retry-After beyond wait_on_rate_limit raises at once instead of sleeping."""
    tc, _, fake = make_client(
        [response(429, {"status": 429, "code": "rate_limited", "retry_after": 600}, {"Retry-After": "600"})]
    )
    with pytest.raises(RateLimitError):
        tc.submit("free", wait_on_rate_limit=60)
    assert fake.sleeps == []


def test_submit_retries_a_lost_answer_under_the_same_idempotency_key() -> None:
    """A dropped connection and a 502 are retried with the same key; the third try answers."""
    tc, session, _ = make_client(
        [requests.ConnectionError("reset"), response(502, {"status": 502}), response(202, job_json())]
    )
    assert tc.submit("premium").job_id == JOB_ID
    keys = {c["headers"]["Idempotency-Key"] for c in session.calls}
    assert len(session.calls) == 3 and len(keys) == 1


def test_submit_gives_up_after_its_retries() -> None:
    """After submit_retries retries the transport error reaches the caller."""
    tc, session, _ = make_client([requests.ConnectionError("refused")] * 3, submit_retries=2)
    with pytest.raises(TransportError):
        tc.submit()
    assert len(session.calls) == 3


def test_each_submission_gets_its_own_key_but_a_video_keeps_one() -> None:
    """Plain submissions get fresh keys; the same user, video and language derive the same key."""
    tc, session, _ = make_client([response(202, job_json()) for _ in range(4)], user_id="alice")
    tc.submit()
    tc.submit()
    tc.submit(video_url="https://v.example/1.mp4", target_language="de")
    tc.submit(video_url="https://v.example/1.mp4", target_language="de")
    keys = [c["headers"]["Idempotency-Key"] for c in session.calls]
    assert keys[0] != keys[1]
    assert keys[2] == keys[3]
    assert session.calls[0]["headers"]["X-User-Id"] == "alice"


def test_translate_raises_job_failed_for_a_permanent_failure() -> None:
    """translate() turns a permanently failed job into JobFailedError carrying the job."""
    failed = job_json("permanently_failed", error={"code": "timeout", "message": "timed out"})
    tc, _, _ = make_client([response(202, job_json(eta_seconds=1)), response(200, failed)])
    with pytest.raises(JobFailedError) as caught:
        tc.translate()
    assert caught.value.job.status == "permanently_failed"
    assert "timed out" in str(caught.value)


def test_api_errors_map_to_classes_with_problem_fields() -> None:
    """A 5xx becomes ServerError carrying the problem+json members."""
    body = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "full",
            "code": "capacity_exceeded", "retry_after": 7}
    tc, _, _ = make_client([response(503, body, {"Retry-After": "7"})], submit_retries=0)
    with pytest.raises(ServerError) as caught:
        tc.submit()
    assert (caught.value.status, caught.value.code, caught.value.detail, caught.value.retry_after) == (
        503, "capacity_exceeded", "full", 7)


def test_an_answer_that_is_not_json_is_a_protocol_error() -> None:
    """A 200 with an HTML body raises ProtocolError naming the URL, and it is not a (retryable) TransportError."""
    html = requests.Response()
    html.status_code = 200
    html._content = b"<html>not the API</html>"
    html.url = "http://127.0.0.1:4777/status/x"
    tc, _, _ = make_client([html])
    with pytest.raises(ProtocolError) as caught:
        tc.get_status(JOB_ID)
    assert not isinstance(caught.value, TransportError)
    assert "http://127.0.0.1:4777/status/x" in str(caught.value) and "<html>not the API" in str(caught.value)


def test_a_wait_stops_at_a_non_json_answer() -> None:
    """While waiting, an answer that is not this API's is raised at once as ProtocolError, never retried."""
    garbled = requests.Response()
    garbled.status_code = 200
    garbled._content = b"<html>hello</html>"
    tc, session, fake = make_client([garbled, response(200, job_json("completed"))])
    with pytest.raises(ProtocolError):
        tc.wait_for_completion(JOB_ID, timeout=None)
    assert len(session.calls) == 1 and fake.sleeps == []


def test_a_slow_answer_does_not_delay_the_next_check() -> None:
    """eta_seconds counts from when the request was sent: a 0.5 s answer shortens the next sleep by 0.5 s."""
    fake_holder: dict[str, FakeTime] = {}

    def slow(call: dict[str, Any]) -> requests.Response:
        fake_holder["fake"].now += 0.5  # the server took half a second to answer
        return response(200, job_json(eta_seconds=2.0))

    tc, _, fake = make_client([slow, response(200, job_json("completed"))])
    fake_holder["fake"] = fake
    tc.wait_for_completion(JOB_ID)
    assert 1.5 <= fake.sleeps[0] <= 1.5 + Pacing().slack + Pacing().jitter_cap
