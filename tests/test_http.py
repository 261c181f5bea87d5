"""HTTP tests of every endpoint through Flask's test client on the fake clock (SPEC §5).

The long-poll tests at the end run `python server.py` on a free port with short delays, because a held
request waits in real time.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
import requests

import config
from jobs import JobEngine, system_clock
from simulator.http import encoding
from simulator.store.sqlite import SqliteStore

STATUSES = ("pending", "failed", "completed", "permanently_failed", "cancelled")
JOB_FIELDS = {
    "job_id", "status", "result", "done", "role", "priority", "user_id", "progress", "queue_position",
    "attempts", "max_retries", "eta_seconds", "error", "version", "cancel_reason", "created_at", "updated_at",
    "started_at", "finished_at", "video_url", "target_language",
}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def submit(client, role: str | None = "free", user: str | None = "alice", *, headers=None, **fields: Any):
    """POST /translate as `user` with `role` (None: no body at all) and extra body `fields`."""
    all_headers = {"X-User-Id": user} if user is not None else {}
    all_headers.update(headers or {})
    if role is None and not fields:
        return client.post("/translate", headers=all_headers)
    body = {"role": role, **fields} if role is not None else fields
    return client.post("/translate", json=body, headers=all_headers)


def job_id_of(client, role: str = "free", user: str = "alice", **fields: Any) -> str:
    """Submit a job and return its id."""
    response = submit(client, role, user, **fields)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["job_id"]


def all_jobs(client) -> list[dict[str, Any]]:
    """Return every job of GET /jobs as a flat list."""
    grouped = client.get("/jobs").get_json()
    return [job for roles in grouped.values() for jobs in roles.values() for job in jobs.values()]


def configure(client, auth, **changes: Any) -> dict[str, Any]:
    """Change runtime settings through POST /config and return the new config."""
    response = client.post("/config", json=changes, headers=auth.ok)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def assert_problem(response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem answer with `status` (and `code`) and return its body."""
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert PROBLEM_FIELDS <= body.keys()
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code
    return body


# ------------------------------------------------------------------------------------ POST /translate


def test_submit_answers_202_with_location_retry_after_and_etag(client):
    """A submission answers 202 with the job, Location: /status/<id>, a whole-second Retry-After and the ETag."""
    response = submit(client, "free", "alice")
    assert response.status_code == 202
    assert response.mimetype == "application/json"
    job = response.get_json()
    assert JOB_FIELDS <= job.keys()
    assert uuid.UUID(job["job_id"]).version == 4
    assert response.headers["Location"] == f"/status/{job['job_id']}"
    assert response.headers["ETag"] == f'"{job["version"]}"'
    # The first job starts at once on a free slot and takes TRANSLATION_DELAY = 10 s.
    assert response.headers["Retry-After"] == "10"
    assert job["eta_seconds"] == 10.0
    assert (job["status"], job["result"], job["done"]) == ("pending", "pending", False)
    assert (job["role"], job["priority"], job["user_id"]) == ("free", 0, "alice")
    assert job["created_at"].endswith("Z")


def test_submit_premium_has_priority_one(client):
    """A premium submission is recorded with role premium and priority 1."""
    job = submit(client, "premium", "alice").get_json()
    assert (job["role"], job["priority"]) == ("premium", 1)


def test_submit_without_body_is_free(client):
    """A POST /translate with no body at all submits a free job."""
    response = submit(client, None, "alice")
    assert response.status_code == 202
    assert response.get_json()["role"] == "free"


def test_submit_takes_user_from_x_user_id(client):
    """X-User-Id names the job's user."""
    assert submit(client, "free", "carol").get_json()["user_id"] == "carol"


def test_submit_without_user_id_uses_client_address(client):
    """Without X-User-Id the job belongs to the client's address."""
    response = client.post("/translate", json={}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 202
    assert response.get_json()["user_id"] == "10.1.2.3"


def test_submit_echoes_video_url_and_target_language(client):
    """The submitted video_url and target_language come back on the job and on its status."""
    job = submit(client, "free", "alice", video_url="https://videos.example/v.mp4", target_language="de").get_json()
    assert (job["video_url"], job["target_language"]) == ("https://videos.example/v.mp4", "de")
    status = client.get(f"/status/{job['job_id']}").get_json()
    assert (status["video_url"], status["target_language"]) == ("https://videos.example/v.mp4", "de")


def test_submit_without_video_url_shows_null(client):
    """A job submitted without video_url and target_language shows both as null."""
    job = submit(client, "free", "alice").get_json()
    assert job["video_url"] is None and job["target_language"] is None


def test_idempotency_key_replay_answers_the_same_job_and_creates_nothing(client):
    """The same Idempotency-Key and body answer the original job with Idempotent-Replayed: true."""
    key = {"Idempotency-Key": "order-17"}
    first = submit(client, "free", "alice", headers=key, video_url="https://v.example/1")
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    again = submit(client, "free", "alice", headers=key, video_url="https://v.example/1")
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["job_id"] == first.get_json()["job_id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(all_jobs(client)) == 1


def test_idempotency_key_with_a_different_body_is_422(client):
    """Reusing an Idempotency-Key with a different body is 422 naming the original job, and creates nothing."""
    key = {"Idempotency-Key": "order-18"}
    original = submit(client, "free", "alice", headers=key).get_json()["job_id"]
    response = submit(client, "premium", "alice", headers=key)
    body = assert_problem(response, 422, "idempotency_key_reused")
    assert body["job_id"] == original
    assert [job["job_id"] for job in all_jobs(client)] == [original]


def test_idempotency_keys_belong_to_their_user(client):
    """Another user's identical Idempotency-Key makes a new job."""
    key = {"Idempotency-Key": "shared-key"}
    first = submit(client, "free", "alice", headers=key).get_json()["job_id"]
    response = submit(client, "free", "bob", headers=key)
    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response.headers
    assert response.get_json()["job_id"] != first


# ------------------------------------------------------------------------------------ GET /status/<id>


def test_status_of_a_running_job_has_retry_after_and_eta(client, clock):
    """An unfinished job answers Retry-After and eta_seconds that count down with the clock."""
    job_id = job_id_of(client)
    clock.advance(4)
    response = client.get(f"/status/{job_id}")
    job = response.get_json()
    assert response.status_code == 200
    assert job["progress"] == 40
    assert job["eta_seconds"] == 6.0
    assert response.headers["Retry-After"] == "6"


def test_status_of_a_queued_job_counts_the_wait_for_a_slot(client):
    """A job queued behind two running ones has queue position 1 and an ETA of their rest plus its own run."""
    job_id_of(client)
    job_id_of(client)
    third = job_id_of(client)
    response = client.get(f"/status/{third}")
    job = response.get_json()
    assert (job["stage"], job["queue_position"], job["progress"]) == ("queued", 1, 0)
    assert job["eta_seconds"] == 20.0
    assert response.headers["Retry-After"] == "20"


def test_status_of_a_finished_job_has_no_retry_after_nor_eta(client, clock):
    """A completed job answers without Retry-After and with eta_seconds null."""
    job_id = job_id_of(client)
    clock.advance(10)
    response = client.get(f"/status/{job_id}")
    job = response.get_json()
    assert (job["status"], job["result"], job["done"], job["progress"]) == ("completed", "completed", True, 100)
    assert job["eta_seconds"] is None
    assert "Retry-After" not in response.headers
    assert job["finished_at"].endswith("Z")


def test_status_etag_is_the_version_and_moves_with_each_transition(client, clock, auth):
    """The ETag is the job's version, which grows at the attempt start and at completion."""
    configure(client, auth, PROCESSING_MODE="manual")
    job_id = job_id_of(client)
    versions = []
    for step in (lambda: None, lambda: client.post("/process_jobs", headers=auth.ok), lambda: clock.advance(10)):
        step()
        response = client.get(f"/status/{job_id}")
        assert response.headers["ETag"] == f'"{response.get_json()["version"]}"'
        versions.append(response.get_json()["version"])
    assert versions[0] < versions[1] < versions[2]


def test_status_without_wait_has_no_preference_applied(client):
    """A plain status request is answered at once without Preference-Applied."""
    job_id = job_id_of(client)
    assert "Preference-Applied" not in client.get(f"/status/{job_id}").headers


def test_status_of_an_unknown_job_is_404(client):
    """An unknown job id answers 404 job_not_found."""
    assert_problem(client.get(f"/status/{uuid.uuid4()}"), 404, "job_not_found")


# ------------------------------------------------------------------------------------ GET /status


def test_newest_status_of_a_user_and_of_anyone(client):
    """GET /status answers the newest job of X-User-Id, or the newest of anyone without it."""
    job_id_of(client, user="alice")
    alices_newest = job_id_of(client, user="alice")
    bobs = job_id_of(client, user="bob")
    alice = client.get("/status", headers={"X-User-Id": "alice"})
    assert alice.status_code == 200
    assert alice.get_json()["job_id"] == alices_newest
    assert alice.headers["ETag"] == f'"{alice.get_json()["version"]}"'
    assert "Retry-After" in alice.headers
    assert client.get("/status", headers={"X-User-Id": "bob"}).get_json()["job_id"] == bobs
    assert client.get("/status").get_json()["job_id"] == bobs


def test_newest_status_is_404_when_there_is_no_job(client):
    """GET /status is 404 when nobody, or not this user, has submitted a job."""
    assert_problem(client.get("/status"), 404, "job_not_found")
    job_id_of(client, user="alice")
    assert_problem(client.get("/status", headers={"X-User-Id": "bob"}), 404, "job_not_found")


# ------------------------------------------------------------------------------------ GET /jobs


def test_jobs_has_all_five_statuses_and_both_roles_when_empty(client):
    """GET /jobs on an empty server lists every status with both roles, all empty."""
    response = client.get("/jobs")
    assert response.status_code == 200
    assert response.get_json() == {status: {"free": {}, "premium": {}} for status in STATUSES}


def test_jobs_groups_each_job_by_status_and_role(client, clock, auth):
    """Each job appears once, under its status and role, keyed by its id."""
    done = job_id_of(client, "premium")
    clock.advance(5)  # the premium job takes 10 × 0.5 s
    cancelled = job_id_of(client, "free")
    client.post(f"/cancel/{cancelled}", headers=auth.ok)
    waiting = job_id_of(client, "free")
    grouped = client.get("/jobs").get_json()
    assert set(grouped) == set(STATUSES)
    assert list(grouped["completed"]["premium"]) == [done]
    assert list(grouped["cancelled"]["free"]) == [cancelled]
    assert list(grouped["pending"]["free"]) == [waiting]
    assert grouped["pending"]["free"][waiting]["job_id"] == waiting
    assert len(all_jobs(client)) == 3


def test_jobs_user_id_filters_to_one_users_history(client):
    """GET /jobs?user_id= shows only that user's jobs, still with every status and role present."""
    mine = {job_id_of(client, user="alice"), job_id_of(client, "premium", user="alice")}
    job_id_of(client, user="bob")
    grouped = client.get("/jobs?user_id=alice").get_json()
    assert set(grouped) == set(STATUSES)
    listed = [job for roles in grouped.values() for jobs in roles.values() for job in jobs.values()]
    assert {job["job_id"] for job in listed} == mine
    nobody = client.get("/jobs?user_id=nobody").get_json()
    assert all(not jobs for roles in nobody.values() for jobs in roles.values())


# ------------------------------------------------------------------------------------ GET /queue


def test_queue_lists_premium_first_then_first_in_first_out(client, auth):
    """GET /queue lists queued jobs in start order: premium first, each priority in submission order."""
    configure(client, auth, PROCESSING_MODE="manual")
    free1, premium1, free2, premium2 = (job_id_of(client, role) for role in ("free", "premium", "free", "premium"))
    queue = client.get("/queue").get_json()
    assert [job["job_id"] for job in queue["queued"]] == [premium1, premium2, free1, free2]
    assert [job["queue_position"] for job in queue["queued"]] == [1, 2, 3, 4]
    assert (queue["running"], queue["workers"], queue["mode"]) == ([], 2, "manual")


def test_queue_shows_running_jobs_apart_from_queued_ones(client):
    """In auto mode the first WORKERS jobs are running and only the rest are queued."""
    ids = [job_id_of(client) for _ in range(3)]
    queue = client.get("/queue").get_json()
    assert [job["job_id"] for job in queue["running"]] == ids[:2]
    assert [job["job_id"] for job in queue["queued"]] == ids[2:]
    assert queue["mode"] == "auto"


# ------------------------------------------------------------------------------------ POST /cancel/<id>


def test_cancel_answers_the_message_and_records_the_reason(client, auth):
    """Cancelling answers 200 "Job <id> cancelled successfully" and the job keeps the reason."""
    job_id = job_id_of(client)
    response = client.post(f"/cancel/{job_id}", json={"reason": "customer asked"}, headers=auth.ok)
    assert response.status_code == 200
    body = response.get_json()
    assert body["message"] == f"Job {job_id} cancelled successfully"
    assert (body["job"]["status"], body["job"]["result"], body["job"]["done"]) == ("cancelled", "error", True)
    status = client.get(f"/status/{job_id}").get_json()
    assert (status["status"], status["cancel_reason"]) == ("cancelled", "customer asked")


def test_cancel_without_body_records_no_reason(client, auth):
    """A cancel without a body succeeds with cancel_reason null."""
    job_id = job_id_of(client)
    response = client.post(f"/cancel/{job_id}", headers=auth.ok)
    assert response.status_code == 200
    assert response.get_json()["job"]["cancel_reason"] is None


def test_cancel_again_is_200_and_keeps_the_first_reason(client, auth):
    """Cancelling a cancelled job again answers 200 and changes nothing."""
    job_id = job_id_of(client)
    client.post(f"/cancel/{job_id}", json={"reason": "first"}, headers=auth.ok)
    version = client.get(f"/status/{job_id}").get_json()["version"]
    again = client.post(f"/cancel/{job_id}", json={"reason": "second"}, headers=auth.ok)
    assert again.status_code == 200
    job = again.get_json()["job"]
    assert (job["status"], job["cancel_reason"], job["version"]) == ("cancelled", "first", version)


def test_cancel_a_completed_job_is_409(client, clock, auth):
    """Cancelling a completed job is 409 and the job stays completed."""
    job_id = job_id_of(client)
    clock.advance(10)
    body = assert_problem(client.post(f"/cancel/{job_id}", headers=auth.ok), 409, "invalid_transition")
    assert body["job_id"] == job_id
    assert client.get(f"/status/{job_id}").get_json()["status"] == "completed"


def test_cancel_a_running_job_frees_its_slot_at_once(client, clock, auth):
    """Cancelling a running job starts the next queued job at that instant."""
    first, _, third = (job_id_of(client) for _ in range(3))
    clock.advance(3)
    client.post(f"/cancel/{first}", headers=auth.ok)
    job = client.get(f"/status/{third}").get_json()
    assert (job["stage"], job["attempts"]) == ("translating", 1)
    clock.advance(10)
    assert client.get(f"/status/{third}").get_json()["status"] == "completed"


def test_cancel_an_unknown_job_is_404(client, auth):
    """Cancelling an unknown id is 404 job_not_found."""
    assert_problem(client.post(f"/cancel/{uuid.uuid4()}", headers=auth.ok), 404, "job_not_found")


# ------------------------------------------------------------------------------------ POST /process_jobs


def test_manual_mode_starts_nothing_until_process_jobs(client, clock, auth):
    """With PROCESSING_MODE=manual a submitted job stays queued however long the clock runs."""
    configure(client, auth, PROCESSING_MODE="manual")
    job_id = job_id_of(client)
    clock.advance(100)
    job = client.get(f"/status/{job_id}").get_json()
    assert (job["status"], job["stage"], job["attempts"], job["eta_seconds"]) == ("pending", "queued", 0, None)


def test_process_jobs_starts_the_premium_job_first(client, auth):
    """POST /process_jobs without a count starts one job, the premium one, and says how many remain queued."""
    configure(client, auth, PROCESSING_MODE="manual")
    job_id_of(client, "free")
    premium = job_id_of(client, "premium")
    job_id_of(client, "free")
    response = client.post("/process_jobs", headers=auth.ok)
    assert response.status_code == 200
    body = response.get_json()
    assert [job["job_id"] for job in body["started"]] == [premium]
    assert body["started"][0]["stage"] == "translating"
    assert (body["count"], body["queued"]) == (1, 2)


def test_process_starts_count_jobs_ignoring_workers(client, auth):
    """POST /process with a count starts that many jobs even beyond WORKERS, in priority order."""
    configure(client, auth, PROCESSING_MODE="manual")
    ids = [job_id_of(client) for _ in range(4)]
    body = client.post("/process", json={"count": 3}, headers=auth.ok).get_json()
    assert [job["job_id"] for job in body["started"]] == ids[:3]
    assert (body["count"], body["queued"]) == (3, 1)
    assert len(client.get("/queue").get_json()["running"]) == 3


def test_process_jobs_starts_at_most_what_is_queued(client, auth):
    """Asking for more jobs than are queued starts those there are, and then none."""
    configure(client, auth, PROCESSING_MODE="manual")
    job_id_of(client)
    body = client.post("/process_jobs", json={"count": 5}, headers=auth.ok).get_json()
    assert (body["count"], body["queued"]) == (1, 0)
    empty = client.post("/process_jobs", json={"count": 5}, headers=auth.ok)
    assert empty.status_code == 200
    assert empty.get_json() == {"started": [], "count": 0, "queued": 0}


# ------------------------------------------------------------------------------------ POST /cleanup


@pytest.fixture
def finished(client, clock, auth) -> dict[str, str]:
    """One completed, one cancelled and one still running job; the clock stops 10 s after submission."""
    completed = job_id_of(client, "premium")
    cancelled = job_id_of(client, "free")
    client.post(f"/cancel/{cancelled}", headers=auth.ok)
    running = job_id_of(client, "free")
    clock.advance(5)
    assert client.get(f"/status/{completed}").get_json()["status"] == "completed"
    return {"completed": completed, "cancelled": cancelled, "running": running}


def test_cleanup_removes_completed_jobs_by_default(client, auth, finished):
    """POST /cleanup without a body removes only completed jobs and says how many."""
    response = client.post("/cleanup", headers=auth.ok)
    assert response.status_code == 200
    assert response.get_json() == {"removed": 1, "statuses": ["completed"]}
    assert client.get(f"/status/{finished['completed']}").status_code == 404
    assert {job["job_id"] for job in all_jobs(client)} == {finished["cancelled"], finished["running"]}


def test_cleanup_removes_the_given_statuses(client, auth, finished):
    """POST /cleanup with statuses removes jobs with those statuses only."""
    response = client.post("/cleanup", json={"statuses": ["cancelled", "permanently_failed"]}, headers=auth.ok)
    assert response.get_json() == {"removed": 1, "statuses": ["cancelled", "permanently_failed"]}
    assert {job["job_id"] for job in all_jobs(client)} == {finished["completed"], finished["running"]}


def test_cleanup_older_than_keeps_younger_jobs(client, clock, auth, finished):
    """older_than removes only jobs that finished at least that many seconds ago."""
    # The completed job finished 0 s ago, the cancelled one 5 s ago.
    body = {"statuses": ["completed", "cancelled"], "older_than": 3}
    assert client.post("/cleanup", json=body, headers=auth.ok).get_json()["removed"] == 1
    assert {job["job_id"] for job in all_jobs(client)} == {finished["completed"], finished["running"]}
    clock.advance(3)
    assert client.post("/cleanup", json=body, headers=auth.ok).get_json()["removed"] == 1
    assert [job["job_id"] for job in all_jobs(client)] == [finished["running"]]


# ------------------------------------------------------------------------------------ /config, /healthz


def test_get_config_shows_settings_but_never_the_admin_token(client):
    """GET /config shows the settings in force and no ADMIN_TOKEN."""
    response = client.get("/config")
    assert response.status_code == 200
    config = response.get_json()
    assert "ADMIN_TOKEN" not in config
    assert "test-admin-token" not in response.get_data(as_text=True)
    assert (config["TRANSLATION_DELAY"], config["WORKERS"], config["RATE_LIMIT"]) == (10.0, 2, 5)
    assert config["PROCESSING_MODE"] == "auto"


def test_post_config_answers_the_whole_new_config(client, auth):
    """POST /config answers the whole config with the changes applied, and GET /config agrees."""
    response = client.post("/config", json={"WORKERS": 3, "ERROR_RATE": 0.5}, headers=auth.ok)
    assert response.status_code == 200
    config = response.get_json()
    assert (config["WORKERS"], config["ERROR_RATE"], config["TRANSLATION_DELAY"]) == (3, 0.5, 10.0)
    assert "ADMIN_TOKEN" not in config
    assert "test-admin-token" not in response.get_data(as_text=True)
    assert client.get("/config").get_json() == config


def test_post_config_workers_starts_queued_jobs_at_once(client, auth):
    """Raising WORKERS at runtime starts a queued job at once."""
    ids = [job_id_of(client) for _ in range(3)]
    configure(client, auth, WORKERS=3)
    assert [job["job_id"] for job in client.get("/queue").get_json()["running"]] == ids


def test_post_config_translation_delay_applies_to_later_attempts(client, clock, auth):
    """A new TRANSLATION_DELAY applies to attempts that start after the change, not to running ones."""
    before = job_id_of(client)
    configure(client, auth, TRANSLATION_DELAY=2)
    after = job_id_of(client)
    clock.advance(2)
    assert client.get(f"/status/{after}").get_json()["status"] == "completed"
    assert client.get(f"/status/{before}").get_json()["status"] == "pending"


def test_healthz_answers_ok_with_counts(client):
    """GET /healthz answers 200 with status ok and how many jobs there are."""
    job_id_of(client)
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["jobs"], body["running"], body["queued"]) == ("ok", 1, 1, 0)


# ------------------------------------------------------------------------------------ every answer


@pytest.mark.parametrize(
    ("method", "path", "admin", "status"),
    [
        ("post", "/translate", False, 202),
        ("get", "/status", False, 404),
        ("get", "/status/{job}", False, 200),
        ("get", "/jobs", False, 200),
        ("get", "/queue", False, 200),
        ("post", "/cancel/{job}", True, 200),
        ("post", "/cancel/{job}", False, 401),
        ("post", "/process_jobs", True, 200),
        ("post", "/cleanup", True, 200),
        ("get", "/config", False, 200),
        ("get", "/healthz", False, 200),
        ("get", "/no/such/path", False, 404),
        ("delete", "/jobs", False, 405),
    ],
)
def test_every_answer_has_nosniff(client, auth, method, path, admin, status):
    """Every answer, success or error, carries X-Content-Type-Options: nosniff and a JSON media type."""
    job = job_id_of(client, user="someone") if "{job}" in path else "unused"
    headers = {"X-User-Id": "nobody-yet", **(auth.ok if admin else {})}
    response = getattr(client, method)(path.format(job=job), headers=headers)
    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype in ("application/json", "application/problem+json")
    if status >= 400:
        assert_problem(response, status)


def test_405_keeps_its_allow_header(client):
    """A wrong method is a 405 problem that lists the allowed methods in Allow."""
    response = client.get("/translate")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_missing_admin_token_is_401_with_www_authenticate(client):
    """An admin endpoint without a token answers 401 with WWW-Authenticate: Bearer."""
    response = client.post("/process_jobs")
    assert_problem(response, 401, "missing_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# ------------------------------------------------------------------------------------ rate limits


def test_exactly_rate_limit_free_submissions_pass_then_429(client):
    """RATE_LIMIT free submissions per user pass; the next is a 429 problem with Retry-After and retry_after."""
    remaining = []
    for _ in range(5):
        response = submit(client, "free", "alice")
        assert response.status_code == 202
        assert response.headers["X-RateLimit-Limit"] == "5"
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["4", "3", "2", "1", "0"]
    refused = submit(client, "free", "alice")
    body = assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) == body["retry_after"]
    assert 3590 < body["retry_after"] <= 3600
    assert "X-RateLimit-Limit" in refused.headers
    assert len(all_jobs(client)) == 5


def test_rate_limit_of_one_user_leaves_others_alone(client):
    """A user who used up the limit does not limit another user."""
    for _ in range(5):
        submit(client, "free", "alice")
    assert submit(client, "free", "alice").status_code == 429
    assert submit(client, "free", "bob").status_code == 202


def test_rate_limit_without_user_id_is_per_client_address(client):
    """Without X-User-Id the limit counts per client address."""
    for _ in range(5):
        assert client.post("/translate", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 202
    assert client.post("/translate", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 429
    assert client.post("/translate", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 202


def test_premium_submissions_are_never_limited_nor_counted(client):
    """Premium submissions pass beyond the limit and do not use up the free allowance."""
    for _ in range(8):
        assert submit(client, "premium", "alice").status_code == 202
    for _ in range(5):
        assert submit(client, "free", "alice").status_code == 202
    assert submit(client, "free", "alice").status_code == 429
    assert submit(client, "premium", "alice").status_code == 202


def test_invalid_submissions_do_not_use_up_the_limit(client):
    """Refused submissions (bad role, unknown field, bad JSON) do not count against the limit."""
    for body in ({"role": "gold"}, {"colour": "red"}, {"role": 1}):
        assert submit(client, user="alice", **body).status_code == 422
    assert client.post("/translate", data="{", headers={"X-User-Id": "alice"}).status_code == 400
    for _ in range(5):
        assert submit(client, "free", "alice").status_code == 202
    assert submit(client, "free", "alice").status_code == 429


def test_idempotent_replays_do_not_use_up_the_limit(client):
    """Replaying a submission under its Idempotency-Key does not count against the limit."""
    key = {"Idempotency-Key": "once"}
    for _ in range(4):
        assert submit(client, "free", "alice", headers=key).status_code == 202
    for _ in range(4):
        assert submit(client, "free", "alice").status_code == 202
    assert submit(client, "free", "alice").status_code == 429
    assert submit(client, "free", "alice", headers=key).headers["Idempotent-Replayed"] == "true"


def test_raising_rate_limit_at_runtime_allows_only_the_difference(client, auth):
    """Raising RATE_LIMIT lets a user who used up the old limit submit exactly the difference."""
    for _ in range(5):
        submit(client, "free", "alice")
    assert submit(client, "free", "alice").status_code == 429
    configure(client, auth, RATE_LIMIT=7)
    assert [submit(client, "free", "alice").status_code for _ in range(3)] == [202, 202, 429]


def test_lowering_rate_limit_at_runtime_counts_earlier_submissions(client, auth):
    """Lowering RATE_LIMIT below what a user already submitted refuses the user's next free submission."""
    for _ in range(3):
        assert submit(client, "free", "alice").status_code == 202
    configure(client, auth, RATE_LIMIT=3)
    assert_problem(submit(client, "free", "alice"), 429, "rate_limited")
    assert submit(client, "free", "bob").status_code == 202
    configure(client, auth, RATE_LIMIT=4)
    assert [submit(client, "free", "alice").status_code for _ in range(2)] == [202, 429]


def test_rate_limit_zero_refuses_every_free_submission(client, auth):
    """RATE_LIMIT 0 refuses the first free submission of anyone, while premium still passes."""
    configure(client, auth, RATE_LIMIT=0)
    body = assert_problem(submit(client, "free", "newcomer"), 429, "rate_limited")
    assert 1 <= body["retry_after"] <= 3600
    assert submit(client, None, "other").status_code == 429
    assert submit(client, "premium", "newcomer").status_code == 202
    assert len(all_jobs(client)) == 1


# ------------------------------------------------------------------------------------ long-poll (real server)


def timed_get(url: str, **kwargs: Any) -> tuple[requests.Response, float]:
    """GET `url` and return the response and how many seconds it took."""
    started = time.monotonic()
    response = requests.get(url, timeout=10, **kwargs)
    return response, time.monotonic() - started


def test_long_poll_answers_as_soon_as_the_job_completes(run_server):
    """?wait=5 returns right after the 0.5 s job completes, with Preference-Applied: wait=5."""
    server = run_server({"TRANSLATION_DELAY": 0.5})
    job = requests.post(f"{server.url}/translate", headers={"X-User-Id": "alice"}, timeout=5).json()
    response, elapsed = timed_get(f"{server.url}/status/{job['job_id']}?wait=5")
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert response.headers["Preference-Applied"] == "wait=5"
    assert "Retry-After" not in response.headers
    assert 0.2 < elapsed < 2.0
    # A finished job answers at once, however long the wait.
    again, elapsed = timed_get(f"{server.url}/status/{job['job_id']}?wait=5")
    assert again.json()["status"] == "completed"
    assert elapsed < 0.5


def test_long_poll_with_prefer_header(run_server):
    """A Prefer: wait=5 header holds the request like ?wait=5 does."""
    server = run_server({"TRANSLATION_DELAY": 0.5})
    job = requests.post(f"{server.url}/translate", headers={"X-User-Id": "alice"}, timeout=5).json()
    response, elapsed = timed_get(f"{server.url}/status/{job['job_id']}", headers={"Prefer": "wait=5"})
    assert response.json()["status"] == "completed"
    assert response.headers["Preference-Applied"] == "wait=5"
    assert 0.2 < elapsed < 2.0


def test_long_poll_since_semantics(run_server):
    """?since=V answers at once when the version is already past V, else when it moves past V."""
    server = run_server({"TRANSLATION_DELAY": 5, "PROCESSING_MODE": "manual"})
    admin = {"Authorization": f"Bearer {server.settings['ADMIN_TOKEN']}"}
    job = requests.post(f"{server.url}/translate", headers={"X-User-Id": "alice"}, timeout=5).json()
    url = f"{server.url}/status/{job['job_id']}"
    version = job["version"]

    behind, elapsed = timed_get(f"{url}?wait=5&since={version - 1}")
    assert behind.json()["version"] == version
    assert elapsed < 0.5

    nothing, elapsed = timed_get(f"{url}?wait=0.3")  # since defaults to the version at arrival
    assert nothing.json()["version"] == version
    assert nothing.headers["Preference-Applied"] == "wait=0.3"
    assert 0.25 < elapsed < 1.5

    timer = threading.Timer(0.3, lambda: requests.post(f"{server.url}/process_jobs", headers=admin, timeout=5))
    timer.start()
    try:
        moved, elapsed = timed_get(f"{url}?wait=5&since={version}")
    finally:
        timer.join()
    assert moved.json()["version"] > version
    assert moved.json()["stage"] == "translating"  # it moved, though far from finished
    assert 0.2 < elapsed < 2.0


def test_long_poll_is_capped_at_max_wait(run_server):
    """A wait longer than MAX_WAIT is held MAX_WAIT seconds and says so in Preference-Applied."""
    server = run_server({"PROCESSING_MODE": "manual", "MAX_WAIT": 0.4})
    job = requests.post(f"{server.url}/translate", headers={"X-User-Id": "alice"}, timeout=5).json()
    response, elapsed = timed_get(f"{server.url}/status/{job['job_id']}?wait=5")
    assert response.headers["Preference-Applied"] == "wait=0.4"
    assert response.json()["status"] == "pending"
    assert 0.3 < elapsed < 1.5


def test_long_poll_off_with_max_wait_zero(run_server):
    """With MAX_WAIT=0 a wait is not honoured: the answer is immediate and has no Preference-Applied."""
    server = run_server({"PROCESSING_MODE": "manual", "MAX_WAIT": 0})
    job = requests.post(f"{server.url}/translate", headers={"X-User-Id": "alice"}, timeout=5).json()
    for kwargs in ({"params": {"wait": 5}}, {"headers": {"Prefer": "wait=5"}}):
        response, elapsed = timed_get(f"{server.url}/status/{job['job_id']}", **kwargs)
        assert response.status_code == 200
        assert "Preference-Applied" not in response.headers
        assert response.headers["Retry-After"] == "1"
        assert elapsed < 0.5


def test_the_real_server_streams_a_long_listing_that_parses_whole(run_server, tmp_path):
    """Through waitress, /jobs and /queue with more than STREAM_BATCH jobs arrive chunked and complete."""
    n = encoding.STREAM_BATCH * 2 + 7
    settings = {"TRANSLATION_DELAY": 3600, "WORKERS": 2, "MAX_JOBS": n}
    store = SqliteStore(str(tmp_path / "jobs.db"))
    engine = JobEngine(config.from_mapping(settings), store=store, clock=system_clock())
    ids = [engine.submit("premium" if i % 3 else "free", f"u{i % 5}")[0]["job_id"] for i in range(n)]
    store.close()
    server = run_server({**settings, "STORE": f"sqlite:///{store.path}"})

    response = requests.get(f"{server.url}/jobs", timeout=30)
    assert response.headers.get("Transfer-Encoding") == "chunked" and response.headers["X-Total-Count"] == str(n)
    assert [j["job_id"] for j in flat(response.json())] == ids
    queue = requests.get(f"{server.url}/queue", timeout=30)
    assert queue.headers.get("Transfer-Encoding") == "chunked"
    body = queue.json()
    assert body["queued_total"] == len(body["queued"]) == n - 2 and len(body["running"]) == 2
    assert [j["queue_position"] for j in body["queued"]] == list(range(1, n - 1))
    assert "Transfer-Encoding" not in requests.get(f"{server.url}/jobs?limit=10", timeout=30).headers


# ------------------------------------------------------------------------------------ paged listings


def flat(grouped: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the jobs of a grouped answer, oldest first."""
    jobs = [job for roles in grouped.values() for by_id in roles.values() for job in by_id.values()]
    return sorted(jobs, key=lambda j: j["created_at"])


def test_jobs_pages_follow_their_link_to_the_whole_listing(client, clock, auth):
    """?limit= pages, followed through Link headers, hold every job once, in order; X-Total-Count counts all."""
    configure(client, auth, RATE_LIMIT=100)
    ids = []
    for n in range(7):
        ids.append(job_id_of(client, "premium" if n % 2 else "free", "pager"))
        clock.advance(0.001)
    seen, url, pages = [], "/jobs?user_id=pager&limit=3", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200 and response.headers["X-Total-Count"] == "7"
        page = flat(response.get_json())
        assert len(page) <= 3 and set(response.get_json()) == {"pending", "failed", "completed",
                                                                "permanently_failed", "cancelled"}
        seen += [j["job_id"] for j in page]
        link = response.headers.get("Link")
        url = link[1:link.index(">")] if link else None
        pages += 1
    assert seen == ids and pages == 3


def test_jobs_without_limit_answers_everything_as_before(client):
    """No limit: the whole listing and no Link header."""
    for _ in range(4):
        job_id_of(client)
    response = client.get("/jobs")
    assert len(flat(response.get_json())) == 4
    assert "Link" not in response.headers and response.headers["X-Total-Count"] == "4"


def test_queue_pages_keep_the_start_order_and_count_every_queued_job(client, auth):
    """/queue?limit=&offset= answers a slice of the start order; queued_total counts them all."""
    configure(client, auth, PROCESSING_MODE="manual", RATE_LIMIT=100)
    for n in range(6):
        job_id_of(client, "premium" if n >= 3 else "free", f"q{n}")
    whole = client.get("/queue").get_json()
    page = client.get("/queue?offset=2&limit=3")
    body = page.get_json()
    assert [j["job_id"] for j in body["queued"]] == [j["job_id"] for j in whole["queued"][2:5]]
    assert body["queued_total"] == whole["queued_total"] == 6
    assert page.headers["Link"] == '</queue?offset=5&limit=3>; rel="next"'


@pytest.mark.parametrize(
    ("value", "levels"),
    [
        ({}, 0),
        ([], 0),
        ({"a": 1}, 2),
        (list(range(7)), 0),
        ({f"k{n}": {"n": n, "s": "é\"<"} for n in range(7)}, 0),
        ({"pending": {"free": {}, "premium": {f"id{n}": {"n": n} for n in range(5)}}, "done": {"free": {"x": {}}}}, 2),
        ({"mode": "auto", "queued": [{"n": n} for n in range(9)], "queued_total": 9, "running": []}, 1),
        ({"deep": {"deeper": list(range(4))}}, 5),
    ],
)
def test_json_pieces_join_to_the_same_bytes_as_one_dump(monkeypatch, value, levels):
    """A streamed answer, whatever its shape, is byte for byte the JSON the unstreamed one would be."""
    monkeypatch.setattr(encoding, "STREAM_BATCH", 2)
    pieces = list(encoding.json_pieces(value, levels))
    assert b"".join(pieces) == encoding.dumps(value)
    assert json.loads(b"".join(pieces)) == value


def test_long_listings_are_streamed_with_the_bytes_a_short_one_would_have(client, app, auth, monkeypatch):
    """Past STREAM_BATCH jobs /jobs and /queue stream (no Content-Length) the exact JSON; short pages do not."""
    monkeypatch.setattr(encoding, "STREAM_BATCH", 3)
    configure(client, auth, RATE_LIMIT=100, WORKERS=1)
    for n in range(8):
        job_id_of(client, "premium" if n % 3 else "free", f"s{n % 2}")
    engine = app.extensions["simulator"].engine
    for path, expected in (("/jobs", engine.grouped()), ("/queue", engine.queue())):
        response = client.get(path)
        assert response.status_code == 200 and "Content-Length" not in response.headers
        assert response.get_data() == encoding.dumps(expected) and response.get_json() == expected
        assert response.mimetype == "application/json" and response.headers["X-Total-Count"]
        page = client.get(f"{path}?limit=2")
        assert int(page.headers["Content-Length"]) == len(page.get_data())


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "limit=x", "offset=-1", "offset=1000000001"])
def test_bad_page_parameters_are_400(client, query):
    """Out-of-range limit and offset are refused with a problem naming the parameter."""
    for path in ("/jobs", "/queue"):
        body = assert_problem(client.get(f"{path}?{query}"), 400, "invalid_parameter")
        assert query.split("=")[0] in body["detail"]


def test_a_submission_refused_for_capacity_does_not_use_up_the_limit(client, auth):
    """At MAX_JOBS a free submission gets 503 with Retry-After, and the user's hourly allowance is untouched."""
    configure(client, auth, MAX_JOBS=1, RATE_LIMIT=2)
    job_id_of(client, "premium", "other")
    for _ in range(3):
        body = assert_problem(submit(client, "free", "full"), 503, "capacity_exceeded")
        assert body["retry_after"] >= 1
    configure(client, auth, MAX_JOBS=100)
    assert [submit(client, "free", "full").status_code for _ in range(3)] == [202, 202, 429]
