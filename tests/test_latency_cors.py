"""RESPONSE_DELAY (latency from a distribution, per route) and CORS_ORIGINS (off unless origins are listed)."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import pytest

import config
from server import create_app
from simulator.clock import ManualClock
from simulator.latency import MAX_DELAY_MS, DelayRule, Distribution, delay_seconds, parse_response_delay
from tests.conftest import FAST, START


def app_with(**settings: Any):
    """Return a test client of an app on a manual clock with FAST plus `settings`."""
    return create_app({**FAST, **settings}, clock=ManualClock(START)).test_client()


def timed(call: Any) -> tuple[Any, float]:
    """Return what `call()` returns and how many real seconds it took."""
    began = time.perf_counter()
    result = call()
    return result, time.perf_counter() - began


# ------------------------------------------------------------------------------------------------ the syntax


def test_rules_parse_with_their_routes_and_distributions() -> None:
    """Each `;`-separated rule has its patterns (none: every API route) and its distribution."""
    rules = parse_response_delay("/translate=uniform:100-500; /status/*, /jobs = fixed:50 ;lognormal:90:0.4")
    assert rules == (
        DelayRule(("/translate",), Distribution("uniform", 100, 500)),
        DelayRule(("/status/*", "/jobs"), Distribution("fixed", 50)),
        DelayRule((), Distribution("lognormal", 90, 0.4)),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slow", "unknown distribution 'slow'"),
        ("fixed:-5", "the delay must be a number of milliseconds in [0, 300000]"),
        ("fixed:abc", "the delay"),
        ("fixed:300001", "the delay"),
        ("uniform:100", "uniform needs LOW-HIGH"),
        ("uniform:500-100", "LOW ≤ HIGH"),
        ("lognormal:90", "lognormal needs MEDIAN:SIGMA"),
        ("lognormal:0:0.4", "MEDIAN must be a number of milliseconds in (0, 300000]"),
        ("lognormal:90:-1", "SIGMA must be a number in [0, 10]"),
        ("status=fixed:5", "path pattern"),
        ("/st*tus=fixed:5", "path pattern"),
        ("fixed:5;", "rule 2"),
        ("fixed:5; bogus:1", "rule 2 ('bogus:1')"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_the_syntax(text: str, message: str) -> None:
    """A malformed RESPONSE_DELAY is refused with the rule, what is wrong with it and the syntax."""
    with pytest.raises(ValueError) as caught:
        parse_response_delay(text)
    assert message in str(caught.value)
    assert "fixed:MS, uniform:LOW-HIGH or lognormal:MEDIAN:SIGMA" in str(caught.value)


def test_a_bad_response_delay_stops_the_settings_with_the_key_named() -> None:
    """RESPONSE_DELAY and CORS_ORIGINS are checked like every setting, at start-up and at runtime."""
    with pytest.raises(config.ConfigError) as caught:
        config.load(environ={"RESPONSE_DELAY": "fast", "CORS_ORIGINS": "example.com"}, dotenv_path=None)
    assert set(caught.value.errors) == {"RESPONSE_DELAY", "CORS_ORIGINS"}
    loaded = config.load(environ={"RESPONSE_DELAY": "", "CORS_ORIGINS": ""}, dotenv_path=None)
    assert (loaded.RESPONSE_DELAY, loaded.CORS_ORIGINS) == (None, None)


# ------------------------------------------------------------------------------------------------ the draws


def test_each_distribution_draws_within_its_bounds() -> None:
    """fixed is exact, uniform stays between its bounds, lognormal centres on its median and never passes the cap."""
    rng = random.Random(1)
    assert Distribution("fixed", 200).sample_ms(rng) == 200
    uniform = [Distribution("uniform", 100, 500).sample_ms(rng) for _ in range(500)]
    assert 100 <= min(uniform) and max(uniform) <= 500
    lognormal = [Distribution("lognormal", 90, 0.4).sample_ms(rng) for _ in range(2001)]
    assert 80 <= statistics.median(lognormal) <= 100
    assert max(Distribution("lognormal", MAX_DELAY_MS, 10).sample_ms(rng) for _ in range(50)) <= MAX_DELAY_MS


def test_the_first_matching_rule_decides_and_controls_are_never_delayed() -> None:
    """Rules are tried in order; a rule without routes skips liveness and docs; /admin/… is never delayed."""
    rules = parse_response_delay("/status/*=fixed:10; fixed:20")
    rng = random.Random(0)
    assert delay_seconds(rules, "/status/abc", "/status/{job_id}", rng) == 0.010
    assert delay_seconds(rules, "/jobs", "/jobs", rng) == 0.020
    assert delay_seconds(rules, "/healthz", "/healthz", rng) == 0.0
    assert delay_seconds(parse_response_delay("/admin/*=fixed:10"), "/admin/clock", "/admin/clock", rng) == 0.0


# ------------------------------------------------------------------------------------------------ over HTTP


def test_response_delay_holds_the_chosen_routes_only() -> None:
    """With /status/*=fixed:150 a status read takes ≥ 150 ms, a listing and liveness do not."""
    client = app_with(RESPONSE_DELAY="/status/*=fixed:150")
    job_id = client.post("/translate").get_json()["job_id"]
    read, slow = timed(lambda: client.get(f"/status/{job_id}"))
    assert read.status_code == 200 and slow >= 0.15
    assert timed(lambda: client.get("/jobs"))[1] < 0.1
    assert timed(lambda: client.get("/healthz"))[1] < 0.1


def test_response_delay_changes_at_runtime_and_shows_in_the_journal(auth) -> None:
    """POST /config switches the delay on; the journal's duration includes it; null switches it off."""
    client = app_with()
    assert client.post("/config", json={"RESPONSE_DELAY": "fixed:120"}, headers=auth.ok).status_code == 200
    client.get("/queue")
    entry = client.get("/admin/requests?path=/queue", headers=auth.ok).get_json()["requests"][0]
    assert entry["duration_ms"] >= 120
    client.post("/config", json={"RESPONSE_DELAY": None}, headers=auth.ok)
    assert timed(lambda: client.get("/queue"))[1] < 0.1


def test_response_delay_does_not_touch_the_answer() -> None:
    """A delayed answer is the answer an undelayed server gives: the same status and body."""
    fast, slow = app_with(RANDOM_SEED=3), app_with(RANDOM_SEED=3, RESPONSE_DELAY="fixed:30")
    assert fast.post("/translate").get_json() == slow.post("/translate").get_json()


# ------------------------------------------------------------------------------------------------ CORS

ALLOWED = "https://app.example.com"


def test_cors_is_off_by_default() -> None:
    """Without CORS_ORIGINS no answer carries CORS headers, whatever the Origin."""
    response = app_with().get("/healthz", headers={"Origin": ALLOWED})
    assert not [name for name in response.headers.keys() if name.lower().startswith("access-control-")]


def test_an_allowed_origin_may_read_the_answer_and_its_headers() -> None:
    """A listed origin gets Access-Control-Allow-Origin and the headers it may read; Vary says it depends."""
    client = app_with(CORS_ORIGINS=f"{ALLOWED}, http://localhost:3000")
    response = client.post("/translate", headers={"Origin": ALLOWED})
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Location" in response.headers["Access-Control-Expose-Headers"]
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    assert "Origin" in response.headers["Vary"]


def test_another_origin_gets_no_cors_headers() -> None:
    """An origin that is not listed is not allowed (the browser then hides the answer)."""
    response = app_with(CORS_ORIGINS=ALLOWED).get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_a_preflight_says_what_may_be_sent_and_uses_up_no_submission() -> None:
    """OPTIONS with Access-Control-Request-Method answers 204 with methods, headers and max age, and is not counted."""
    client = app_with(CORS_ORIGINS=ALLOWED, RATE_LIMIT=1)
    preflight = client.options("/translate", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-user-id, idempotency-key"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    for header in ("X-User-Id", "Idempotency-Key", "Content-Type", "Authorization", "X-Simulate"):
        assert header in preflight.headers["Access-Control-Allow-Headers"]
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    assert client.post("/translate", headers={"Origin": ALLOWED}).status_code == 202  # the hour's one submission


@pytest.mark.parametrize("path", ["/translate", "/v2/video_translate", "/status/some-job"])
def test_a_preflight_needs_no_api_key_in_keys_mode_and_allows_sending_one(path: str) -> None:
    """AUTH_MODE=keys: a browser's preflight (which never carries X-Api-Key) is answered, and allows X-Api-Key."""
    client = app_with(CORS_ORIGINS=ALLOWED, AUTH_MODE="keys")
    preflight = client.options(path, headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET",
                                              "Access-Control-Request-Headers": "x-api-key"})
    assert preflight.status_code == 204
    assert "X-Api-Key" in preflight.headers["Access-Control-Allow-Headers"]
    assert client.get(path, headers={"Origin": ALLOWED}).status_code in (401, 405)  # the request itself still is


def test_a_star_allows_any_origin_and_errors_are_readable_too() -> None:
    """CORS_ORIGINS=* lets any origin read any answer, a problem+json error included."""
    response = app_with(CORS_ORIGINS="*").get("/status/nope", headers={"Origin": "http://localhost:5173"})
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_origins_change_at_runtime(auth) -> None:
    """POST /config turns CORS on for an origin, and null turns it off again."""
    client = app_with()
    client.post("/config", json={"CORS_ORIGINS": ALLOWED}, headers=auth.ok)
    assert client.get("/healthz", headers={"Origin": ALLOWED}).headers["Access-Control-Allow-Origin"] == ALLOWED
    client.post("/config", json={"CORS_ORIGINS": None}, headers=auth.ok)
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", headers={"Origin": ALLOWED}).headers
