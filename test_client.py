"""Integration test: the whole product, as a user meets it, through the real server and the real client.

Run it as a script to read the walk-through (`python test_client.py`; its output is kept in
test_output.txt), or let pytest run it with the rest of the suite (each step is one test).

It starts `python server.py` on the port it chooses (PORT=0) with fast settings, waits until it listens, walks
through the product step by step (asserting everything it shows), and stops the server however it ends.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from client import (
    AuthenticationError,
    Job,
    JobFailedError,
    RateLimitError,
    TranslationClient,
)
from simulator.testing import ServerProcess

ROOT = Path(__file__).resolve().parent
TOKEN = "integration-admin-token"
SETTINGS = {
    "TRANSLATION_DELAY": "0.6",  # a free attempt takes 0.6 s, a premium one 0.3 s
    "PREMIUM_DELAY_FACTOR": "0.5",
    "DELAY_JITTER": "0.1",
    "ERROR_RATE": "0",
    "MAX_RETRIES": "2",
    "RATE_LIMIT": "3",
    "WORKERS": "2",
    "PROCESSING_MODE": "manual",
    "MAX_WAIT": "10",
    "ADMIN_TOKEN": TOKEN,
    "RANDOM_SEED": "2026",
}


def say(text: str = "") -> None:
    """Print one line of the narrative."""
    print(text, flush=True)


def short(job: Job | dict[str, Any]) -> str:
    """Describe a job in one short line."""
    j = job if isinstance(job, Job) else Job.from_dict(job)
    position = f", queue position {j.queue_position}" if j.queue_position else ""
    return f"{j.job_id[:8]} {j.role:<7} {j.user_id:<6} {j.status}{position}"


class Server(ServerProcess):
    """`python server.py` in a subprocess on the port it chose (PORT=0), with SETTINGS."""

    def __init__(self) -> None:
        super().__init__(SETTINGS, cwd=ROOT)
        started = time.monotonic()
        self.start()
        self.startup_seconds = time.monotonic() - started


class Walk:
    """What the steps share: the server's URL, an admin client and the jobs made so far."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = TranslationClient(url, admin_token=TOKEN, user_id="admin")

    def settle(self) -> None:
        """Wait until every job is finished, so that the next step's settings apply to its own jobs only."""
        unfinished = [j.job_id for j in self.admin.jobs() if not j.done]
        if unfinished:
            self.admin.wait_for_all(unfinished, timeout=30)

    def client(self, user: str, **kwargs: Any) -> TranslationClient:
        """Return a client acting as `user`."""
        return TranslationClient(self.url, user_id=user, admin_token=TOKEN, **kwargs)


# ------------------------------------------------------------------------------------------------ steps


def step_health(walk: Walk) -> None:
    """The server is up and empty."""
    health = walk.admin.health()
    say(f"GET /healthz -> {health}")
    assert health["status"] == "ok" and health["jobs"] == 0


def step_manual_priority(walk: Walk) -> None:
    """In manual mode, process_jobs starts premium jobs first and keeps FIFO within a role."""
    say("Manual mode: nothing starts until an admin calls POST /process_jobs.")
    order = [("alice", "free"), ("bob", "free"), ("carol", "premium"), ("dave", "premium"), ("erin", "free")]
    submitted = []
    for user, role in order:
        job = walk.client(user).submit(role)
        submitted.append(job)
        say(f"  submitted {short(job)}")
    queue = walk.admin.queue()
    queued = [j["job_id"] for j in queue["queued"]]
    say("GET /queue, in start order:")
    for j in queue["queued"]:
        say(f"  {j['queue_position']}. {short(j)}")
    expected = [submitted[i].job_id for i in (2, 3, 0, 1, 4)]
    assert queued == expected, "premium first, then FIFO within each role"

    first = walk.admin.process_jobs(1)
    say(f"POST /process_jobs {{count: 1}} -> started {short(first[0])}")
    assert [j.job_id for j in first] == [submitted[2].job_id]
    rest = walk.admin.process_jobs(10)
    say(f"POST /process_jobs {{count: 10}} -> started {', '.join(j.user_id for j in rest)}")
    assert [j.job_id for j in rest] == expected[1:]
    started = time.monotonic()
    finals = walk.admin.wait_for_all([j.job_id for j in submitted], timeout=20)
    say(f"wait_for_all: all {len(finals)} completed after {time.monotonic() - started:.2f} s")
    assert all(j.status == "completed" for j in finals.values())
    first_start = min(finals.values(), key=lambda j: j.started_at or j.created_at)
    assert first_start.job_id == submitted[2].job_id, "the premium job started first"


def step_auto_long_poll(walk: Walk) -> None:
    """In auto mode a job starts at once; the client long-polls and learns of the end within milliseconds."""
    settings = walk.admin.update_config(PROCESSING_MODE="auto")
    say(f"POST /config {{PROCESSING_MODE: auto}} -> mode is now {settings['PROCESSING_MODE']}")
    assert settings["PROCESSING_MODE"] == "auto"
    updates: list[str] = []
    t0 = time.monotonic()

    def progress(job: Job) -> None:
        updates.append(job.status)
        say(f"  on_progress at {time.monotonic() - t0:5.2f} s: {job.status}, {job.progress}%, {job.stage}")

    with walk.client("frank") as tc:
        job = tc.translate("free", video_url="https://videos.example/talk.mp4", target_language="de",
                           on_progress=progress, timeout=20)
        known = time.time()
    lag_ms = (known - job.finished_at.timestamp()) * 1000 if job.finished_at else float("nan")
    say(f"translate() -> {job.status} in {time.monotonic() - t0:.2f} s; {tc.status_requests} status request(s), "
        f"long-polling: {tc.server_long_polls}, seen {lag_ms:.0f} ms after it finished")
    assert job.status == "completed" and job.video_url == "https://videos.example/talk.mp4"
    assert updates[0] == "pending" and updates[-1] == "completed"
    assert tc.server_long_polls is True and tc.status_requests <= 2
    assert lag_ms < 250


def step_duplicate_guard(walk: Walk) -> None:
    """Submitting the same video again answers the job already made (Idempotency-Key from user, URL, language)."""
    with walk.client("frank") as tc:
        again = tc.submit("free", video_url="https://videos.example/talk.mp4", target_language="de")
    history = walk.admin.jobs(user_id="frank")
    say(f"frank submits the same video again -> {short(again)}; frank has {len(history)} job(s)")
    assert len(history) == 1 and history[0].job_id == again.job_id


def step_rate_limit(walk: Walk) -> None:
    """RATE_LIMIT free submissions per user and hour pass; the next gets 429 with Retry-After; premium is free."""
    with walk.client("gina") as tc:
        for n in range(3):
            tc.submit("free")
            say(f"  gina's free submission {n + 1} accepted")
        try:
            tc.submit("free")
        except RateLimitError as e:
            say(f"  submission 4 refused: {e.status} {e.code}, retry after {e.retry_after:.0f} s")
            assert e.status == 429 and e.retry_after is not None and e.retry_after > 0
        else:
            raise AssertionError("the fourth free submission should be refused")
        premium = tc.submit("premium")
        say(f"  but premium is not limited: {short(premium)}")
    with walk.client("hank") as other:
        say(f"  and another user is unaffected: {short(other.submit('free'))}")
    walk.settle()


def step_cancellation(walk: Walk) -> None:
    """Cancelling needs the admin token; with it the job is cancelled and the reason kept."""
    walk.settle()
    walk.admin.update_config(TRANSLATION_DELAY=30)
    job = walk.client("ivan").submit("free")
    say(f"TRANSLATION_DELAY is now 30 s; ivan's job: {short(job)}")
    for label, token in (("without a token", None), ("with a wrong token", "guess")):
        with TranslationClient(walk.url, admin_token=token) as intruder:
            try:
                intruder.cancel_job(job.job_id, "not mine")
            except AuthenticationError as e:
                say(f"  cancel {label} -> {e.status} {e.code}")
                assert e.status == 401
            else:
                raise AssertionError(f"cancel {label} should be refused")
    answer = walk.admin.cancel_job(job.job_id, "customer withdrew the order")
    say(f"  cancel with the token -> {answer['message']}")
    final = walk.admin.get_status(job.job_id)
    say(f"  GET /status -> {final.status}, reason {final.cancel_reason!r}, result {final.result!r}")
    assert final.status == "cancelled" and final.cancel_reason == "customer withdrew the order"
    walk.admin.update_config(TRANSLATION_DELAY=0.6)


def step_failures(walk: Walk) -> None:
    """With ERROR_RATE 1 every attempt fails; after 1 + MAX_RETRIES attempts the job is permanently_failed."""
    walk.settle()
    walk.admin.update_config(ERROR_RATE=1.0)
    say("POST /config {ERROR_RATE: 1.0}: every attempt fails from now on")
    seen: list[str] = []
    with walk.client("judy") as tc:
        try:
            tc.translate("premium", timeout=20, on_progress=lambda j: seen.append(f"{j.status}#{j.attempts}"))
        except JobFailedError as e:
            job = e.job
            say(f"  translate() raised JobFailedError: {e}")
        else:
            raise AssertionError("the job should fail")
    say(f"  statuses seen: {' -> '.join(seen)}")
    say(f"  attempts {job.attempts} (1 + MAX_RETRIES {job.max_retries}), last error {job.error['code']!r}"
        if job.error else "")
    assert job.status == "permanently_failed" and job.attempts == 3
    assert job.error is not None and job.error["code"] in ("timeout", "internal_error", "unknown")
    walk.admin.update_config(ERROR_RATE=0)


def step_runtime_config(walk: Walk) -> None:
    """A runtime change is answered as the whole new config and shows at once; a bad one changes nothing."""
    settings = walk.admin.update_config(WORKERS=50, MAX_RETRIES=1)
    say(f"POST /config {{WORKERS: 50, MAX_RETRIES: 1}} -> WORKERS {settings['WORKERS']}, "
        f"MAX_RETRIES {settings['MAX_RETRIES']}")
    assert walk.admin.queue()["workers"] == 50
    try:
        walk.admin.update_config(WORKERS=0, ERROR_RATE=0.5)
    except Exception as e:
        say(f"POST /config {{WORKERS: 0, ERROR_RATE: 0.5}} -> {e}")
    after = walk.admin.get_config()
    assert after["WORKERS"] == 50 and after["ERROR_RATE"] == 0
    assert "ADMIN_TOKEN" not in after


def step_parallel_submissions(walk: Walk) -> None:
    """200 submissions from 8 threads make 200 distinct jobs, all listed."""
    before = len(walk.admin.jobs())

    def submit_many(worker: int) -> list[str]:
        with walk.client(f"load{worker}") as tc:
            return [tc.submit("premium").job_id for _ in range(25)]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [i for batch in pool.map(submit_many, range(8)) for i in batch]
    elapsed = time.monotonic() - started
    listed = {j.job_id for j in walk.admin.jobs()}
    say(f"8 threads x 25 premium submissions in {elapsed:.2f} s -> {len(set(ids))} distinct ids; "
        f"/jobs lists {len(listed)} jobs (was {before})")
    assert len(ids) == len(set(ids)) == 200
    assert set(ids) <= listed and len(listed) == before + 200
    with walk.client("watcher") as watcher:
        finals = watcher.wait_for_all(ids, timeout=30)
    assert all(j.status == "completed" for j in finals.values())
    say(f"  wait_for_all: all 200 completed {time.monotonic() - started:.2f} s after the first submission; "
        f"{watcher.status_requests} status requests from one thread")


def step_listing(walk: Walk) -> None:
    """/jobs groups by status and role with every key present; ?user_id= gives one user's history."""
    grouped = walk.admin.list_jobs()
    counts = {status: {role: len(by_id) for role, by_id in roles.items()} for status, roles in grouped.items()}
    say("GET /jobs, counts by status and role:")
    for status, roles in counts.items():
        say(f"  {status:<19} free {roles['free']:>3}  premium {roles['premium']:>3}")
    assert set(counts) == {"pending", "failed", "completed", "permanently_failed", "cancelled"}
    assert counts["cancelled"]["free"] == 1 and counts["permanently_failed"]["premium"] == 1
    gina = walk.admin.jobs(user_id="gina")
    say(f"GET /jobs?user_id=gina -> {len(gina)} jobs: {', '.join(j.role for j in gina)}")
    assert [j.role for j in gina] == ["free", "free", "free", "premium"]


def step_cleanup(walk: Walk) -> None:
    """Cleanup removes completed jobs by default, other finished statuses on request, and never unfinished ones."""
    walk.admin.wait_for_all([j.job_id for j in walk.admin.jobs() if not j.done], timeout=30)
    total = len(walk.admin.jobs())
    removed = walk.admin.cleanup()
    say(f"POST /cleanup -> removed {removed} completed job(s) of {total}")
    left = walk.admin.jobs()
    assert removed > 0 and all(j.status != "completed" for j in left)
    removed_more = walk.admin.cleanup(["cancelled", "permanently_failed"])
    say(f"POST /cleanup {{statuses: [cancelled, permanently_failed]}} -> removed {removed_more}")
    assert removed_more == 2 and walk.admin.jobs() == []


STEPS: list[Callable[[Walk], None]] = [
    step_health,
    step_manual_priority,
    step_auto_long_poll,
    step_duplicate_guard,
    step_rate_limit,
    step_cancellation,
    step_failures,
    step_runtime_config,
    step_parallel_submissions,
    step_listing,
    step_cleanup,
]


# ------------------------------------------------------------------------------------------ as pytest


@pytest.fixture(scope="module")
def walk() -> Iterator[Walk]:
    server = Server()
    try:
        yield Walk(server.url)
    finally:
        server.stop()


_failed = threading.Event()


@pytest.mark.parametrize("step", STEPS, ids=[s.__name__.removeprefix("step_") for s in STEPS])
def test_walkthrough(walk: Walk, step: Callable[[Walk], None]) -> None:
    """Each step of the walk-through works against the real server (steps build on each other)."""
    if _failed.is_set():
        pytest.fail("an earlier step failed; this one depends on it")
    try:
        step(walk)
    except BaseException:
        _failed.set()
        raise


# ------------------------------------------------------------------------------------------ as a script


def main() -> int:
    """Run every step, printing the narrative; return 0 if all passed."""
    started = time.monotonic()
    say("Integration test of the video translation simulator")
    say("=" * 52)
    server = Server()
    say(f"Started `python server.py` on {server.url} (answered after {server.startup_seconds:.2f} s) with")
    say("  " + ", ".join(f"{k}={v}" for k, v in SETTINGS.items() if k != "ADMIN_TOKEN"))
    failed = 0
    try:
        walk = Walk(server.url)
        for number, step in enumerate(STEPS, 1):
            say()
            say(f"{number}. {step.__doc__}")
            step_started = time.monotonic()
            try:
                step(walk)
            except Exception as e:
                failed += 1
                say(f"   FAILED: {e.__class__.__name__}: {e}")
                break
            say(f"   ok ({time.monotonic() - step_started:.2f} s)")
    finally:
        code = server.stop()
        say()
        say(f"Stopped the server (exit code {code}).")
    outcome = "FAILED" if failed else "passed"
    say(f"{len(STEPS) if not failed else number - 1} of {len(STEPS)} steps passed; {outcome} in "
        f"{time.monotonic() - started:.1f} s.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
