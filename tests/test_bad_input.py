"""Bad requests, as one table: each is refused with the right problem+json and changes nothing (SPEC §5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
TOKEN = "test-admin-token"  # conftest.ADMIN_TOKEN
UNSET = object()


def bad(
    name: str,
    method: str,
    path: str,
    status: int,
    code: str,
    *,
    body: Any = UNSET,
    data: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: str | None = None,
    mention: str | None = None,
    header: tuple[str, str] | None = None,
):
    """Describe one bad request and what it must answer.

    `body` is sent as JSON, `data` as raw bytes; `auth` is "ok", "wrong" or "missing" (admin endpoints);
    `mention` must appear in the detail (and name a field of `errors` when there are any); `header` is a
    (name, text) that the answer's header must contain. `{job}` in the path is a queued job's id.
    """
    return pytest.param(method, path, body, data, headers or {}, auth, status, code, mention, header, id=name)


def admin(name: str, path: str, status: int, code: str, **kwargs: Any):
    """Describe one bad POST to an admin endpoint made with the right token."""
    return bad(name, "post", path, status, code, auth="ok", **kwargs)


BEARER = ("WWW-Authenticate", "Bearer")
DEEP = "[" * 50_000  # within the body limit, beyond the JSON parser's recursion limit
BIG = "x" * (64 * 1024 + 1)

BAD_REQUESTS = [
    # ------------------------------------------------------------ malformed JSON, JSON that is not an object
    bad("translate-malformed", "post", "/translate", 400, "malformed_json", data="{", mention="JSON"),
    bad("translate-truncated", "post", "/translate", 400, "malformed_json", data='{"role": "free"'),
    bad("translate-single-quotes", "post", "/translate", 400, "malformed_json", data="{'role': 'free'}"),
    bad("translate-nan", "post", "/translate", 400, "malformed_json", data='{"role": NaN}', mention="NaN"),
    bad("translate-not-utf8", "post", "/translate", 400, "malformed_json", data=b"\xff\xfe{\x00"),
    bad("translate-nested-too-deep", "post", "/translate", 400, "malformed_json", data=DEEP),
    bad("translate-form-data", "post", "/translate", 400, "malformed_json", data="role=premium"),
    bad("translate-list", "post", "/translate", 400, "invalid_body", body=[{"role": "free"}], mention="object"),
    bad("translate-string", "post", "/translate", 400, "invalid_body", body="free", mention="object"),
    bad("translate-number", "post", "/translate", 400, "invalid_body", body=5, mention="object"),
    bad("translate-null", "post", "/translate", 400, "invalid_body", data="null", mention="object"),
    admin("config-list", "/config", 400, "invalid_body", body=[{"WORKERS": 3}], mention="object"),
    admin("config-malformed", "/config", 400, "malformed_json", data='{"WORKERS": 3,}'),
    admin("config-nested-too-deep", "/config", 400, "malformed_json", data=DEEP),
    admin("cancel-list", "/cancel/{job}", 400, "invalid_body", body=["no"]),
    admin("process-null", "/process_jobs", 400, "invalid_body", data="null"),
    admin("cleanup-malformed", "/cleanup", 400, "malformed_json", data='{"statuses": ['),
    # ------------------------------------------------------------ wrong types
    bad("role-number", "post", "/translate", 422, "validation_error", body={"role": 1}, mention="role"),
    bad("role-null", "post", "/translate", 422, "validation_error", body={"role": None}, mention="role"),
    bad("video-url-number", "post", "/translate", 422, "validation_error", body={"video_url": 5}, mention="video_url"),
    bad("video-url-blank", "post", "/translate", 422, "validation_error", body={"video_url": "  "},
        mention="video_url"),
    bad("video-url-too-long", "post", "/translate", 422, "validation_error", body={"video_url": "u" * 2049},
        mention="video_url"),
    bad("language-list", "post", "/translate", 422, "validation_error", body={"target_language": ["de"]},
        mention="target_language"),
    admin("count-string", "/process_jobs", 422, "validation_error", body={"count": "2"}, mention="count"),
    admin("count-true", "/process_jobs", 422, "validation_error", body={"count": True}, mention="count"),
    admin("reason-list", "/cancel/{job}", 422, "validation_error", body={"reason": []}, mention="reason"),
    admin("reason-empty", "/cancel/{job}", 422, "validation_error", body={"reason": ""}, mention="reason"),
    admin("reason-too-long", "/cancel/{job}", 422, "validation_error", body={"reason": "r" * 501}, mention="reason"),
    # ------------------------------------------------------------ unknown fields
    bad("translate-unknown-field", "post", "/translate", 422, "validation_error",
        body={"role": "free", "priority": 1}, mention="priority"),
    bad("translate-user-in-body", "post", "/translate", 422, "validation_error", body={"user_id": "bob"},
        mention="user_id"),
    admin("process-unknown-field", "/process", 422, "validation_error", body={"n": 2}, mention="n"),
    admin("cancel-unknown-field", "/cancel/{job}", 422, "validation_error", body={"why": "x"}, mention="why"),
    admin("cleanup-unknown-field", "/cleanup", 422, "validation_error", body={"status": ["completed"]},
        mention="status"),
    # ------------------------------------------------------------ bad role, count, cleanup
    bad("role-gold", "post", "/translate", 422, "validation_error", body={"role": "gold"}, mention="role"),
    bad("role-capitalised", "post", "/translate", 422, "validation_error", body={"role": "Premium"}, mention="role"),
    admin("count-zero", "/process_jobs", 422, "validation_error", body={"count": 0}, mention="count"),
    admin("count-negative", "/process_jobs", 422, "validation_error", body={"count": -1}, mention="count"),
    admin("count-fraction", "/process", 422, "validation_error", body={"count": 1.5}, mention="count"),
    admin("count-huge", "/process", 422, "validation_error", body={"count": 10**9}, mention="count"),
    admin("cleanup-pending", "/cleanup", 422, "validation_error", body={"statuses": ["pending"]},
        mention="statuses"),
    admin("cleanup-failed", "/cleanup", 422, "validation_error", body={"statuses": ["completed", "failed"]},
        mention="statuses"),
    admin("cleanup-statuses-string", "/cleanup", 422, "validation_error", body={"statuses": "completed"},
        mention="statuses"),
    admin("cleanup-statuses-empty", "/cleanup", 422, "validation_error", body={"statuses": []}, mention="statuses"),
    admin("cleanup-older-negative", "/cleanup", 422, "validation_error", body={"older_than": -1},
        mention="older_than"),
    admin("cleanup-older-string", "/cleanup", 422, "validation_error", body={"older_than": "10"},
        mention="older_than"),
    admin("cleanup-older-true", "/cleanup", 422, "validation_error", body={"older_than": True}, mention="older_than"),
    admin("cleanup-older-infinite", "/cleanup", 422, "validation_error", data='{"older_than": 1e999}',
        mention="older_than"),
    # ------------------------------------------------------------ bad config values, unknown and read-only keys
    admin("config-workers-0", "/config", 422, "invalid_config", body={"WORKERS": 0}, mention="WORKERS"),
    admin("config-workers-fraction", "/config", 422, "invalid_config", body={"WORKERS": 2.5}, mention="WORKERS"),
    admin("config-error-rate-2", "/config", 422, "invalid_config", body={"ERROR_RATE": 2}, mention="ERROR_RATE"),
    admin("config-error-rate-negative", "/config", 422, "invalid_config", body={"ERROR_RATE": -0.1},
        mention="ERROR_RATE"),
    admin("config-mode-fast", "/config", 422, "invalid_config", body={"PROCESSING_MODE": "fast"},
        mention="PROCESSING_MODE"),
    admin("config-max-retries-string", "/config", 422, "invalid_config", body={"MAX_RETRIES": "3"},
        mention="MAX_RETRIES"),
    admin("config-delay-true", "/config", 422, "invalid_config", body={"TRANSLATION_DELAY": True},
        mention="TRANSLATION_DELAY"),
    admin("config-premium-factor-0", "/config", 422, "invalid_config", body={"PREMIUM_DELAY_FACTOR": 0},
        mention="PREMIUM_DELAY_FACTOR"),
    admin("config-jitter-1", "/config", 422, "invalid_config", body={"DELAY_JITTER": 1}, mention="DELAY_JITTER"),
    admin("config-rate-limit-null", "/config", 422, "invalid_config", body={"RATE_LIMIT": None},
        mention="RATE_LIMIT"),
    admin("config-max-wait-too-long", "/config", 422, "invalid_config", body={"MAX_WAIT": 301}, mention="MAX_WAIT"),
    admin("config-admin-token", "/config", 422, "invalid_config", body={"ADMIN_TOKEN": "mine"},
        mention="ADMIN_TOKEN"),
    admin("config-port", "/config", 422, "invalid_config", body={"PORT": 8080}, mention="PORT"),
    admin("config-random-seed", "/config", 422, "invalid_config", body={"RANDOM_SEED": 1}, mention="RANDOM_SEED"),
    admin("config-unknown", "/config", 422, "invalid_config", body={"NOPE": 1}, mention="NOPE"),
    admin("config-response-delay-word", "/config", 422, "invalid_config", body={"RESPONSE_DELAY": "slow"},
          mention="RESPONSE_DELAY"),
    admin("config-response-delay-number", "/config", 422, "invalid_config", body={"RESPONSE_DELAY": 200},
          mention="RESPONSE_DELAY"),
    admin("config-cors-origin-with-path", "/config", 422, "invalid_config",
          body={"CORS_ORIGINS": "https://app.example.com/ui"}, mention="CORS_ORIGINS"),
    admin("config-scenarios-maybe", "/config", 422, "invalid_config", body={"SCENARIOS": "maybe"},
          mention="SCENARIOS"),
    admin("config-journal-size-negative", "/config", 422, "invalid_config", body={"JOURNAL_SIZE": -1},
          mention="JOURNAL_SIZE"),
    admin("config-clock", "/config", 422, "invalid_config", body={"CLOCK": "manual"}, mention="CLOCK"),
    admin("config-lowercase-key", "/config", 422, "invalid_config", body={"workers": 3}, mention="workers"),
    admin("config-half-valid", "/config", 422, "invalid_config", body={"WORKERS": 3, "ERROR_RATE": 2},
        mention="ERROR_RATE"),
    admin("config-empty", "/config", 422, "validation_error", body={}, mention="setting"),
    admin("config-no-body", "/config", 422, "validation_error", mention="setting"),
    # ------------------------------------------------------------ missing and wrong admin tokens
    *[
        bad(f"{path.strip('/').split('/')[0]}-{kind}-token", "post", path, 401, code, body=body, auth=kind,
            header=BEARER)
        for path, body in [
            ("/cancel/{job}", {"reason": "not allowed"}),
            ("/process_jobs", {"count": 1}),
            ("/process", {"count": 1}),
            ("/cleanup", {"statuses": ["completed"]}),
            ("/config", {"WORKERS": 5}),
        ]
        for kind, code in [("missing", "missing_token"), ("wrong", "invalid_token")]
    ],
    bad("config-basic-auth", "post", "/config", 401, "missing_token", body={"WORKERS": 5},
        headers={"Authorization": "Basic dGVzdC1hZG1pbi10b2tlbg=="}, header=BEARER),
    bad("config-bare-token", "post", "/config", 401, "missing_token", body={"WORKERS": 5},
        headers={"Authorization": TOKEN}, header=BEARER),
    bad("config-empty-bearer", "post", "/config", 401, "missing_token", body={"WORKERS": 5},
        headers={"Authorization": "Bearer "}, header=BEARER),
    bad("config-token-with-suffix", "post", "/config", 401, "invalid_token", body={"WORKERS": 5},
        headers={"Authorization": f"Bearer {TOKEN}x"}, header=BEARER),
    bad("config-token-prefix-only", "post", "/config", 401, "invalid_token", body={"WORKERS": 5},
        headers={"Authorization": f"Bearer {TOKEN[:-1]}"}, header=BEARER),
    # ------------------------------------------------------------ unknown ids
    bad("status-unknown-id", "get", f"/status/{UNKNOWN_ID}", 404, "job_not_found", mention=UNKNOWN_ID),
    bad("status-not-a-uuid", "get", "/status/not-a-job", 404, "job_not_found", mention="not-a-job"),
    bad("status-overlong-id", "get", "/status/" + "a" * 300, 404, "job_not_found"),
    admin("cancel-unknown-id", f"/cancel/{UNKNOWN_ID}", 404, "job_not_found", body={"reason": "x"},
          mention=UNKNOWN_ID),
    admin("cancel-overlong-id", "/cancel/" + "a" * 300, 404, "job_not_found"),
    # ------------------------------------------------------------ wrong methods
    bad("get-translate", "get", "/translate", 405, "method_not_allowed", header=("Allow", "POST")),
    bad("put-translate", "put", "/translate", 405, "method_not_allowed", body={"role": "free"},
        header=("Allow", "POST")),
    bad("delete-status", "delete", "/status/{job}", 405, "method_not_allowed", header=("Allow", "GET")),
    bad("post-status", "post", "/status/{job}", 405, "method_not_allowed", header=("Allow", "GET")),
    bad("get-cancel", "get", "/cancel/{job}", 405, "method_not_allowed", header=("Allow", "POST")),
    bad("delete-cancel", "delete", "/cancel/{job}", 405, "method_not_allowed", auth="ok", header=("Allow", "POST")),
    bad("get-process-jobs", "get", "/process_jobs", 405, "method_not_allowed", header=("Allow", "POST")),
    bad("get-cleanup", "get", "/cleanup", 405, "method_not_allowed", header=("Allow", "POST")),
    bad("put-config", "put", "/config", 405, "method_not_allowed", body={"WORKERS": 5}, auth="ok",
        header=("Allow", "POST")),
    bad("patch-config", "patch", "/config", 405, "method_not_allowed", body={"WORKERS": 5}, auth="ok",
        header=("Allow", "GET")),
    bad("post-jobs", "post", "/jobs", 405, "method_not_allowed", header=("Allow", "GET")),
    bad("delete-jobs", "delete", "/jobs", 405, "method_not_allowed", header=("Allow", "GET")),
    bad("post-queue", "post", "/queue", 405, "method_not_allowed", header=("Allow", "GET")),
    bad("post-healthz", "post", "/healthz", 405, "method_not_allowed", header=("Allow", "GET")),
    # ------------------------------------------------------------ unknown paths
    bad("unknown-path", "get", "/nope", 404, "not_found", mention="/nope"),
    bad("unknown-post-path", "post", "/translations", 404, "not_found", body={"role": "free"}),
    bad("translate-subpath", "post", "/translate/free", 404, "not_found", body={"role": "free"}),
    bad("status-subpath", "get", "/status/{job}/extra", 404, "not_found"),
    bad("jobs-subpath", "get", "/jobs/free", 404, "not_found"),
    bad("versioned-path", "post", "/v1/translate", 404, "not_found"),
    # ------------------------------------------------------------ bad query parameters
    bad("wait-abc", "get", "/status/{job}?wait=abc", 400, "invalid_parameter", mention="wait"),
    bad("wait-negative", "get", "/status/{job}?wait=-1", 400, "invalid_parameter", mention="wait"),
    bad("wait-infinite", "get", "/status/{job}?wait=inf", 400, "invalid_parameter", mention="wait"),
    bad("wait-nan", "get", "/status/{job}?wait=nan", 400, "invalid_parameter", mention="wait"),
    bad("since-negative", "get", "/status/{job}?since=-1", 400, "invalid_parameter", mention="since"),
    bad("since-abc", "get", "/status/{job}?since=abc", 400, "invalid_parameter", mention="since"),
    bad("since-fraction", "get", "/status/{job}?since=1.5", 400, "invalid_parameter", mention="since"),
    bad("newest-wait-abc", "get", "/status?wait=abc", 400, "invalid_parameter", headers={"X-User-Id": "alice"},
        mention="wait"),
    bad("prefer-wait-abc", "get", "/status/{job}", 400, "invalid_header", headers={"Prefer": "wait=abc"},
        mention="Prefer"),
    bad("prefer-wait-negative", "get", "/status/{job}", 400, "invalid_header", headers={"Prefer": "wait=-2"},
        mention="Prefer"),
    bad("jobs-user-id-empty", "get", "/jobs?user_id=", 400, "invalid_parameter", mention="user_id"),
    bad("jobs-user-id-too-long", "get", "/jobs?user_id=" + "u" * 129, 400, "invalid_parameter", mention="user_id"),
    # ------------------------------------------------------------ bad headers
    bad("idempotency-key-too-long", "post", "/translate", 400, "invalid_header",
        headers={"Idempotency-Key": "k" * 256}, mention="Idempotency-Key"),
    bad("idempotency-key-empty", "post", "/translate", 400, "invalid_header", headers={"Idempotency-Key": ""},
        mention="Idempotency-Key"),
    bad("user-id-empty", "post", "/translate", 400, "invalid_header", headers={"X-User-Id": ""},
        mention="X-User-Id"),
    bad("user-id-too-long", "post", "/translate", 400, "invalid_header", headers={"X-User-Id": "u" * 129},
        mention="X-User-Id"),
    bad("user-id-not-ascii", "post", "/translate", 400, "invalid_header", headers={"X-User-Id": "café"},
        mention="X-User-Id"),
    bad("newest-user-id-empty", "get", "/status", 400, "invalid_header", headers={"X-User-Id": ""},
        mention="X-User-Id"),
    # ------------------------------------------------------------ scripted outcomes
    bad("simulate-list", "post", "/translate", 422, "validation_error", body={"simulate": ["fail"]},
        mention="simulate"),
    bad("simulate-empty", "post", "/translate", 422, "validation_error", body={"simulate": {}}, mention="simulate"),
    bad("simulate-null", "post", "/translate", 422, "validation_error", body={"simulate": None}, mention="simulate"),
    bad("simulate-unknown-member", "post", "/translate", 422, "validation_error",
        body={"simulate": {"outcome": ["fail"]}}, mention="simulate"),
    bad("simulate-bad-outcome", "post", "/translate", 422, "validation_error",
        body={"simulate": {"outcomes": ["fail", "explode"]}}, mention="simulate"),
    bad("simulate-negative-seconds", "post", "/translate", 422, "validation_error",
        body={"simulate": {"attempt_seconds": [-1]}}, mention="simulate"),
    bad("simulate-too-many-outcomes", "post", "/translate", 422, "validation_error",
        body={"simulate": {"outcomes": ["fail"] * 101}}, mention="simulate"),
    bad("simulate-bad-fault-status", "post", "/translate", 422, "validation_error",
        body={"simulate": {"status_faults": [{"status": 200}]}}, mention="simulate"),
    bad("simulate-bad-fail-code", "post", "/translate", 422, "validation_error",
        body={"simulate": {"fail_code": "oom"}}, mention="simulate"),
    bad("x-simulate-not-json", "post", "/translate", 400, "invalid_header", headers={"X-Simulate": "fail,succeed"},
        mention="X-Simulate"),
    bad("x-simulate-bad-outcome", "post", "/translate", 400, "invalid_header",
        headers={"X-Simulate": '{"outcomes": ["boom"]}'}, mention="outcomes[0]"),
    bad("x-simulate-and-body", "post", "/translate", 400, "invalid_header", body={"simulate": {"outcomes": ["fail"]}},
        headers={"X-Simulate": '{"outcomes": ["fail"]}'}, mention="X-Simulate"),
    # ------------------------------------------------------------ the testing controls
    admin("advance-negative", "/admin/clock/advance", 422, "validation_error", body={"seconds": -1},
          mention="seconds"),
    admin("advance-string", "/admin/clock/advance", 422, "validation_error", body={"seconds": "60"},
          mention="seconds"),
    admin("advance-true", "/admin/clock/advance", 422, "validation_error", body={"seconds": True}, mention="seconds"),
    admin("advance-too-far", "/admin/clock/advance", 422, "validation_error", body={"seconds": 10**10},
          mention="seconds"),
    admin("advance-missing", "/admin/clock/advance", 422, "validation_error", body={}, mention="seconds"),
    admin("advance-unknown-field", "/admin/clock/advance", 422, "validation_error", body={"minutes": 5},
          mention="minutes"),
    admin("advance-malformed", "/admin/clock/advance", 400, "malformed_json", data='{"seconds": '),
    admin("advance-system-clock", "/admin/clock/advance", 409, "clock_not_manual", body={"seconds": 1},
          mention="CLOCK=manual"),
    bad("clock-missing-token", "get", "/admin/clock", 401, "missing_token", header=BEARER),
    bad("advance-wrong-token", "post", "/admin/clock/advance", 401, "invalid_token", body={"seconds": 1},
        auth="wrong", header=BEARER),
    admin("reset-keep-config-string", "/admin/reset", 422, "validation_error", body={"keep_config": "yes"},
          mention="keep_config"),
    admin("reset-unknown-field", "/admin/reset", 422, "validation_error", body={"jobs_only": True},
          mention="jobs_only"),
    admin("reset-list", "/admin/reset", 400, "invalid_body", body=[True]),
    bad("reset-missing-token", "post", "/admin/reset", 401, "missing_token", header=BEARER),
    bad("reset-wrong-token", "post", "/admin/reset", 401, "invalid_token", auth="wrong", header=BEARER),
    bad("get-reset", "get", "/admin/reset", 405, "method_not_allowed", auth="ok", header=("Allow", "POST")),
    bad("requests-unknown-filter", "get", "/admin/requests?paht=/status/*", 400, "invalid_parameter", auth="ok",
        mention="paht"),
    bad("requests-path-without-slash", "get", "/admin/requests?path=status", 400, "invalid_parameter", auth="ok",
        mention="path"),
    bad("requests-star-inside", "get", "/admin/requests?path=/st*tus", 400, "invalid_parameter", auth="ok",
        mention="path"),
    bad("requests-status-word", "get", "/admin/requests?status=ok", 400, "invalid_parameter", auth="ok",
        mention="status"),
    bad("requests-status-600", "get", "/admin/requests?status=600", 400, "invalid_parameter", auth="ok",
        mention="status"),
    bad("requests-method-digits", "get", "/admin/requests?method=G3T", 400, "invalid_parameter", auth="ok",
        mention="method"),
    bad("requests-since-no-zone", "get", "/admin/requests?since=2027-01-15T08:00:00", 400, "invalid_parameter",
        auth="ok", mention="since"),
    bad("requests-since-word", "get", "/admin/requests?since=yesterday", 400, "invalid_parameter", auth="ok",
        mention="since"),
    bad("requests-since-infinite", "get", "/admin/requests?since=inf", 400, "invalid_parameter", auth="ok",
        mention="since"),
    bad("requests-limit-zero", "get", "/admin/requests?limit=0", 400, "invalid_parameter", auth="ok",
        mention="limit"),
    bad("requests-user-id-empty", "get", "/admin/requests?user_id=", 400, "invalid_parameter", auth="ok",
        mention="user_id"),
    bad("count-limit", "get", "/admin/requests/count?limit=5", 400, "invalid_parameter", auth="ok", mention="limit"),
    bad("requests-missing-token", "get", "/admin/requests", 401, "missing_token", header=BEARER),
    bad("post-requests", "post", "/admin/requests", 405, "method_not_allowed", auth="ok", header=("Allow", "GET")),
    bad("get-advance", "get", "/admin/clock/advance", 405, "method_not_allowed", auth="ok", header=("Allow", "POST")),
    # ------------------------------------------------------------ oversized bodies
    bad("translate-too-large", "post", "/translate", 413, "request_entity_too_large",
        data=json.dumps({"video_url": BIG})),
    admin("config-too-large", "/config", 413, "request_entity_too_large", data=BIG),
    admin("cancel-too-large", "/cancel/{job}", 413, "request_entity_too_large", data=json.dumps({"reason": BIG})),
    # ------------------------------------------------------------ API keys and webhooks (issue 14)
    bad("wrong-api-key", "post", "/translate", 401, "invalid_api_key",
        headers={"X-Api-Key": "sk_sim_not-a-key-0000000000"}, header=("WWW-Authenticate", "ApiKey"),
        mention="X-Api-Key"),
    bad("malformed-api-key", "get", "/jobs", 401, "invalid_api_key", headers={"X-Api-Key": "x"}),
    bad("translate-callback-not-allowed", "post", "/translate", 422, "validation_error",
        body={"callback_url": "https://example.com/hook"}, mention="callback_url"),
    bad("translate-callback-not-a-string", "post", "/translate", 422, "validation_error", body={"callback_url": 5},
        mention="callback_url"),
    bad("api-keys-without-token", "post", "/api-keys", 401, "missing_token", body={"user_id": "a"}),
    admin("api-keys-no-user", "/api-keys", 422, "validation_error", body={"role": "free"}, mention="user_id"),
    admin("api-keys-bad-role", "/api-keys", 422, "validation_error", body={"user_id": "a", "role": "gold"},
          mention="role"),
    bad("api-keys-revoke-unknown", "delete", "/api-keys/key_nope", 404, "key_not_found", auth="ok"),
    bad("deliveries-bad-outcome", "get", "/webhooks/deliveries?outcome=lost", 400, "invalid_parameter", auth="ok",
        mention="outcome"),
    admin("deliveries-retry-unknown", "/webhooks/deliveries/msg_nope/retry", 404, "delivery_not_found"),
    bad("result-with-half-a-link", "get", "/results/{job}?expires=1", 403, "invalid_link"),
]


@pytest.fixture
def seeded(client):
    """The test client with three jobs of alice: two running (free, premium) and one queued free; returns its id."""
    ids = []
    for role in ("free", "premium", "free"):
        response = client.post("/translate", json={"role": role}, headers={"X-User-Id": "alice"})
        assert response.status_code == 202
        ids.append(response.get_json()["job_id"])
    assert client.get(f"/status/{ids[2]}").get_json()["stage"] == "queued"
    return ids[2]


def snapshot(client) -> dict[str, Any]:
    """Return everything a request could change that the API shows: jobs, queue, config, counts."""
    health = client.get("/healthz").get_json()
    del health["uptime_seconds"]
    return {
        "jobs": client.get("/jobs").get_json(),
        "queue": client.get("/queue").get_json(),
        "config": client.get("/config").get_json(),
        "health": health,
    }


def test_the_table_is_big_enough():
    """The table holds at least 30 bad requests, each with a unique id."""
    assert len(BAD_REQUESTS) >= 30
    assert len({row.id for row in BAD_REQUESTS}) == len(BAD_REQUESTS)


@pytest.mark.parametrize(
    ("method", "path", "body", "data", "headers", "auth_kind", "status", "code", "mention", "header"), BAD_REQUESTS
)
def test_bad_request_is_refused_and_changes_nothing(
    client, auth, seeded, method, path, body, data, headers, auth_kind, status, code, mention, header
):
    """A bad request answers its status as problem+json with a useful detail and code, and changes nothing."""
    before = snapshot(client)
    all_headers = {"X-User-Id": "tester", **(getattr(auth, auth_kind) if auth_kind else {}), **headers}
    kwargs: dict[str, Any] = {"headers": all_headers}
    if body is not UNSET:
        kwargs["json"] = body
    elif data is not None:
        kwargs["data"] = data
        kwargs["content_type"] = "application/json"

    response = client.open(path.format(job=seeded), method=method.upper(), **kwargs)

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    problem = response.get_json()
    assert {"type", "title", "status", "detail", "code"} <= problem.keys()
    assert problem["status"] == status
    assert problem["code"] == code
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and len(problem["detail"]) >= 10
    assert "Traceback" not in problem["detail"] and "<html" not in response.get_data(as_text=True).lower()
    if mention is not None:
        assert mention in problem["detail"]
        if problem.get("errors"):
            assert mention in {error["field"] for error in problem["errors"]}
    if header is not None:
        name, text = header
        assert text in response.headers.get(name, "")

    assert snapshot(client) == before
    # Nor did it use up any of the tester's hourly free submissions.
    limit = before["config"]["RATE_LIMIT"]
    for _ in range(limit):
        assert client.post("/translate", headers={"X-User-Id": "tester"}).status_code == 202
    assert client.post("/translate", headers={"X-User-Id": "tester"}).status_code == 429
