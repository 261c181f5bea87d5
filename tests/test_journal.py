"""The request journal: what it records (and never records), its filters, its bound, and its endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from jobs import iso
from server import create_app
from simulator.clock import ManualClock
from simulator.http.journal import Filter, RequestJournal, recorded_query
from simulator.paths import check_pattern, openapi_template, path_matches
from tests.conftest import FAST, START


@pytest.fixture
def app():
    return create_app(FAST, clock=ManualClock(START))


@pytest.fixture
def client(app):
    return app.test_client()


def journal(client: Any, auth: Any, query: str = "") -> dict[str, Any]:
    """GET /admin/requests with `query`; it must answer 200."""
    response = client.get(f"/admin/requests{query}", headers=auth.ok)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def count(client: Any, auth: Any, query: str = "") -> int:
    """GET /admin/requests/count with `query` and return the count."""
    response = client.get(f"/admin/requests/count{query}", headers=auth.ok)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["count"]


# ------------------------------------------------------------------------------------------------ pieces


@pytest.mark.parametrize(
    ("pattern", "path", "template", "matches"),
    [
        ("/status/abc", "/status/abc", "/status/{job_id}", True),
        ("/status/{job_id}", "/status/abc", "/status/{job_id}", True),
        ("/status/*", "/status/abc", "/status/{job_id}", True),
        ("/status/*", "/status", "/status", False),
        ("/status*", "/status", "/status", True),
        ("/*", "/anything", None, True),
        ("/status/abc", "/status/abcd", "/status/{job_id}", False),
        ("/jobs", "/queue", "/queue", False),
    ],
)
def test_a_path_pattern_matches_the_path_or_the_route_template(pattern, path, template, matches) -> None:
    """A pattern is an exact path or template, or, ending in *, a prefix of either."""
    assert path_matches(pattern, path, template) is matches


@pytest.mark.parametrize("pattern", ["status", "", "/a*b", "/a b", "/" + "x" * 2048])
def test_a_bad_path_pattern_is_refused(pattern: str) -> None:
    """A pattern must start with / and may hold * only at its end."""
    with pytest.raises(ValueError, match="path pattern"):
        check_pattern(pattern)


def test_route_rules_are_written_as_openapi_paths() -> None:
    """Flask's <job_id> and <path:asset> become {job_id} and {asset}."""
    assert openapi_template("/status/<job_id>") == "/status/{job_id}"
    assert openapi_template("/docs/<path:asset>") == "/docs/{asset}"
    assert openapi_template("/jobs") == "/jobs"


def test_secret_query_values_are_redacted_whatever_their_case() -> None:
    """token, access_token, api_key and signature keep their names but never their values; the rest is as sent."""
    query = recorded_query("wait=5&Token=s3cret&api_key=k&access_token=a&signature=ab&q=a%20b")
    assert query == "wait=5&Token=REDACTED&api_key=REDACTED&access_token=REDACTED&signature=REDACTED&q=a%20b"


def test_the_journal_keeps_the_last_entries_and_counts_them_all() -> None:
    """With room for 3, the 4th entry drops the 1st; `recorded` counts every one; a size change applies at once."""
    kept = RequestJournal()

    def add(n: int, size: int = 3) -> None:
        kept.record(size, at=START + n, method="GET", path=f"/p{n}", route=None, query="", status=200,
                    user_id="u", duration_ms=1.0)

    for n in range(4):
        add(n)
    entries, total = kept.select(Filter())
    assert [e.path for e in entries] == ["/p1", "/p2", "/p3"] and total == 3
    assert kept.recorded == 4 and entries[-1].seq == 4
    add(4, size=1)
    assert [e.path for e in kept.select(Filter())[0]] == ["/p4"]
    add(5, size=0)
    assert kept.select(Filter()) == ([], 0) and kept.recorded == 6


def test_a_filter_needs_every_condition_given() -> None:
    """path, method, status, user_id and since must all hold; `limit` keeps the last entries selected."""
    kept = RequestJournal()
    for n, (method, status, user) in enumerate([("GET", 200, "a"), ("GET", 503, "a"), ("POST", 202, "b"),
                                                  ("GET", 200, "b")]):
        kept.record(10, at=START + n, method=method, path=f"/status/{n}", route="/status/{job_id}", query="",
                    status=status, user_id=user, duration_ms=0.5)
    seqs = lambda where, limit=None: [e.seq for e in kept.select(where, limit)[0]]  # noqa: E731
    assert seqs(Filter(method="GET", status=200)) == [1, 4]
    assert seqs(Filter(user_id="b", since=datetime.fromtimestamp(START + 3, UTC))) == [4]
    assert seqs(Filter(path="/status/{job_id}"), limit=2) == [3, 4]
    assert seqs(Filter(path="/status/2")) == [3]


# ------------------------------------------------------------------------------------------------ over HTTP


def test_each_request_is_recorded_with_its_route_status_user_and_time(client, auth) -> None:
    """A submission and a status read appear in order, with method, path, template, query, status and user."""
    job = client.post("/translate", headers={"X-User-Id": "alice"}).get_json()
    client.get(f"/status/{job['job_id']}?wait=0", headers={"X-User-Id": "alice"})
    answer = journal(client, auth)
    assert (answer["total"], answer["recorded"]) == (2, 2)
    submit, read = answer["requests"]
    assert submit | {"duration_ms": 0} == {"seq": 1, "at": iso(START), "method": "POST", "path": "/translate",
                                           "route": "/translate", "query": "", "status": 202, "user_id": "alice",
                                           "duration_ms": 0}
    assert (read["route"], read["path"], read["query"]) == ("/status/{job_id}", f"/status/{job['job_id']}", "wait=0")
    assert read["duration_ms"] > 0


def test_errors_unknown_paths_and_wrong_methods_are_recorded_too(client, auth) -> None:
    """A 404 for an unknown path (no route), a 405 and a refused body are recorded with their status."""
    client.get("/nope")
    client.delete("/jobs")
    client.post("/translate", json={"role": "gold"})
    entries = journal(client, auth)["requests"]
    assert [(e["path"], e["route"], e["status"]) for e in entries] == [
        ("/nope", None, 404), ("/jobs", None, 405), ("/translate", "/translate", 422)]


def test_the_controls_themselves_are_not_recorded(client, auth) -> None:
    """Reading the journal, the clock or counting leaves the journal as it was; other admin calls are recorded."""
    client.get("/admin/clock", headers=auth.ok)
    journal(client, auth)
    count(client, auth)
    client.post("/process_jobs", headers=auth.ok)
    assert [e["path"] for e in journal(client, auth)["requests"]] == ["/process_jobs"]


def test_bodies_headers_and_tokens_are_never_recorded(client, auth) -> None:
    """Nothing of the body, the admin token or a secret query value appears in the journal."""
    client.post("/translate?token=s3cret", json={"video_url": "https://private.example/v.mp4"},
                headers={"X-User-Id": "alice", "Authorization": "Bearer leaked"})
    text = client.get("/admin/requests", headers=auth.ok).get_data(as_text=True)
    assert "private.example" not in text and "s3cret" not in text and "leaked" not in text
    assert "test-admin-token" not in text
    assert journal(client, auth)["requests"][0]["query"] == "token=REDACTED"


def test_filters_select_by_path_method_status_user_and_time(client, auth) -> None:
    """Each filter narrows the selection; `since` takes ISO 8601 or epoch seconds in simulated time."""
    first = client.post("/translate", headers={"X-User-Id": "alice"}).get_json()["job_id"]
    client.application.extensions["simulator"].engine.advance_clock(60)
    client.get(f"/status/{first}", headers={"X-User-Id": "bob"})
    client.get("/status/00000000-0000-4000-8000-000000000000", headers={"X-User-Id": "bob"})
    assert count(client, auth, "?path=/status/*") == 2
    assert count(client, auth, f"?path=/status/{first}") == 1
    assert count(client, auth, "?path=/status/{job_id}&status=404") == 1
    assert count(client, auth, "?method=post&user_id=alice") == 1
    assert count(client, auth, f"?since={iso(START + 60)}") == 2
    assert count(client, auth, f"?since={START + 61}") == 0
    assert count(client, auth, "?since=2027-01-15T08:01:00%2B00:00") == 2  # START + 60 s, with an offset
    assert [e["seq"] for e in journal(client, auth, "?limit=1")["requests"]] == [3]


def test_the_journal_keeps_journal_size_entries(client, auth) -> None:
    """JOURNAL_SIZE bounds the journal (changeable at runtime); 0 records nothing, but every request is counted."""
    client.post("/config", json={"JOURNAL_SIZE": 2}, headers=auth.ok)
    for _ in range(4):
        client.get("/healthz")
    answer = journal(client, auth)
    assert (len(answer["requests"]), answer["recorded"]) == (2, 5)
    client.post("/config", json={"JOURNAL_SIZE": 0}, headers=auth.ok)
    client.get("/healthz")
    assert journal(client, auth)["requests"] == []


def test_reset_empties_the_journal(client, auth) -> None:
    """After POST /admin/reset the journal is empty, as on a new server."""
    client.get("/healthz")
    client.post("/admin/reset", headers=auth.ok)
    assert journal(client, auth) == {"requests": [], "total": 0, "recorded": 0}


def test_scripted_and_injected_faults_are_recorded_with_the_status_sent(client, auth) -> None:
    """The journal shows the status the client got, a scripted 503 included."""
    job = client.post("/translate", json={"simulate": {"status_faults": [{"status": 503}]}}).get_json()
    client.get(f"/status/{job['job_id']}")
    client.get(f"/status/{job['job_id']}")
    statuses = [e["status"] for e in journal(client, auth, "?path=/status/*")["requests"]]
    assert statuses == [503, 200]


@pytest.mark.parametrize("path", ["/admin/requests", "/admin/requests/count"])
def test_the_journal_needs_the_admin_token(client, auth, path) -> None:
    """Without the admin token the journal is a 401."""
    assert client.get(path, headers=auth.missing).status_code == 401
