"""The clients' side of the testing controls, without a server: what each call sends."""

from __future__ import annotations

from datetime import UTC, datetime

from simulator.client import protocol


def test_a_scripted_submission_sends_simulate_in_the_body() -> None:
    """submit(simulate=...) puts the script in the body as given."""
    call = protocol.submit_call("free", user="u", video_url=None, target_language=None, idempotency_key=None,
                                deduplicate=True, simulate={"outcomes": ["fail", "succeed"]})
    assert call.json_body == {"role": "free", "simulate": {"outcomes": ["fail", "succeed"]}}


def test_the_duplicate_guard_tells_scripts_apart() -> None:
    """The same video with another script gets another Idempotency-Key; without a script the key is as before."""
    key = protocol.submit_key("u", "free", "https://v/1.mp4", "de")
    assert key == protocol.submit_key("u", "free", "https://v/1.mp4", "de", None)
    one = protocol.submit_key("u", "free", "https://v/1.mp4", "de", {"outcomes": ["fail"]})
    two = protocol.submit_key("u", "free", "https://v/1.mp4", "de", {"outcomes": ["succeed"]})
    assert len({key, one, two}) == 3


def test_the_control_calls_are_admin_calls_to_their_routes() -> None:
    """get_clock, advance_clock, reset, request_journal and count_requests send the admin token to /admin/…."""
    calls = [protocol.clock_call(), protocol.advance_clock_call(60), protocol.reset_call(True),
             protocol.request_journal_call({}, 5), protocol.count_requests_call({"path": "/status/*"})]
    assert [(c.method, c.path, c.admin) for c in calls] == [
        ("GET", "/admin/clock", True), ("POST", "/admin/clock/advance", True), ("POST", "/admin/reset", True),
        ("GET", "/admin/requests", True), ("GET", "/admin/requests/count", True)]
    assert calls[1].json_body == {"seconds": 60} and calls[2].json_body == {"keep_config": True}
    assert calls[3].params == {"limit": 5}


def test_journal_filters_become_query_parameters() -> None:
    """Unset filters are left out; `since` may be a datetime, epoch seconds or text."""
    assert protocol.journal_params("/status/*", "GET", 503, None, None) == {
        "path": "/status/*", "method": "GET", "status": 503}
    moment = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    assert protocol.journal_params(None, None, None, "alice", moment) == {
        "user_id": "alice", "since": "2027-01-15T08:00:00+00:00"}
    assert protocol.journal_params(None, None, None, None, 1800000000.5)["since"] == "1800000000.5"
