"""Hardening of the HTTP layer (issue 11): text that is not Unicode, repeated headers, replays under the hourly
limit, secrets in the access log, per-route body limits, listings that never fail."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Response

import config
from jobs import JobEngine
from server import create_app
from simulator.http import encoding
from simulator.http.accesslog import redacted_query
from simulator.http.bodies import body_limit, body_limits
from simulator.http.encoding import json_response
from simulator.http.parsing import json_object
from tests.conftest import ADMIN_TOKEN, FAST

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def snapshot(client) -> dict[str, Any]:
    """Return what a refused request must leave unchanged: every job and the counts."""
    return {"jobs": client.get("/jobs").get_json(), "queue": client.get("/queue").get_json()}


# ------------------------------------------------------------------------------- text that is not Unicode


@pytest.mark.parametrize(("body", "field"), [
    ('{"video_url": "a\\ud800b"}', "video_url"),
    ('{"target_language": "\\udfff"}', "target_language"),
    ('{"\\ud800": "x"}', "\\ud800"),
    ('{"role": "free", "vid\\udc00eo": 1}', "vid\\udc00eo"),
])
def test_a_lone_surrogate_in_a_value_or_a_name_is_422_naming_it_and_stores_nothing(client, body, field):
    """A lone surrogate escape in a field's value or name is a 422 naming the field, and no job is stored."""
    before = snapshot(client)
    response = client.post("/translate", data=body, headers={"X-User-Id": "alice"})
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == "validation_error" and field in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == [field]
    assert snapshot(client) == before


def test_a_lone_surrogate_in_an_admin_body_is_422_too(client):
    """POST /config and /cancel bodies are checked the same way (the config key is named, not a 500)."""
    response = client.post("/config", data='{"\\ud800": 1}', headers=ADMIN)
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "\\ud800"
    job = client.post("/translate").get_json()["job_id"]
    response = client.post(f"/cancel/{job}", data='{"reason": "\\udbff!"}', headers=ADMIN)
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "reason"


def test_nested_surrogates_are_found_wherever_they_are(app):
    """The check walks nested arrays and objects and names each place."""
    body = '{"statuses": ["completed", "\\ud800"], "a": {"\\udc01": ["ok", {"b": "\\ud900"}]}}'
    with app.test_request_context("/cleanup", method="POST", data=body):
        with pytest.raises(Exception) as caught:
            json_object()
    fields = [e["field"] for e in caught.value.extra["errors"]]
    assert fields == ["a.\\udc01", "a.\\udc01[1].b", "statuses[1]"]


#: Every kind of odd text the API accepts, for the fields it stores.
ODD_TEXT = [
    "nul \x00 inside", "line\nbreak\r\ttab", "\u2028\u2029 separators", "\ufeffbom", "rtl \u202eoverride",
    "emoji 😀 and 𝄞", "combining e\u0301", "\uffff noncharacter \U0010ffff", '"quotes" \\ back </script>',
    "中文 العربية", "{\"json\": [1]}", " padded ", "x" * 35,
]


def submit_odd_jobs(client) -> list[str]:
    """Submit a job with each odd text in every stored field; cancel one with an odd reason; return their ids."""
    ids = []
    for i, odd in enumerate(ODD_TEXT):
        user = "".join(chr(c) for c in range(33, 127) if chr(c) != ",")[: 20 + i]  # printable ASCII, no comma
        body = {"role": "free" if i % 2 else "premium", "video_url": odd * 3, "target_language": odd[:35]}
        response = client.post("/translate", json=body, headers={"X-User-Id": user, "Idempotency-Key": f"~!{i}'\""})
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["job_id"])
    cancelled = client.post(f"/cancel/{ids[0]}", json={"reason": ODD_TEXT[0] + ODD_TEXT[5]}, headers=ADMIN)
    assert cancelled.status_code == 200
    return ids


def check_every_listing(client, ids: list[str]) -> None:
    """Every endpoint that shows jobs answers 200 with valid JSON holding each of them."""
    listed = client.get("/jobs")
    assert listed.status_code == 200
    grouped = json.loads(listed.get_data())
    assert {j for roles in grouped.values() for by_id in roles.values() for j in by_id} >= set(ids)
    assert client.get("/queue").status_code == 200 and json.loads(client.get("/queue").get_data())
    for job_id in ids:
        assert client.get(f"/status/{job_id}").status_code == 200
    assert client.get("/status").status_code == 200
    assert client.get("/jobs?limit=3").status_code == 200


def test_no_stored_job_can_make_a_listing_fail(auth, clock):
    """Jobs holding every kind of odd text the API accepts are listed by every endpoint (config RATE_LIMIT high)."""
    app = create_app({**FAST, "RATE_LIMIT": 1000}, clock=clock)
    client = app.test_client()
    ids = submit_odd_jobs(client)
    check_every_listing(client, ids)


def test_no_stored_job_can_make_a_streamed_listing_fail_on_sqlite(tmp_path: Path, monkeypatch):
    """The same odd jobs, stored in SQLite and read back by a new server, list whole, streamed too."""
    monkeypatch.setattr(encoding, "STREAM_BATCH", 3)  # stream every listing of more than 3 jobs
    path = tmp_path / "jobs.db"
    app = create_app({**FAST, "RATE_LIMIT": 1000, "STORE": f"sqlite:///{path}"})
    ids = submit_odd_jobs(app.test_client())
    app.extensions["simulator"].engine.store.close()
    reopened = create_app({**FAST, "STORE": f"sqlite:///{path}"})
    client = reopened.test_client()
    assert client.get("/jobs").headers.get("Content-Length") is None  # streamed
    check_every_listing(client, ids)
    reopened.extensions["simulator"].engine.store.close()


def test_a_job_holding_a_surrogate_from_elsewhere_is_listed_with_a_replacement(tmp_path: Path, clock):
    """A surrogate that reached the store another way (an old database) is shown as U+FFFD, never a 500."""
    engine = JobEngine(config.from_mapping(FAST), clock=clock)
    engine.submit("free", "alice", video_url="bad \ud800 url")
    app = create_app(FAST, clock=clock, store=engine.store)
    response = app.test_client().get("/jobs")
    assert response.status_code == 200 and "bad \ufffd url" in response.get_data(as_text=True)


# ------------------------------------------------------------------------------------ repeated headers


@pytest.mark.parametrize(("method", "path", "name"), [
    ("POST", "/translate", "X-User-Id"),
    ("POST", "/translate", "Idempotency-Key"),
    ("GET", "/status", "X-User-Id"),
])
def test_a_repeated_single_header_is_400_not_a_merged_value(client, method, path, name):
    """Two X-User-Id (or Idempotency-Key) headers are a 400 naming the header, and nothing is stored."""
    client.post("/translate", headers={"X-User-Id": "alice"})
    before = snapshot(client)
    response = client.open(path, method=method, headers=[(name, "alice"), (name, "bob")])
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_header"
    assert name in response.get_json()["detail"]
    assert snapshot(client) == before


# ------------------------------------------------------------------------- replays and the hourly limit


def test_concurrent_identical_replays_make_one_job_and_use_one_hit():
    """50 identical requests at once under one Idempotency-Key with RATE_LIMIT=2: 1 job, no 429, 1 hit used."""
    app = create_app({**FAST, "RATE_LIMIT": 2})
    engine = app.extensions["simulator"].engine
    barrier = threading.Barrier(50)

    def submit(_: int) -> tuple[int, str]:
        client = app.test_client()
        barrier.wait()
        response = client.post("/translate", json={"role": "free", "video_url": "https://e.x/v.mp4"},
                               headers={"X-User-Id": "alice", "Idempotency-Key": "order-17"})
        return response.status_code, response.get_json()["job_id"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(submit, range(50)))
    assert {status for status, _ in answers} == {202}
    assert len({job_id for _, job_id in answers}) == 1 and engine.total() == 1
    client = app.test_client()
    assert client.post("/translate", headers={"X-User-Id": "alice"}).status_code == 202  # the second of two
    assert client.post("/translate", headers={"X-User-Id": "alice"}).status_code == 429
    assert len(app.extensions["simulator"].submissions) == 0  # no lock left behind


def test_a_counted_submission_carries_the_rate_limit_headers_and_others_do_not(client):
    """A new free submission has X-RateLimit-*; a premium one and a GET have none (the limiter skips them)."""
    free = client.post("/translate", headers={"X-User-Id": "alice"})
    assert free.headers["X-RateLimit-Limit"] == "5" and free.headers["X-RateLimit-Remaining"] == "4"
    premium = client.post("/translate", json={"role": "premium"}, headers={"X-User-Id": "alice"})
    assert "X-RateLimit-Limit" not in premium.headers
    assert "X-RateLimit-Limit" not in client.get(f"/status/{free.get_json()['job_id']}").headers


# ----------------------------------------------------------------------------------------- access log


@pytest.mark.parametrize(("query", "logged"), [
    (b"wait=5", "wait=5"),
    (b"token=s3cret&wait=5", "token=REDACTED&wait=5"),
    (b"wait=1&access_token=s3cret", "wait=1&access_token=REDACTED"),
    (b"API_KEY=s3cret", "API_KEY=REDACTED"),
    (b"api%5Fkey=s3cret&x=%41", "api%5Fkey=REDACTED&x=%41"),
    (b"tokens=keep&token", "tokens=keep&token=REDACTED"),
])
def test_secrets_in_the_query_string_are_redacted(query, logged):
    """token, access_token and api_key values are replaced, in any case or percent-encoding; the rest is kept."""
    assert redacted_query(query) == logged


def test_the_access_log_never_holds_a_query_token(client, caplog):
    """A request with ?token= logs its line with the value redacted."""
    with caplog.at_level(logging.INFO, logger="server"):
        client.get("/healthz?token=s3cret-value&access_token=other-secret")
    lines = [r.getMessage() for r in caplog.records if "/healthz" in r.getMessage()]
    assert lines and "s3cret" not in lines[0] and "other-secret" not in lines[0]
    assert "token=REDACTED&access_token=REDACTED" in lines[0]


# ---------------------------------------------------------------------------------------- body limits


def upload_app() -> Any:
    """An app with an extra route whose body limit is raised to 1 MiB with @body_limit (read per request)."""
    app = create_app(FAST)
    bp = Blueprint("uploads_test", __name__)

    @bp.post("/uploads-test")
    @body_limit(lambda: 1 << 20)
    def upload() -> Response:
        return json_response({"received": len(json_object().get("data", ""))})

    app.register_blueprint(bp)
    return app


def test_a_route_can_raise_its_own_body_limit():
    """@body_limit(lambda: n) lets one route take bodies up to n bytes; the others keep 64 KiB."""
    client = upload_app().test_client()
    big = json.dumps({"data": "x" * 200_000})
    assert client.post("/uploads-test", data=big).get_json() == {"received": 200_000}
    refused = client.post("/translate", data=big)
    assert refused.status_code == 413 and "65536" in refused.get_json()["detail"]
    too_big = client.post("/uploads-test", data=json.dumps({"data": "x" * (1 << 20)}))
    assert too_big.status_code == 413 and str(1 << 20) in too_big.get_json()["detail"]


def test_body_limits_tells_the_server_each_routes_limit():
    """body_limits(app)(method, path) answers a route's own limit, the app's default elsewhere."""
    limit = body_limits(upload_app())
    assert limit("POST", "/uploads-test") == 1 << 20
    assert limit("POST", "/translate") == 64 * 1024
    assert limit("GET", "/nowhere") == 64 * 1024
