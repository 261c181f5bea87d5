"""The domain's side of uploaded videos: jobs carry their upload and its duration, which can time their attempts."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import config
from jobs import IdempotencyMismatch, InvalidArgument, JobEngine, Status
from simulator.store.sqlite import SqliteStore
from tests.conftest import FAST, FakeClock, make_engine

UPLOAD = "0b7c2a54-3f0e-4f5e-9d59-6f1d2c3b4a50"


@pytest.mark.usefixtures("each_store")
def test_an_upload_job_takes_its_videos_duration_times_the_rate(clock: FakeClock) -> None:
    """With DELAY_PER_MEDIA_SECOND 0.5, a free job of a 30 s video takes 15 s and a premium one 7.5 s."""
    engine = make_engine(clock, DELAY_PER_MEDIA_SECOND=0.5, TRANSLATION_DELAY=100.0, WORKERS=2)
    free, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=30.0)
    premium, _ = engine.submit("premium", "bob", upload_id=UPLOAD, media_seconds=30.0)
    assert (free["eta_seconds"], premium["eta_seconds"]) == (15.0, 7.5)
    clock.advance(7.5)
    assert engine.get(premium["job_id"])["status"] == "completed"
    clock.advance(7.5)
    assert engine.get(free["job_id"])["status"] == "completed"


@pytest.mark.usefixtures("each_store")
def test_jobs_without_an_upload_keep_translation_delay(clock: FakeClock) -> None:
    """A plain video_url job has no known duration, so DELAY_PER_MEDIA_SECOND leaves it at TRANSLATION_DELAY."""
    engine = make_engine(clock, DELAY_PER_MEDIA_SECOND=0.5, TRANSLATION_DELAY=10.0)
    job, _ = engine.submit("free", "alice", video_url="https://videos.example/talk.mp4")
    assert job["eta_seconds"] == 10.0


@pytest.mark.usefixtures("each_store")
def test_the_fixed_delay_applies_while_the_rate_is_zero(clock: FakeClock) -> None:
    """With DELAY_PER_MEDIA_SECOND 0 (the default) an upload job takes TRANSLATION_DELAY whatever its length."""
    engine = make_engine(clock, TRANSLATION_DELAY=10.0)
    job, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=600.0)
    assert job["eta_seconds"] == 10.0


@pytest.mark.usefixtures("each_store")
def test_a_rate_change_applies_to_attempts_that_start_after_it(clock: FakeClock) -> None:
    """Turning DELAY_PER_MEDIA_SECOND on leaves the running attempt alone and times the next one by the video."""
    engine = make_engine(clock, TRANSLATION_DELAY=10.0, WORKERS=1)
    first, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=40.0)
    second, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=40.0)
    engine.configure({"DELAY_PER_MEDIA_SECOND": 0.25})
    assert engine.get(first["job_id"])["eta_seconds"] == 10.0
    clock.advance(10.0)
    assert engine.get(second["job_id"])["eta_seconds"] == 10.0  # 40 s × 0.25, started when the first ended
    assert engine.get(first["job_id"])["status"] == "completed"


@pytest.mark.usefixtures("each_store")
def test_a_queued_upload_jobs_eta_counts_its_own_length(clock: FakeClock) -> None:
    """A queued job's estimate is when a slot frees plus its own attempt time, from its video's duration."""
    engine = make_engine(clock, DELAY_PER_MEDIA_SECOND=1.0, TRANSLATION_DELAY=10.0, WORKERS=1)
    engine.submit("free", "alice")  # 10 s, running
    queued, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=4.0)
    assert queued["queue_position"] == 1
    assert engine.get(queued["job_id"])["eta_seconds"] == 14.0
    assert engine.queue()["queued"][0]["eta_seconds"] == 14.0


@pytest.mark.usefixtures("each_store")
def test_the_job_view_names_its_upload_and_its_result_once_completed(clock: FakeClock) -> None:
    """upload_id is shown from the start; result_url is null until the job completes, then /results/<id>."""
    engine = make_engine(clock, TRANSLATION_DELAY=1.0)
    job, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=3.0)
    assert (job["upload_id"], job["result_url"]) == (UPLOAD, None)
    clock.advance(1.0)
    done = engine.get(job["job_id"])
    assert done["status"] == Status.COMPLETED.value
    assert done["result_url"] == f"/results/{job['job_id']}"


@pytest.mark.usefixtures("each_store")
@pytest.mark.parametrize("status", [Status.CANCELLED, Status.PERMANENTLY_FAILED])
def test_jobs_that_did_not_complete_have_no_result_url(clock: FakeClock, status: Status) -> None:
    """A cancelled or permanently failed job never gets a result_url."""
    engine = make_engine(clock, TRANSLATION_DELAY=1.0, ERROR_RATE=1.0, MAX_RETRIES=0)
    job, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=3.0)
    if status is Status.CANCELLED:
        engine.cancel(job["job_id"], "test")
    else:
        clock.advance(1.0)
    final = engine.get(job["job_id"])
    assert (final["status"], final["result_url"]) == (status.value, None)


@pytest.mark.usefixtures("each_store")
def test_an_idempotency_key_replays_only_the_same_upload(clock: FakeClock) -> None:
    """The same key with the same upload replays the job; with another upload it is refused."""
    engine = make_engine(clock)
    job, _ = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=3.0, idempotency_key="k")
    again, replayed = engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=3.0, idempotency_key="k")
    assert replayed and again["job_id"] == job["job_id"]
    with pytest.raises(IdempotencyMismatch):
        engine.submit("free", "alice", upload_id="another", media_seconds=3.0, idempotency_key="k")


@pytest.mark.usefixtures("each_store")
@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_an_impossible_duration_is_refused(clock: FakeClock, seconds: float) -> None:
    """A negative or non-finite media duration is refused and stores nothing."""
    engine = make_engine(clock)
    with pytest.raises(InvalidArgument):
        engine.submit("free", "alice", upload_id=UPLOAD, media_seconds=seconds)
    assert engine.total() == 0


def test_an_older_database_gains_the_new_columns(tmp_path: Path, clock: FakeClock) -> None:
    """A job store written before upload_id and media_seconds existed opens, its jobs reading them as None."""
    path = str(tmp_path / "old.db")
    engine = JobEngine(config.from_mapping(FAST), store=SqliteStore(path), clock=clock)
    job, _ = engine.submit("free", "alice")
    engine.store.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("ALTER TABLE jobs DROP COLUMN upload_id")
        db.execute("ALTER TABLE jobs DROP COLUMN media_seconds")
    reopened = SqliteStore(path)
    try:
        loaded = reopened.get(job["job_id"])
        assert loaded is not None and (loaded.upload_id, loaded.media_seconds) == (None, None)
    finally:
        reopened.close()
