"""The testing controls over HTTP, in process on a manual clock: the clock, the hourly limit, scripted outcomes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from jobs import iso
from server import create_app
from simulator.clock import ManualClock
from tests.conftest import FAST, START


@pytest.fixture
def manual() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def mclient(manual: ManualClock):
    """A test client of an app on a manual clock at START (CLOCK=manual), with the test settings."""
    return create_app({**FAST, "CLOCK": "manual"}, clock=manual).test_client()


def t(seconds: float) -> str | None:
    """Return the ISO timestamp `seconds` after START."""
    return iso(START + seconds)


def advance(client: Any, auth: Any, seconds: float) -> dict[str, Any]:
    """POST /admin/clock/advance and return the answer, which must be 200."""
    response = client.post("/admin/clock/advance", json={"seconds": seconds}, headers=auth.ok)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# ------------------------------------------------------------------------------------------------ the clock


def test_clock_a_manual_server_made_itself_starts_now() -> None:
    """With CLOCK=manual and no clock given, create_app makes a manual clock starting at the real time."""
    app = create_app({**FAST, "CLOCK": "manual"})
    assert app.extensions["simulator"].engine.manual_clock is True
    assert create_app(FAST).extensions["simulator"].engine.manual_clock is False


def test_get_clock_shows_the_simulated_now(mclient, auth) -> None:
    """GET /admin/clock answers the kind of clock, the simulated now and the next event."""
    answer = mclient.get("/admin/clock", headers=auth.ok).get_json()
    assert answer == {"clock": "manual", "now": t(0), "epoch_seconds": START, "next_event_at": None,
                      "next_event_in_seconds": None}


def test_advance_moves_simulated_time_and_finishes_jobs(mclient, auth) -> None:
    """Advancing by a job's duration completes it; the answer says how far the clock moved and what changed."""
    job = mclient.post("/translate").get_json()
    assert mclient.get(f"/status/{job['job_id']}").get_json()["eta_seconds"] == 10.0
    answer = advance(mclient, auth, 10)
    assert answer["now"] == t(10)
    assert (answer["advanced_seconds"], answer["changes"]) == (10.0, 1)
    done = mclient.get(f"/status/{job['job_id']}").get_json()
    assert (done["status"], done["finished_at"]) == ("completed", t(10))


def test_advance_on_the_system_clock_is_409_and_changes_nothing(client, auth) -> None:
    """A server on the system clock refuses to move it, with a problem naming CLOCK=manual."""
    before = client.get("/jobs").get_json()
    response = client.post("/admin/clock/advance", json={"seconds": 5}, headers=auth.ok)
    assert response.status_code == 409
    assert response.get_json()["code"] == "clock_not_manual"
    assert "CLOCK=manual" in response.get_json()["detail"]
    assert client.get("/jobs").get_json() == before


@pytest.mark.parametrize("path", ["/admin/clock", "/admin/clock/advance"])
def test_clock_endpoints_need_the_admin_token(mclient, auth, path) -> None:
    """Reading or moving the clock without the admin token is a 401."""
    method = mclient.get if path == "/admin/clock" else mclient.post
    assert method(path, json={"seconds": 1}, headers=auth.missing).status_code == 401


def test_the_hourly_limit_moves_with_the_manual_clock(mclient, auth) -> None:
    """A user at RATE_LIMIT waits out the hour in simulated time: refused until exactly an hour has passed."""
    user = {"X-User-Id": "alice"}
    for _ in range(FAST["RATE_LIMIT"]):
        assert mclient.post("/translate", headers=user).status_code == 202
    refused = mclient.post("/translate", headers=user)
    assert refused.status_code == 429
    assert refused.get_json()["retry_after"] == 3600 and refused.headers["Retry-After"] == "3600"
    advance(mclient, auth, 3599)
    assert mclient.post("/translate", headers=user).get_json()["retry_after"] == 1
    advance(mclient, auth, 1)
    admitted = mclient.post("/translate", headers=user)
    assert admitted.status_code == 202
    assert admitted.headers["X-RateLimit-Reset"] == str(int(START + 3600 + 3600 + 1))


def test_the_hourly_limit_does_not_move_in_real_time_on_a_manual_clock(mclient) -> None:
    """On a manual clock the limiter reads simulated time: a refused user stays refused until the clock moves."""
    user = {"X-User-Id": "bob"}
    for _ in range(FAST["RATE_LIMIT"]):
        mclient.post("/translate", headers=user)
    assert [mclient.post("/translate", headers=user).get_json()["retry_after"] for _ in range(3)] == [3600] * 3


# ------------------------------------------------------------------------------------------------ scripted outcomes

SCRIPT = {"outcomes": ["fail", "succeed"], "attempt_seconds": [1, 2], "fail_message": "The GPU node was lost."}


def test_a_submission_with_simulate_shows_its_script_and_plays_it(mclient, auth) -> None:
    """`simulate` in the body is kept on the job, normalized, and decides its attempts."""
    response = mclient.post("/translate", json={"role": "premium", "simulate": SCRIPT})
    assert response.status_code == 202
    job = response.get_json()
    assert job["simulate"] == {**SCRIPT, "attempt_seconds": [1.0, 2.0]}
    assert job["eta_seconds"] == 1.0
    advance(mclient, auth, 1)
    retried = mclient.get(f"/status/{job['job_id']}").get_json()
    assert (retried["attempts"], retried["error"]["message"]) == (2, "The GPU node was lost.")
    advance(mclient, auth, 2)
    assert mclient.get(f"/status/{job['job_id']}").get_json()["status"] == "completed"


def test_the_x_simulate_header_scripts_a_job_like_the_body(mclient) -> None:
    """A client that cannot change its body sends the same object as JSON in X-Simulate."""
    job = mclient.post("/translate", headers={"X-Simulate": json.dumps(SCRIPT)}).get_json()
    assert job["simulate"]["outcomes"] == ["fail", "succeed"]


def test_a_job_without_a_script_shows_simulate_null(mclient) -> None:
    """Every job carries `simulate`; it is null when the submission scripted nothing."""
    assert mclient.post("/translate").get_json()["simulate"] is None


def test_scenarios_off_refuses_scripted_submissions_with_403_and_counts_nothing(manual) -> None:
    """With SCENARIOS=off a scripted submission is a 403 scenarios_disabled, stores nothing and is not counted."""
    client = create_app({**FAST, "SCENARIOS": "off", "RATE_LIMIT": 1}, clock=manual).test_client()
    for request in ({"json": {"simulate": SCRIPT}}, {"headers": {"X-Simulate": json.dumps(SCRIPT)}}):
        refused = client.post("/translate", **request)
        assert refused.status_code == 403
        assert refused.get_json()["code"] == "scenarios_disabled"
    assert client.get("/healthz").get_json()["jobs"] == 0
    assert client.post("/translate").status_code == 202  # the hour's one free submission was not used up


def test_scripted_status_faults_answer_the_next_reads_then_the_job(mclient) -> None:
    """The next two reads answer 503 with Retry-After: 1, the third a 429, the fourth the job."""
    faults = [{"status": 503, "retry_after": 1, "times": 2}, {"status": 429}]
    job = mclient.post("/translate", json={"simulate": {"status_faults": faults}}).get_json()
    answers = [mclient.get(f"/status/{job['job_id']}") for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 503, 429, 200]
    assert answers[0].headers["Retry-After"] == "1" and "Retry-After" not in answers[2].headers
    problem = answers[0].get_json()
    assert (problem["code"], problem["job_id"], problem["retry_after"]) == ("scripted_fault", job["job_id"], 1)
    assert answers[0].mimetype == "application/problem+json"


def test_a_read_of_the_newest_job_counts_against_its_faults(mclient) -> None:
    """GET /status answering the scripted job uses up its faults like GET /status/<id>."""
    job = mclient.post("/translate", json={"simulate": {"status_faults": [{"status": 502}]}},
                       headers={"X-User-Id": "carol"}).get_json()
    assert mclient.get("/status", headers={"X-User-Id": "carol"}).status_code == 502
    assert mclient.get(f"/status/{job['job_id']}").status_code == 200


def test_a_scripted_fault_answers_a_long_poll_at_once(mclient) -> None:
    """A long-poll that meets a scripted fault is not held: the fault is the answer."""
    job = mclient.post("/translate", json={"simulate": {"status_faults": [{"status": 504}]}}).get_json()
    began = time.monotonic()
    assert mclient.get(f"/status/{job['job_id']}?wait=5").status_code == 504
    assert time.monotonic() - began < 1
