"""Fuzzing the HTTP layer: random methods, paths, query strings, headers and bodies never get a 5xx."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import create_app
from tests.conftest import ADMIN_TOKEN, FAST, FakeClock

FIELDS = ["role", "video_url", "target_language", "reason", "count", "statuses", "older_than", "WORKERS",
          "ERROR_RATE", "PROCESSING_MODE", "MAX_WAIT", "ADMIN_TOKEN", "RATE_LIMIT", "simulate", "seconds"]
PATHS = ["/translate", "/status/{id}", "/status", "/jobs", "/queue", "/cancel/{id}", "/process_jobs", "/process",
         "/cleanup", "/config", "/healthz", "/{text}", "/status/{id}/{text}", "/admin/clock", "/admin/clock/advance",
         "/admin/reset", "/admin/requests", "/admin/requests/count"]
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def requests_(draw: st.DrawFn) -> dict[str, Any]:
    """Draw one request: method, path, query, headers and body, mostly plausible, sometimes absurd."""
    job_id = draw(st.sampled_from(["00000000-0000-4000-8000-000000000000", "{known}", "x" * 100]) | printable)
    path = draw(st.sampled_from(PATHS)).replace("{id}", job_id.replace("/", "") or "x")
    path = path.replace("{text}", draw(printable) or "y")
    path = path.replace("?", "").replace("#", "")  # a query belongs in `query`
    query = draw(st.dictionaries(st.sampled_from(["wait", "since", "user_id", "x", "path", "status", "limit"]),
                                 st.sampled_from(["0", "-1", "1e999", "nan", "abc", "0.001", ""]) | printable,
                                 max_size=3))
    headers = draw(st.dictionaries(
        st.sampled_from(["X-User-Id", "Idempotency-Key", "Prefer", "Authorization", "Content-Type", "Accept",
                         "X-Simulate"]),
        st.sampled_from([f"Bearer {ADMIN_TOKEN}", "Bearer", "wait=0", "wait=abc", "application/json", ""])
        | printable,
        max_size=4,
    ))
    body_kind = draw(st.sampled_from(["none", "bytes", "json", "object"]))
    if body_kind == "bytes":
        body: bytes | None = draw(st.binary(max_size=200))
    elif body_kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif body_kind == "object":
        body = json.dumps(draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4))).encode()
    else:
        body = None
    method = draw(st.sampled_from(["GET", "POST"] * 4 + ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    return {"method": method, "path": path, "query": query, "headers": headers, "body": body}


def test_random_requests_never_get_a_server_error() -> None:
    """Across 600 seeded random requests every answer is below 500, and every error is problem+json."""
    clock = FakeClock()
    # MAX_WAIT 0: a fuzzed ?wait= must not hold a request on the real clock while the fake one stands still.
    app = create_app({**FAST, "MAX_WAIT": 0, "RATE_LIMIT": 1000}, clock=clock)
    client = app.test_client()
    known = client.post("/translate").get_json()["job_id"]
    statuses: dict[int, int] = {}

    @settings(max_examples=600, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(requests_())
    def check(req: dict[str, Any]) -> None:
        clock.advance(0.5)
        response = client.open(req["path"].replace("{known}", known), method=req["method"],
                               query_string=req["query"], headers=req["headers"], data=req["body"])
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.get_data(as_text=True)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        if response.status_code >= 400 and req["method"] != "HEAD":
            assert response.mimetype == "application/problem+json"
            problem = response.get_json()
            assert problem["status"] == response.status_code and problem["code"] and problem["detail"]

    check()
    assert sum(statuses.values()) >= 600
    assert len(statuses) >= 5  # the fuzz reached many kinds of answers, not one error over and over
    assert app.extensions["simulator"].engine.check_invariants() == []
