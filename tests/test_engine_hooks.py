"""The engine's seams for issue 14: observers inside the transaction, job meta, batches, a user's queue."""

from __future__ import annotations

import contextlib

import pytest

import config
import simulator.domain.engine as engine_module
from jobs import (
    CapacityExceeded,
    InvalidArgument,
    JobEngine,
    JobNotFound,
    MemoryStore,
    Scenario,
    ScenariosDisabled,
    StoreUnavailable,
    iso,
)
from simulator.domain.errors import StoreConflict
from simulator.feed import ChangeFeed
from tests.conftest import FAST, make_engine


@pytest.mark.usefixtures("each_local_store")  # a shared store holds no lock in this process for a transaction
def test_observers_see_every_change_inside_the_store_transaction(clock):
    """Each change reaches the observers while the store is held, with the job's new state and the time."""
    engine = make_engine(clock, ERROR_RATE=0.0)
    seen = []

    def observe(kind, job, at):
        assert engine.store.lock._is_owned()  # inside the transaction that made the change
        seen.append((kind, job.status.value, at))

    engine.observe_in_transaction(observe)
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

    engine.observe_in_transaction(broken)
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


@pytest.mark.usefixtures("each_store")
def test_submit_many_keeps_each_requests_fields_and_queues_the_jobs_like_single_submissions(clock):
    """Each job of a batch keeps its own video, language, upload, duration and meta and shares the script; free
    workers start them at once in order, and an attempt is timed by its video's duration."""
    engine = make_engine(clock, WORKERS=2, DELAY_PER_MEDIA_SECOND=2.0)
    script = Scenario.parse({"outcomes": ["succeed"]})
    made = engine.submit_many("free", "alice", [
        {"video_url": "https://v.example/1.mp4", "target_language": "de", "upload_id": "u-1", "media_seconds": 3.0,
         "meta": {"callback_id": "c-1"}},
        {"video_url": "https://v.example/2.mp4", "target_language": "fr"},
        {"target_language": "es"},
    ], simulate=script)
    assert [(v["video_url"], v["target_language"], v["upload_id"], v["role"], v["user_id"]) for v in made] == [
        ("https://v.example/1.mp4", "de", "u-1", "free", "alice"),
        ("https://v.example/2.mp4", "fr", None, "free", "alice"),
        (None, "es", None, "free", "alice"),
    ]
    assert [v["simulate"] for v in made] == [{"outcomes": ["succeed"]}] * 3
    assert [(v["status"], v["queue_position"]) for v in made] == [("pending", None), ("pending", None),
                                                                   ("pending", 1)]
    assert [v["started_at"] is not None for v in made] == [True, True, False]
    first, second, third = (v["job_id"] for v in made)
    clock.advance(6)  # 3 s of video at 2 s per second; the job without an upload takes TRANSLATION_DELAY (10 s)
    assert engine.get(first)["status"] == "completed"
    assert engine.get(second)["status"] == "pending"
    assert engine.get(third)["started_at"] == iso(clock.now)
    assert engine.get_with_meta(first)[1] == {"callback_id": "c-1"}
    assert engine.get_with_meta(second)[1] is None


@pytest.mark.usefixtures("each_store")
def test_submit_many_refuses_an_unknown_role_and_a_script_while_scenarios_are_off(clock):
    """A batch is checked as a single submission is: the role, and scripts only while SCENARIOS is on."""
    engine = make_engine(clock, SCENARIOS="off")
    with pytest.raises(InvalidArgument) as caught:
        engine.submit_many("gold", "alice", [{}])
    assert str(caught.value) == "role must be one of free, premium, got 'gold'."
    with pytest.raises(ScenariosDisabled) as disabled:
        engine.submit_many("free", "alice", [{}], simulate=Scenario.parse({"outcomes": ["fail"]}))
    assert str(disabled.value) == ("Scripted outcomes (simulate, X-Simulate) are switched off on this server "
                                   "(SCENARIOS=off).")
    assert engine.total() == 0


@pytest.mark.usefixtures("each_local_store")  # a shared store holds no lock in this process for a transaction
def test_submit_many_hands_the_views_to_also_inside_its_transaction(clock):
    """`also` gets the batch's views, exactly those returned, while the store is still held."""
    engine = make_engine(clock)
    seen = []

    def also(views):
        assert engine.store.lock._is_owned()
        seen.append([v["job_id"] for v in views])

    made = engine.submit_many("free", "alice", [{}, {}], also=also)
    assert seen == [[v["job_id"] for v in made]]


@pytest.mark.usefixtures("each_store")
def test_get_with_meta_answers_the_view_now_and_a_copy_of_the_meta(clock):
    """The view is the job's state at the time of the call; changing the meta returned changes nothing stored."""
    engine = make_engine(clock)
    job, _ = engine.submit("free", "alice", meta={"title": "Intro"})
    clock.advance(10)
    view, meta = engine.get_with_meta(job["job_id"])
    assert view == engine.get(job["job_id"]) and view["status"] == "completed"
    meta["title"] = "changed"
    assert engine.get_with_meta(job["job_id"])[1] == {"title": "Intro"}
    with pytest.raises(JobNotFound):
        engine.get_with_meta("no-such-job")


class ConflictingStore(MemoryStore):
    """A memory store whose next `conflicts` transactions fail at commit, as a shared store's do when another
    process changed what they read (the changes stay: each attempt here adds a job, which the retry must not)."""

    def __init__(self, conflicts: int) -> None:
        super().__init__()
        self.conflicts = conflicts
        self.commits = 0

    @contextlib.contextmanager
    def transaction(self):
        with self.lock:
            yield
            self.commits += 1
            if self.conflicts > 0:
                self.conflicts -= 1
                raise StoreConflict("changed by another process")


def conflicting_engine(clock, conflicts: int, sleeps: list[float], monkeypatch) -> JobEngine:
    """An engine on a ConflictingStore whose conflict back-off sleeps are recorded instead of slept."""
    monkeypatch.setattr(engine_module.time, "sleep", sleeps.append)
    store = ConflictingStore(0)
    engine = JobEngine(config.from_mapping({**FAST, "PROCESSING_MODE": "manual"}), store=store, clock=clock)
    store.conflicts, store.commits = conflicts, 0  # from the first call on
    return engine


def test_a_call_whose_commit_conflicts_runs_again_and_publishes_once(clock, monkeypatch):
    """Each conflict runs the call again from the start; only the committed run's changes are published, and the
    waits between runs grow from 0.4 ms and never pass 20 ms."""
    sleeps: list[float] = []
    engine = conflicting_engine(clock, 9, sleeps, monkeypatch)
    cursor = engine.feed.cursor()
    view, _ = engine.submit("free", "alice")
    assert engine.store.commits == 10
    assert [(c.kind, c.job_id) for c in engine.feed.since(cursor)] == [("submitted", view["job_id"])]
    assert len(sleeps) == 9
    assert all(0 <= pause <= min(0.02, 0.0002 * 2**attempt) for attempt, pause in enumerate(sleeps, 1))
    assert max(sleeps[6:]) > 0.0002 * 2**3  # later waits may be longer than the first ones could be


def test_a_call_that_keeps_conflicting_gives_up_after_100_tries(clock, monkeypatch):
    """After MAX_CONFLICTS (100) conflicting commits the call answers StoreUnavailable, retry in 1 s, and nothing
    it did is published; 99 conflicts still end in success."""
    sleeps: list[float] = []
    engine = conflicting_engine(clock, 100, sleeps, monkeypatch)
    cursor = engine.feed.cursor()
    with pytest.raises(StoreUnavailable) as caught:
        engine.submit("free", "alice")
    assert str(caught.value) == "The job store is too busy with changes from other processes; retry."
    assert caught.value.extra == {"retry_after": 1}
    assert engine.store.commits == 100 and len(sleeps) == 99
    assert engine.feed.since(cursor) == []
    assert conflicting_engine(clock, 99, [], monkeypatch).submit("free", "alice")[1] is False


def test_an_engine_made_without_a_store_or_feed_keeps_jobs_in_memory_and_publishes_to_its_own_feed(clock):
    """JobEngine() alone works (a memory store, a feed of its own); a feed given is the one it publishes to."""
    feed = ChangeFeed()
    engine = JobEngine(config.from_mapping(FAST), feed=feed, clock=clock)
    assert isinstance(engine.store, MemoryStore) and engine.feed is feed
    job_id = engine.submit("free", "alice")[0]["job_id"]
    assert [c.job_id for c in feed.since(0)] == [job_id, job_id]  # submitted, started
    assert JobEngine(config.from_mapping(FAST), clock=clock).submit()[0]["status"] == "pending"


class ChangeRecordingStore(MemoryStore):
    """A memory store that keeps the changes the engine asks a shared store to send to the other processes."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, float]] = []

    def record_change(self, kind, job, at):
        self.sent.append((kind, job.job_id, at))


def test_the_store_is_given_every_change_the_feed_gets(clock):
    """Each change is handed to the store (for other processes' feeds) with its kind, job and time."""
    store = ChangeRecordingStore()
    engine = JobEngine(config.from_mapping(FAST), store=store, clock=clock)
    cursor = engine.feed.cursor()
    engine.submit("free", "alice")
    clock.advance(10)
    engine.advance()
    assert store.sent == [(c.kind, c.job_id, c.at) for c in engine.feed.since(cursor)]
    assert [kind for kind, _, _ in store.sent] == ["submitted", "started", "completed"]
