"""The testing controls over HTTP, in process on a manual clock: the clock, and the hour of the rate limit."""

from __future__ import annotations

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
