"""Reset: every job, idempotency key and rate-limit window gone, start-up settings back, in one step."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import config
from jobs import JobEngine, JobNotFound, MemoryStore, ReadFault, Scenario
from server import create_app
from simulator.clock import ManualClock
from simulator.store.sqlite import SqliteStore
from tests.conftest import FAST, START, make_engine


def busy_engine(**overrides: Any) -> tuple[JobEngine, ManualClock, list[str]]:
    """Return an engine (store of `each_store`) holding a finished, a running and a queued job, all keyed."""
    clock = ManualClock(START)
    engine = make_engine(clock, WORKERS=1, **overrides)  # type: ignore[arg-type]
    ids = [engine.submit("free", "alice", idempotency_key=f"k{i}")[0]["job_id"] for i in range(3)]
    engine.advance_clock(10)
    assert [engine.get(i)["stage"] for i in ids] == ["finished", "translating", "queued"]
    return engine, clock, ids


@pytest.mark.usefixtures("each_store")
def test_reset_removes_every_job_and_idempotency_key() -> None:
    """After a reset nothing is stored, queued or running, and an old Idempotency-Key makes a new job."""
    engine, _, ids = busy_engine()
    assert engine.reset() == 3
    assert engine.counts() == {"jobs": 0, "queued": 0, "running": 0}
    for job_id in ids:
        with pytest.raises(JobNotFound):
            engine.get(job_id)
    view, replayed = engine.submit("free", "alice", idempotency_key="k0")
    assert replayed is False
    assert (view["attempts"], engine.total()) == (1, 1)
    assert engine.check_invariants() == []


@pytest.mark.usefixtures("each_store")
def test_reset_publishes_a_removal_of_each_job() -> None:
    """Followers of the change feed (event streams, webhooks) learn that every job is gone."""
    engine, _, ids = busy_engine()
    cursor = engine.feed.cursor()
    engine.reset()
    assert sorted((c.kind, c.job_id) for c in engine.feed.since(cursor)) == sorted(("removed", i) for i in ids)


@pytest.mark.usefixtures("each_store")
def test_reset_restores_the_start_up_settings_unless_told_to_keep_them() -> None:
    """Runtime changes are undone by a reset, and kept by a reset that keeps the config."""
    engine, _, _ = busy_engine()
    engine.configure({"WORKERS": 5, "ERROR_RATE": 0.5})
    engine.reset(restore_config=False)
    assert (engine.settings.WORKERS, engine.settings.ERROR_RATE) == (5, 0.5)
    engine.reset()
    assert engine.settings == engine.config.initial


@pytest.mark.usefixtures("each_store")
def test_reset_leaves_the_clock_where_it_is_and_forgets_scripted_reads() -> None:
    """Simulated time does not go back; a job's used-up status faults do not outlive it."""
    engine, clock, _ = busy_engine()
    script = Scenario.parse({"status_faults": [{"status": 503}]})
    job_id = engine.submit("free", "bob", simulate=script)[0]["job_id"]
    assert engine.take_read_fault(job_id) == ReadFault(503, None)
    engine.reset()
    assert clock() == START + 10
    assert engine._reads == {}


def test_a_reset_seeded_engine_draws_what_a_fresh_one_draws() -> None:
    """With RANDOM_SEED, the ids and durations after a reset are those of a newly started server (memory store)."""
    settings = config.from_mapping({**FAST, "DELAY_JITTER": 0.5, "RANDOM_SEED": 11})

    def run(engine: JobEngine) -> list[tuple[str, Any]]:
        views = [engine.submit("free", f"u{i}")[0] for i in range(3)]
        return [(v["job_id"], v["eta_seconds"]) for v in views]

    used = JobEngine(settings, store=MemoryStore(), clock=ManualClock(START))
    run(used)
    used.reset()
    assert run(used) == run(JobEngine(settings, store=MemoryStore(), clock=ManualClock(START)))


def test_a_reset_sqlite_store_deletes_its_rows_and_keeps_its_counter(tmp_path) -> None:
    """On SQLite a reset deletes every row; reopened, the store is empty and new ids never repeat old ones."""
    path = str(tmp_path / "jobs.db")
    settings = config.from_mapping({**FAST, "RANDOM_SEED": 3})
    engine = JobEngine(settings, store=SqliteStore(path), clock=ManualClock(START))
    before = {engine.submit("free", "u")[0]["job_id"] for _ in range(3)}
    engine.reset()
    engine.store.close()
    reopened = JobEngine(settings, store=SqliteStore(path), clock=ManualClock(START))
    assert reopened.total() == 0
    assert not {reopened.submit("free", "u")[0]["job_id"] for _ in range(3)} & before
    reopened.store.close()


def test_reset_answers_a_held_long_poll_with_job_not_found() -> None:
    """A wait held on a job ends when a reset removes the job: the job is gone."""
    engine = make_engine(ManualClock(START), PROCESSING_MODE="manual")  # type: ignore[arg-type]
    job_id = engine.submit()[0]["job_id"]
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            engine.wait_for_change(job_id, timeout=5)
        except JobNotFound as e:
            outcome["error"] = e

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    deadline = time.monotonic() + 2
    while engine.feed.waiting() == 0 and time.monotonic() < deadline:
        threading.Event().wait(0.005)
    began = time.monotonic()
    engine.reset()
    waiter.join(3)
    assert isinstance(outcome.get("error"), JobNotFound)
    assert time.monotonic() - began < 2


# ------------------------------------------------------------------------------------------------ over HTTP


def test_post_admin_reset_leaves_the_server_as_freshly_started(auth) -> None:
    """Jobs, idempotency keys, rate-limit windows and runtime settings are gone; the answer counts the jobs."""
    client = create_app({**FAST, "RATE_LIMIT": 1}, clock=ManualClock(START)).test_client()
    user = {"X-User-Id": "alice", "Idempotency-Key": "order-1"}
    first = client.post("/translate", headers=user).get_json()["job_id"]
    assert client.post("/translate", headers={"X-User-Id": "alice"}).status_code == 429
    client.post("/config", json={"WORKERS": 9}, headers=auth.ok)

    answer = client.post("/admin/reset", headers=auth.ok)
    assert answer.status_code == 200
    assert answer.get_json() == {"removed": 1, "config_restored": True}
    assert client.get("/healthz").get_json()["jobs"] == 0
    assert client.get("/config").get_json()["WORKERS"] == FAST["WORKERS"]
    again = client.post("/translate", headers=user)  # the hour's window is gone, and so is the key
    assert again.status_code == 202
    assert "Idempotent-Replayed" not in again.headers
    # With RANDOM_SEED, a fresh start draws the same first id again.
    assert again.get_json()["job_id"] == first


def test_post_admin_reset_can_keep_the_config(client, auth) -> None:
    """{"keep_config": true} removes the jobs but keeps runtime settings."""
    client.post("/translate")
    client.post("/config", json={"MAX_RETRIES": 0}, headers=auth.ok)
    answer = client.post("/admin/reset", json={"keep_config": True}, headers=auth.ok).get_json()
    assert answer == {"removed": 1, "config_restored": False}
    assert client.get("/config").get_json()["MAX_RETRIES"] == 0


def test_post_admin_reset_needs_the_admin_token(client, auth) -> None:
    """Without the admin token nothing is reset."""
    client.post("/translate")
    assert client.post("/admin/reset", headers=auth.wrong).status_code == 401
    assert client.get("/healthz").get_json()["jobs"] == 1
