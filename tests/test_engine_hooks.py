"""The engine's seams for issue 14: observers inside the transaction, job meta, batches, a user's queue."""

from __future__ import annotations

import pytest

from jobs import CapacityExceeded
from tests.conftest import make_engine


@pytest.mark.usefixtures("each_local_store")  # a shared store holds no lock in this process for a transaction
def test_observers_see_every_change_inside_the_store_transaction(clock):
    """Each change reaches the observers while the store is held, with the job's new state and the time."""
    engine = make_engine(clock, ERROR_RATE=0.0)
    seen = []

    def observe(kind, job, at):
        assert engine.store.lock._is_owned()  # inside the transaction that made the change
        seen.append((kind, job.status.value, at))

    engine.observers.append(observe)
    job, _ = engine.submit("premium", "alice")
    clock.advance(10)
    engine.get(job["job_id"])
    start = clock.now - 10
    assert seen == [("submitted", "pending", start), ("started", "pending", start),
                    ("completed", "completed", start + 5)]


@pytest.mark.usefixtures("each_store")
def test_an_observers_error_reaches_the_caller(clock):
    """An observer's error is raised to whoever made the change: the outbox never misses an event silently."""
    engine = make_engine(clock)

    def broken(kind, job, at):
        if kind == "submitted":
            raise RuntimeError("outbox full")

    engine.observers.append(broken)
    with pytest.raises(RuntimeError):
        engine.submit("free", "alice")


@pytest.mark.usefixtures("each_store")
def test_meta_is_kept_with_the_job(clock):
    """What a submission carries in `meta` stays on the job, in every store."""
    engine = make_engine(clock)
    view, _ = engine.submit("free", "alice", meta={"api": "v2", "callback_id": "c-1"})
    with engine.store.transaction():
        assert engine.store.get(view["job_id"]).meta == {"api": "v2", "callback_id": "c-1"}


@pytest.mark.usefixtures("each_store")
def test_submit_many_makes_every_job_or_none(clock):
    """A batch is refused whole when MAX_JOBS leaves no room for all of it."""
    engine = make_engine(clock, MAX_JOBS=3, PROCESSING_MODE="manual")
    made = engine.submit_many("free", "alice", [{"target_language": "de"}, {"target_language": "fr"}])
    assert [j["target_language"] for j in made] == ["de", "fr"]
    with pytest.raises(CapacityExceeded):
        engine.submit_many("free", "alice", [{"target_language": "es"}, {"target_language": "it"}])
    assert engine.total() == 2


@pytest.mark.usefixtures("each_store")
def test_a_users_queue_lists_only_their_jobs_with_global_positions(clock):
    """queue(user_id=…) lists and counts one user's jobs; their positions are their places in the whole queue."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    for user in ("bob", "alice", "bob", "alice"):
        engine.submit("free", user)
    mine = engine.queue(user_id="alice")
    assert [j["queue_position"] for j in mine["queued"]] == [2, 4]
    assert mine["queued_total"] == 2 and mine["running"] == []
    assert engine.queue(user_id="alice", offset=1, limit=1)["queued"][0]["queue_position"] == 4
