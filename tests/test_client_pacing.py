"""Unit tests of the client's pacing and retries: a scripted session, a fake clock, recorded sleeps."""

from __future__ import annotations

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
    TransportError,
    WaitTimeoutError,
    backoff_delay,
    hint_delay,
)
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
