"""Unit tests of the client against dead, slow and foreign servers: scripted sessions, a fake clock, recorded sleeps."""

from __future__ import annotations

import random
from typing import Any

import pytest
import requests

from client import (
    Pacing,
    ProtocolError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    TranslationClient,
    TransportError,
    WaitTimeoutError,
    floor_delay,
    retry_delay,
)
from simulator.client.aio import AsyncTranslationClient
from tests.client_fakes import JOB_ID, FakeTime, job_json, make_client, response

PACING = Pacing()


def raw(status: int, body: bytes, content_type: str | None, **headers: str) -> requests.Response:
    """Build a response with exactly this body and content type."""
    r = requests.Response()
    r.status_code = status
    r._content = body
    r.url = "http://127.0.0.1:4777/status/x"
    if content_type:
        r.headers["Content-Type"] = content_type
    r.headers.update(headers)
    r.reason = "reason"
    return r


# ------------------------------------------------------------------------------ floors and pauses


@pytest.mark.parametrize("failures", [0, 1, 2, 3, 6, 100])
def test_the_floor_grows_with_failures_up_to_its_cap(failures: int) -> None:
    """The floor is min_interval doubled per consecutive failure, capped, and jittered upwards only."""
    rng = random.Random(failures)
    base = min(PACING.floor_cap, PACING.min_interval * PACING.backoff_factor ** min(failures, 64))
    for _ in range(100):
        assert base <= floor_delay(failures, rng) <= base * (1 + PACING.floor_jitter)


def test_a_retry_after_is_honoured_exactly_unless_the_floor_is_longer() -> None:
    """retry_delay is the server's Retry-After when it exceeds the floor, and the floor when Retry-After is 0."""
    rng = random.Random(0)
    assert retry_delay(1, 2.0, rng) == 2.0
    assert retry_delay(1, 0.0, rng) >= PACING.min_interval * PACING.backoff_factor
    assert retry_delay(6, 0.0, rng) >= PACING.floor_cap


def test_a_refused_connection_is_retried_with_backoff_while_long_polling_is_unknown() -> None:
    """The spin of issue 12: refused connections with long-polling still unknown are paced, a few in 5 s."""
    tc, session, fake = make_client([requests.ConnectionError("refused")] * 100, long_poll=True)
    assert tc.server_long_polls is None
    with pytest.raises(ServerUnreachableError):
        tc.wait_for_completion(JOB_ID, timeout=5.0)
    assert len(session.calls) <= 8
    assert sum(fake.sleeps) == pytest.approx(5.0)
    assert all(s >= PACING.min_interval for s in fake.sleeps)
    assert fake.sleeps[:4] == sorted(fake.sleeps[:4])


def test_a_503_retry_after_holds_back_the_next_long_poll() -> None:
    """After a 503 with Retry-After: 1, the next request (a long-poll) goes out 1 s later, not at once."""
    unavailable = response(503, {"status": 503, "code": "injected_fault", "retry_after": 1}, {"Retry-After": "1"})
    done = response(200, job_json("completed"), {"Preference-Applied": "wait=5"})
    tc, session, fake = make_client([unavailable, done], long_poll=True)
    assert tc.wait_for_completion(JOB_ID, timeout=10).status == "completed"
    assert fake.sleeps == [1.0]
    assert "wait" in session.calls[1]["params"]


def test_a_dead_server_without_a_deadline_is_given_up_on() -> None:
    """With timeout=None, refused connections end in ServerUnreachableError after about 30 s, not never."""
    tc, session, fake = make_client([requests.ConnectionError("refused")] * 100, long_poll=True)
    with pytest.raises(ServerUnreachableError) as caught:
        tc.wait_for_completion(JOB_ID)
    assert PACING.unreachable_limit <= sum(fake.sleeps) <= PACING.unreachable_limit + PACING.backoff_cap
    assert len(session.calls) <= 15
    assert isinstance(caught.value.__cause__, TransportError)


def test_a_server_answering_5xx_is_not_unreachable() -> None:
    """At the deadline, a wait whose last request got a 500 raises a plain WaitTimeoutError carrying that error."""
    failing = response(500, {"status": 500, "code": "internal_error", "title": "Internal Server Error"})
    tc, _, _ = make_client([failing] * 100)
    with pytest.raises(WaitTimeoutError) as caught:
        tc.wait_for_completion(JOB_ID, timeout=3)
    assert not isinstance(caught.value, TransportError)
    assert isinstance(caught.value.last_error, ServerError)


# ------------------------------------------------------------------------------ one deadline


def test_each_request_gets_what_remains_of_the_deadline_as_its_budget() -> None:
    """With a 10 s request timeout and a 3 s wait, the first request may take 3 s, the next what is left."""
    tc, session, _ = make_client([response(200, job_json(eta_seconds=1.0)), response(200, job_json("completed"))])
    tc.wait_for_completion(JOB_ID, timeout=3)
    budgets = [call["timeout"][1] for call in session.calls]
    assert budgets[0] == pytest.approx(3.0)
    assert budgets[1] == pytest.approx(3.0 - 1.0, abs=0.1)


def test_translate_counts_the_submission_in_its_timeout() -> None:
    """translate(timeout=4) whose submission takes 3 s has 1 s left to wait, and raises at 4 s, not 7 s."""
    fake_holder: dict[str, FakeTime] = {}

    def slow_submission(call: dict[str, Any]) -> requests.Response:
        fake_holder["fake"].now += 3.0
        return response(202, job_json(eta_seconds=5.0))

    tc, session, fake = make_client([slow_submission, response(200, job_json(eta_seconds=2.0))])
    fake_holder["fake"] = fake
    with pytest.raises(WaitTimeoutError):
        tc.translate(timeout=4)
    assert fake.now - 1000.0 == pytest.approx(4.0)
    assert session.calls[0]["timeout"][1] == pytest.approx(4.0)


def test_a_submission_without_an_answer_before_the_deadline_is_a_server_unreachable_error() -> None:
    """A submission whose tries use up translate's timeout raises ServerUnreachableError at the deadline."""
    fake_holder: dict[str, FakeTime] = {}

    def silent(call: dict[str, Any]) -> requests.Response:
        fake_holder["fake"].now += call["timeout"][1]
        raise requests.ReadTimeout("silent")

    tc, session, fake = make_client([silent] * 5)
    fake_holder["fake"] = fake
    with pytest.raises(ServerUnreachableError) as caught:
        tc.translate(timeout=4)
    assert caught.value.job is None
    assert fake.now - 1000.0 <= 4.0
    assert len(session.calls) == 1


def test_a_rate_limited_submission_is_not_waited_for_past_the_deadline() -> None:
    """wait_on_rate_limit cannot stretch a call past its timeout: the 429 is raised at once."""
    limited = response(429, {"status": 429, "code": "rate_limited", "retry_after": 30}, {"Retry-After": "30"})
    tc, _, fake = make_client([limited])
    with pytest.raises(RateLimitError):
        tc.submit("free", wait_on_rate_limit=60, timeout=10)
    assert fake.sleeps == []


# ------------------------------------------------------------------------------ foreign servers


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (raw(200, b"<html>hi</html>", "text/html"), "200 text/html"),
        (raw(200, b'{"job_id": "x"}', "text/plain"), "not JSON"),
        (raw(200, b"{not json", "application/json"), "does not parse"),
        (raw(200, b"[1, 2]", "application/json"), "a JSON list"),
        (raw(200, b'{"hello": "world"}', "application/json"), "not a job"),
        (raw(404, b"<h1>Not Found</h1>", "text/html"), "404 text/html"),
        (raw(401, b'{"error": "nope"}', "application/json"), "problem+json shape"),
        (raw(302, b"", None, Location="https://login.example/"), "redirect to https://login.example/"),
        (raw(200, b"", None), "empty"),
    ],
    ids=["html", "json-as-text", "broken-json", "json-list", "no-job-fields", "html-404", "error-without-problem",
         "redirect", "empty"],
)
def test_an_answer_that_is_not_this_api_is_fatal_at_once(answer: requests.Response, says: str) -> None:
    """Any answer that is not this API's raises ProtocolError on the first request of a wait, with no retry."""
    tc, session, fake = make_client([answer, response(200, job_json("completed"))], long_poll=True)
    with pytest.raises(ProtocolError) as caught:
        tc.wait_for_completion(JOB_ID)
    assert says in str(caught.value)
    assert "is not the translation API" in str(caught.value)
    assert len(session.calls) == 1 and fake.sleeps == []


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxy_error_page_is_transient(status: int) -> None:
    """A gateway status with an HTML page (a proxy whose server is down) is retried like any 5xx."""
    page = raw(status, b"<html>Bad Gateway</html>", "text/html")
    tc, session, _ = make_client([page, response(200, job_json("completed"))])
    assert tc.wait_for_completion(JOB_ID, timeout=10).status == "completed"
    assert len(session.calls) == 2


def test_a_submission_to_a_foreign_server_is_not_retried() -> None:
    """submit() stops at the first foreign answer: a retry under the same key would not change what answers."""
    tc, session, _ = make_client([raw(200, b"<html>hi</html>", "text/html")] * 4)
    with pytest.raises(ProtocolError):
        tc.submit()
    assert len(session.calls) == 1


@pytest.mark.parametrize("url", ["localhost:4777", "127.0.0.1", "ftp://127.0.0.1:4777", "http://"])
def test_a_url_that_cannot_be_the_server_is_refused_at_once(url: str) -> None:
    """A base URL without http(s):// and a host is a ValueError when the client is made, not a retried failure."""
    with pytest.raises(ValueError, match="must look like http://"):
        TranslationClient(url)
    with pytest.raises(ValueError, match="must look like http://"):
        AsyncTranslationClient(url)
