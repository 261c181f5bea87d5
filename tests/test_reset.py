"""Reset: every job, idempotency key and rate-limit window gone, start-up settings back, in one step.

What a reset keeps: API keys, webhook endpoints and the store's secrets, the set-up a test makes before it
runs. What goes with the jobs: webhook deliveries (the outbox and its log), HeyGen's stored Idempotency-Key
answers, and the count of wrong API keys.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import config
from jobs import JobEngine, JobNotFound, MemoryStore, ReadFault, Scenario
from server import create_app
from simulator.clock import ManualClock
from simulator.store.records import ApiKey, Delivery, Endpoint, Replay
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
    assert sorted((c.kind, c.job_id, c.at) for c in engine.feed.since(cursor)) == sorted(
        ("removed", i, START + 10) for i in ids)  # at the time of the reset


class SettingsRecordingStore(MemoryStore):
    """A memory store that keeps what the engine asks a shared store to tell the other processes."""

    def __init__(self) -> None:
        super().__init__()
        self.told: list[tuple[dict[str, object], bool]] = []

    def record_settings(self, changes: dict[str, object], *, restore: bool = False) -> None:
        self.told.append((dict(changes), restore))


def test_the_store_is_told_every_setting_changed_and_every_reset_of_them() -> None:
    """A shared store relays settings to the other processes: the engine tells it the changed values, and that a
    reset restores everyone's start-up settings (but not when the reset keeps them)."""
    store = SettingsRecordingStore()
    engine = JobEngine(config.from_mapping(FAST), store=store, clock=ManualClock(START))
    engine.configure({"WORKERS": 5, "ERROR_RATE": 0.5})
    engine.reset(restore_config=False)
    engine.reset()
    assert store.told == [({"WORKERS": 5, "ERROR_RATE": 0.5}, False), ({}, True)]


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
    assert engine.store.reads_counted(job_id) == 0


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


@pytest.mark.usefixtures("each_store")
def test_reset_keeps_the_set_up_and_forgets_deliveries_and_replays() -> None:
    """API keys, endpoints and secrets stay; pending and finished deliveries and stored replays are gone."""
    engine, _, _ = busy_engine()
    store = engine.store

    def delivery(n: int, status: str) -> Delivery:
        return Delivery(f"msg_{n}", n, "job.completed", "job-1", "alice", "e1", "http://127.0.0.1:9/a", "{}", 1.0,
                        status=status, next_attempt_at=5.0 if status == "pending" else None,
                        finished_at=None if status == "pending" else 2.0)

    with store.transaction():
        secret = store.secret("result-links")
        store.put_api_key(ApiKey("k1", "d1", "alice", "free", 1.0))
        store.put_endpoint(Endpoint("e1", "alice", "http://127.0.0.1:9/a", "whsec_x", None, 1.0))
        store.put_delivery(delivery(1, "pending"))
        store.put_delivery(delivery(2, "succeeded"))
        store.put_replay(Replay("alice/route/k", "{}", 200, 1.0, START + 10**6))
    engine.reset()
    with store.transaction():
        assert store.secret("result-links") == secret
        assert store.api_key_by_digest("d1").key_id == "k1"
        assert [e.endpoint_id for e in store.endpoints()] == ["e1"]
        assert list(store.deliveries()) == [] and store.next_delivery_due() is None
        assert store.claim_due_deliveries(START + 10**6, 10) == []
        assert store.replay("alice/route/k") is None


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


def test_post_admin_reset_keeps_keys_and_endpoints_and_forgets_replays_deliveries_and_key_failures(auth) -> None:
    """After a reset a key still works and its endpoint is listed; v3 Idempotency-Keys, the delivery log and the
    count of wrong keys start afresh."""
    client = create_app({**FAST, "AUTH_FAILURE_LIMIT": 1}, clock=ManualClock(START)).test_client()
    key = client.post("/api-keys", json={"user_id": "alice", "role": "premium"}, headers=auth.ok).get_json()
    alice = {"X-Api-Key": key["api_key"]}
    assert client.post("/v1/webhook/endpoint.add", json={"url": "http://127.0.0.1:9/hook"},
                       headers=alice).status_code == 200
    body = {"video": {"type": "url", "url": "https://example.com/a.mp4"}, "output_languages": ["German"]}
    keyed = {**alice, "Idempotency-Key": "batch-1"}
    assert client.post("/v3/video-translations", json=body, headers=keyed).status_code == 200
    client.post("/admin/clock/advance", json={"seconds": 60}, headers=auth.ok)  # it completes: deliveries made
    assert client.get("/webhooks/deliveries", headers=auth.ok).get_json()["total"] == 2
    wrong = {"X-Api-Key": "sk_sim_not-a-key-of-this-server-000"}
    assert client.get("/jobs", headers=wrong).status_code == 401
    assert client.get("/jobs", headers=wrong).status_code == 429

    assert client.post("/admin/reset", headers=auth.ok).get_json()["removed"] == 1
    assert client.get("/v3/video-translations/languages", headers=alice).status_code == 200
    assert len(client.get("/v1/webhook/endpoint.list", headers=alice).get_json()["data"]) == 1
    assert client.get("/webhooks/deliveries", headers=auth.ok).get_json()["total"] == 0
    again = client.post("/v3/video-translations", json=body, headers=keyed)  # a new job, not the old answer
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert client.get("/healthz").get_json()["jobs"] == 1
    assert client.get("/jobs", headers=wrong).status_code == 401


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
