"""End to end: a real server with CLOCK=manual, driven through the pytest plugin, the clients and the CLI.

One server serves the module (`server.reset()` starts each test from a clean slate, as a client
developer's shared server would). The scenario test walks a job through fail → retry → fail → retry →
succeed with no real waiting: the client's `sleep` is where simulated time and the script move on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

import client as cli
from simulator.client import AsyncTranslationClient, Job, ServerError, TransportError
from simulator.testing.pytest_plugin import TranslationServer, start_translation_server

#: The server of the module: a manual clock, attempts of 10 s, no random failures, processing by hand.
SETTINGS = {"CLOCK": "manual", "TRANSLATION_DELAY": 10, "DELAY_JITTER": 0, "ERROR_RATE": 0, "RATE_LIMIT": 2,
            "RANDOM_SEED": 17}


@pytest.fixture(scope="module")
def shared() -> Iterator[TranslationServer]:
    server = start_translation_server(SETTINGS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(shared: TranslationServer) -> TranslationServer:
    """The module's server, reset: no jobs, no journal, the start-up settings."""
    shared.reset()
    return shared


class ScriptedTime:
    """A client's clock and sleep in which simulated time moves only through a script of steps.

    The client calls `sleep` between requests; each call first plays the next step of the scenario on the
    server, but only once the client has seen (through on_progress) what the previous step did. No real
    time passes: the client's clock moves by what it asked to sleep.
    """

    def __init__(self, steps: list[tuple[str, Callable[[], Any]]], out: Callable[[str], None]) -> None:
        self.now = 0.0
        self.steps = deque(steps)
        self.seen: list[Job] = []
        self.played = 0
        self.slept = 0.0
        self.out = out

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        if self.steps and len(self.seen) > self.played:
            name, step = self.steps.popleft()
            self.out(f"  step {self.played + 1}: {name}")
            step()
            self.played += 1

    def on_progress(self, job: Job) -> None:
        self.seen.append(job)
        error = f", error {job.error['code']}: {job.error['message']}" if job.error else ""
        self.out(f"  client sees: {job.status:<9} stage {job.stage:<11} attempt {job.attempts}{error}")


def test_a_job_fails_is_retried_fails_is_retried_and_succeeds_with_no_real_waiting(server) -> None:
    """fail → retry → fail → retry → succeed on a manual clock: each status seen, `failed` included, and the journal
    counts exactly the status requests wait_for_completion sent."""
    lines: list[str] = []
    out = lines.append
    server.admin.update_config(PROCESSING_MODE="manual")  # `failed` lasts until the retry is started
    script = {"outcomes": ["fail", "fail", "succeed"], "attempt_seconds": [1, 1, 2],
              "fail_code": "timeout", "fail_message": "The GPU node was lost."}
    began = time.monotonic()
    start = server.clock()["epoch_seconds"]

    scripted = ScriptedTime([
        ("process: attempt 1 starts", lambda: server.admin.process_jobs()),
        ("advance 1 s: attempt 1 fails", lambda: server.advance(1)),
        ("process: the retry (attempt 2) starts", lambda: server.admin.process_jobs()),
        ("advance 1 s: attempt 2 fails", lambda: server.advance(1)),
        ("process: the retry (attempt 3) starts", lambda: server.admin.process_jobs()),
        ("advance 2 s: attempt 3 succeeds", lambda: server.advance(2)),
    ], out)
    tc = server.client(user_id="scenario", clock=scripted.clock, sleep=scripted.sleep)
    job = tc.submit(simulate=script)
    out(f"submitted {job.job_id} with simulate={json.dumps(script)}")
    final = tc.wait_for_completion(job, timeout=60, on_progress=scripted.on_progress)

    seen = [(j.status, j.stage, j.attempts) for j in scripted.seen]
    assert seen == [
        ("pending", "queued", 0),
        ("pending", "translating", 1),
        ("failed", "queued", 1),
        ("pending", "translating", 2),
        ("failed", "queued", 2),
        ("pending", "translating", 3),
        ("completed", "finished", 3),
    ]
    failures = [j.error for j in scripted.seen if j.status == "failed"]
    assert [(e["code"], e["message"], e["attempt"]) for e in failures] == [
        ("timeout", "The GPU node was lost.", 1), ("timeout", "The GPU node was lost.", 2)]
    assert (final.status, final.attempts, final.error) == ("completed", 3, None)
    assert final.finished_at is not None and final.finished_at.timestamp() == pytest.approx(start + 4, abs=1e-3)

    status_reads = server.count_requests(path=f"/status/{job.job_id}", method="GET")
    entries = server.requests(path="/status/{job_id}")
    out(f"status requests sent by wait_for_completion: {tc.status_requests}; the journal counts {status_reads}: "
        + ", ".join(f"{e['status']} ?{e['query']}" for e in entries))
    assert status_reads == tc.status_requests == 6
    assert all(e["status"] == 200 and "since=" in e["query"] for e in entries)  # each a long-poll, answered at once
    assert server.clock()["epoch_seconds"] == pytest.approx(start + 4)
    real = time.monotonic() - began
    out(f"simulated time: 4 s; the client's pauses: {scripted.slept:.3f} s, none of them real; wall time {real:.2f} s")
    assert scripted.slept < 1 and real < 10
    print("\n" + "\n".join(lines))  # shown with pytest -s


def test_advance_moves_the_hourly_limit_with_the_manual_clock(server) -> None:
    """RATE_LIMIT free submissions, a 429 saying 3600 s; after server.advance(3600) the user may submit again."""
    tc = server.client(user_id="hourly")
    tc.submit()
    tc.submit()
    with pytest.raises(Exception) as refused:
        tc.submit()
    assert refused.value.retry_after == 3600  # type: ignore[attr-defined]
    clock = server.advance(3600)
    assert clock["advanced_seconds"] == 3600 and clock["clock"] == "manual"
    assert tc.submit().status == "pending"


def test_without_advancing_nothing_finishes_in_real_time(server) -> None:
    """On a manual clock no ticker runs: a held long-poll ends by its timeout with the job unchanged."""
    tc = server.client(user_id="still")
    job = tc.submit()
    held = tc.get_status(job.job_id, wait=0.3, since=job.version)
    assert (held.status, held.version, held.progress) == ("pending", job.version, 0)
    server.advance(10)
    assert tc.get_status(job.job_id).status == "completed"


def test_advance_runs_ttl_expiry_and_the_clock_shows_the_next_event(server) -> None:
    """A finished job disappears JOB_TTL after it finished; the clock tells when the next event is due."""
    server.admin.update_config(JOB_TTL=60)
    job = server.client(user_id="ttl").submit()
    assert server.clock()["next_event_in_seconds"] == 10
    server.advance(10)
    assert server.clock()["next_event_in_seconds"] == 60
    server.advance(60)
    assert server.admin.health()["jobs"] == 0
    with pytest.raises(Exception, match="No job"):
        server.admin.get_status(job.job_id)


def test_reset_gives_a_clean_slate_and_the_same_seeded_ids(server) -> None:
    """After server.reset() the jobs, journal and runtime settings are gone, and RANDOM_SEED draws the same ids."""
    first = server.client(user_id="again").submit().job_id
    server.admin.update_config(WORKERS=7)
    answer = server.reset()
    assert answer == {"removed": 1, "config_restored": True}
    assert server.requests() == []
    assert server.admin.get_config()["WORKERS"] == 2
    assert server.client(user_id="again").submit().job_id == first


def test_the_journal_lists_what_a_client_sent_with_filters(server) -> None:
    """server.requests(path=...) lists a client's status reads in order; the filters narrow them."""
    tc = server.client(user_id="journal")
    job = tc.submit()
    tc.get_status(job.job_id)
    tc.get_status(job.job_id)
    entries = server.requests(path="/status/*")
    assert [(e["method"], e["route"], e["status"], e["user_id"]) for e in entries] == [
        ("GET", "/status/{job_id}", 200, "journal")] * 2
    assert server.count_requests(method="POST", user_id="journal") == 1
    assert server.requests(limit=1)[0]["seq"] == entries[-1]["seq"]
    assert server.count_requests(since=server.clock()["now"]) == 3


def test_an_unchanged_client_scripts_a_job_with_the_x_simulate_header(server) -> None:
    """A plain HTTP client sends X-Simulate; its job fails once, then succeeds."""
    answer = requests.post(f"{server.url}/translate", headers={"X-Simulate": json.dumps(
        {"outcomes": ["fail", "succeed"], "attempt_seconds": [3]})}, timeout=5)
    assert answer.status_code == 202
    job = answer.json()
    assert job["simulate"] == {"outcomes": ["fail", "succeed"], "attempt_seconds": [3.0]}
    server.advance(6)
    done = server.admin.get_status(job["job_id"])
    assert (done.status, done.attempts, done.simulate) == ("completed", 2, job["simulate"])


def test_the_client_rides_out_scripted_503s_on_status_reads(server) -> None:
    """Two scripted 503s with Retry-After: 1 are retried after the hinted pause; the wait still ends completed."""
    pauses: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds
        server.advance(10)  # the job can finish meanwhile

    tc = server.client(user_id="faults", clock=lambda: now[0], sleep=sleep)
    job = tc.submit(simulate={"status_faults": [{"status": 503, "retry_after": 1, "times": 2}]})
    final = tc.wait_for_completion(job.job_id, timeout=60)
    assert final.status == "completed"
    assert server.count_requests(path=f"/status/{job.job_id}", status=503) == 2
    assert sum(1 for p in pauses if p >= 1) >= 2  # each 503 was waited out for its Retry-After
    with pytest.raises(ServerError) as caught:
        tc.get_status(tc.submit(simulate={"status_faults": [{"status": 502}]}).job_id)
    assert caught.value.code == "scripted_fault"


def test_response_delay_makes_a_short_client_timeout_fire(server) -> None:
    """With /status/*=fixed:400 a client allowing 0.2 s per request gets a timeout; other routes answer at once."""
    server.admin.update_config(RESPONSE_DELAY="/status/*=fixed:400")
    tc = server.client(user_id="slow", timeout=0.2)
    job = tc.submit()
    with pytest.raises(TransportError, match=r"timed out|no complete answer"):
        tc.get_status(job.job_id)
    assert tc.queue()["queued_total"] == 0
    # The server answers the abandoned read 0.4 s late: let it land in the journal before the next test resets.
    deadline = time.monotonic() + 5
    while server.count_requests(path="/status/*") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.requests(path="/status/*")[0]["duration_ms"] >= 400


def test_cors_preflight_and_answer_on_a_real_socket(server) -> None:
    """With CORS_ORIGINS set, a browser's preflight and the submission after it carry the CORS headers."""
    origin = "http://localhost:5173"
    server.admin.update_config(CORS_ORIGINS=origin)
    preflight = requests.options(f"{server.url}/translate", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        timeout=5)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    submitted = requests.post(f"{server.url}/translate", json={}, headers={"Origin": origin}, timeout=5)
    assert submitted.headers["Access-Control-Allow-Origin"] == origin
    assert "Location" in submitted.headers["Access-Control-Expose-Headers"]


def test_the_async_client_has_the_controls(server) -> None:
    """AsyncTranslationClient advances the clock, reads and counts the journal, and resets."""

    async def main() -> tuple[Any, ...]:
        async with AsyncTranslationClient(server.url, user_id="aio", admin_token=server.admin_token) as tc:
            job = await tc.submit(simulate={"attempt_seconds": [5]})
            await tc.advance_clock(5)
            done = await tc.get_status(job.job_id)
            counted = await tc.count_requests(path="/status/*")
            journal = await tc.request_journal(user_id="aio")
            clock = await tc.get_clock()
            reset = await tc.reset(keep_config=True)
            return done.status, counted, [e["method"] for e in journal], clock["clock"], reset["removed"]

    assert asyncio.run(main()) == ("completed", 1, ["POST", "GET"], "manual", 1)


def test_the_command_line_has_clock_advance_reset_and_requests(server, capsys) -> None:
    """`client.py clock`, `advance`, `requests --count` and `reset` work against the server."""
    base = ["--url", server.url, "--token", server.admin_token, "--user", "cli"]
    assert cli.main([*base, "submit", "--simulate", '{"outcomes": ["succeed"], "attempt_seconds": [2]}']) == 0
    job_id = capsys.readouterr().out.strip()
    assert cli.main([*base, "advance", "2"]) == 0
    assert "manual clock" in capsys.readouterr().out
    assert cli.main([*base, "--json", "status", job_id]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "completed"
    assert cli.main([*base, "requests", "--count", "--path", "/status/*"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert cli.main([*base, "requests", "--method", "POST"]) == 0
    assert "/translate" in capsys.readouterr().out
    assert cli.main([*base, "clock"]) == 0
    assert capsys.readouterr().out.startswith("manual clock, now ")
    assert cli.main([*base, "reset"]) == 0
    assert capsys.readouterr().out.strip() == "reset: removed 1 job(s), settings restored"
    with pytest.raises(SystemExit) as usage:
        cli.main([*base, "submit", "--simulate", "[1]"])
    assert usage.value.code == 2
    assert "not a JSON object" in capsys.readouterr().err
