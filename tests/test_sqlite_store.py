"""The SQLite store: what it saves reads back exactly, its start-up checks, and what happens when a write fails."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import config
from jobs import JobEngine, Scenario, StoreUnavailable
from server import create_app
from simulator.store import StoreError, open_store
from simulator.store.sqlite import SqliteStore
from tests.conftest import FAST, ROOT, FakeClock

SETTINGS = {**FAST, "WORKERS": 1, "ERROR_RATE": 0.5, "DELAY_JITTER": 0.3, "MAX_RETRIES": 2}


def engine_on(store, clock: FakeClock, seed: int = 7) -> JobEngine:
    """Return an engine with SETTINGS on `store`."""
    return JobEngine(config.from_mapping(SETTINGS), store=store, clock=clock, rng=random.Random(seed))


def test_a_reopened_store_resumes_exactly_as_if_it_never_stopped(tmp_path, clock) -> None:
    """Closed and reopened mid-run, the store holds the same jobs, queue and future as a twin that never stopped.

    The drawn future of attempts already running is stored; new attempts draw from a new generator, so
    the twins switch off randomness for them.
    """
    path = str(tmp_path / "jobs.db")
    durable = engine_on(SqliteStore(path), clock)
    twin = engine_on(None, clock)
    for engine in (durable, twin):
        for i, role in enumerate(["free", "premium", "free", "free"]):
            engine.submit(role, "u", idempotency_key=f"k{i}", video_url=f"https://example.com/{i}.mp4")
    clock.advance(3)
    ids = [view["job_id"] for view in twin.jobs()]
    assert [view["job_id"] for view in durable.jobs()] == ids
    durable.store.close()

    reopened = engine_on(SqliteStore(path), clock, seed=99)
    assert reopened.queue() == twin.queue()
    assert reopened.find_idempotent("u", "k1") == ids[1]
    for engine in (reopened, twin):
        engine.configure({"ERROR_RATE": 0, "DELAY_JITTER": 0})
    clock.advance(100)  # the server was down; everything fell due meanwhile, at its own instant
    assert reopened.jobs() == twin.jobs()
    assert {view["status"] for view in reopened.jobs()} == {"completed"}
    reopened.store.close()


def test_a_reopened_store_lists_each_job_under_its_user(tmp_path, clock) -> None:
    """After a restart, GET /jobs?user_id= and GET /status (newest) answer each user's own jobs, as before it."""
    path = str(tmp_path / "jobs.db")
    engine = engine_on(SqliteStore(path), clock)
    ids = {user: [engine.submit("free", user)[0]["job_id"] for _ in range(2)] for user in ("ann", "ben")}
    engine.store.close()
    reopened = engine_on(SqliteStore(path), clock)
    for user, own in ids.items():
        assert [view["job_id"] for view in reopened.jobs(user_id=user)] == own
        assert reopened.newest(user)["job_id"] == own[-1]
        assert reopened.total(user) == 2


def test_a_database_made_before_a_field_existed_gains_its_column(tmp_path, clock) -> None:
    """A database without the `simulate` column (an earlier version's) opens: the column is added, empty."""
    path = str(tmp_path / "jobs.db")
    engine = engine_on(SqliteStore(path), clock)
    old = engine.submit("free", "u")[0]["job_id"]
    engine.store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE jobs DROP COLUMN simulate")
    db.close()

    engine = engine_on(SqliteStore(path), clock)
    assert engine.get(old)["simulate"] is None
    scripted = engine.submit("free", "u", simulate=Scenario.parse({"outcomes": ["succeed"]}))[0]["job_id"]
    engine.store.close()
    reopened = engine_on(SqliteStore(path), clock)
    assert reopened.get(scripted)["simulate"] == {"outcomes": ["succeed"]}
    reopened.store.close()


def test_a_job_removed_by_cleanup_stays_removed_after_reopening(tmp_path, clock) -> None:
    """Cleanup deletes rows, not only index entries: a reopened store does not bring removed jobs back."""
    path = str(tmp_path / "jobs.db")
    engine = engine_on(SqliteStore(path), clock)
    kept = engine.submit("premium", "u")[0]["job_id"]
    clock.advance(1000)
    engine.configure({"TRANSLATION_DELAY": 5000})
    doomed = engine.submit("free", "u", idempotency_key="again")[0]["job_id"]
    engine.cancel(doomed, "no")
    assert engine.cleanup(["cancelled"]) == 1
    engine.store.close()
    reopened = engine_on(SqliteStore(path), clock)
    assert [view["job_id"] for view in reopened.jobs()] == [kept]
    assert reopened.find_idempotent("u", "again") is None
    reopened.store.close()


def test_new_job_ids_after_reopening_with_the_same_seed_do_not_clash(tmp_path, clock) -> None:
    """RANDOM_SEED reproduces a run from an empty store; reopened with jobs, the generator moves on."""
    path = str(tmp_path / "jobs.db")
    first = JobEngine(config.from_mapping(SETTINGS), store=SqliteStore(path), clock=clock)
    before = {first.submit("free", "u")[0]["job_id"] for _ in range(3)}
    first.store.close()
    second = JobEngine(config.from_mapping(SETTINGS), store=SqliteStore(path), clock=clock)
    after = {second.submit("free", "u")[0]["job_id"] for _ in range(3)}
    assert not before & after and second.total() == 6
    second.store.close()


def test_a_failed_write_answers_503_and_the_change_is_written_once_the_disk_has_room(tmp_path, clock) -> None:
    """A store that cannot write answers 503 store_unavailable (nothing acknowledged), and catches up later."""
    store = SqliteStore(str(tmp_path / "jobs.db"))
    app = create_app(FAST, clock=clock, store=store)
    client = app.test_client()
    assert client.post("/translate", headers={"X-User-Id": "a"}).status_code == 202
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    big = {"role": "premium", "video_url": "https://example.com/" + "v" * 2000}
    refused = [client.post("/translate", json=big, headers={"Idempotency-Key": f"k{i}"}) for i in range(3)]
    assert {r.status_code for r in refused} == {503}
    assert refused[-1].get_json()["code"] == "store_unavailable" and refused[-1].headers["Retry-After"] == "1"
    store.db.execute("PRAGMA max_page_count = 1073741823")  # room again
    assert client.get("/healthz").status_code == 200  # the next transaction writes what was pending
    store.close()
    assert SqliteStore(store.path).count() == 4


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///", "names no file"),
        ("sqlite:///jobs.db?fast=1", "unknown option fast"),
        ("sqlite:///jobs.db?synchronous=off", "synchronous must be one of normal, full"),
        ("postgres://db/jobs", "STORE must be 'memory', 'sqlite:///path/to/jobs.db' or 'redis://host:port/db'"),
    ],
)
def test_bad_store_urls_are_refused_saying_why(url: str, message: str) -> None:
    """A STORE that names no usable store raises StoreError with what is wrong."""
    with pytest.raises(StoreError, match=message):
        open_store(url)


def run_server_expecting_failure(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """Run `python server.py` with arguments that must stop it at start-up; return the finished process."""
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--port", "0", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "", "ADMIN_TOKEN": "t", **(env or {})},
    )


def foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")


@pytest.mark.parametrize(
    ("prepare", "store", "message"),
    [
        (None, "sqlite:///missing/dir/jobs.db", "directory"),
        (lambda p: p.write_bytes(b"not a database at all " * 100), "sqlite:///jobs.db", "not a database"),
        (foreign_database, "sqlite:///jobs.db", "not a job store of this simulator"),
        (lambda p: p.mkdir(), "sqlite:///jobs.db", "jobs.db"),
    ],
    ids=["no-directory", "corrupt", "foreign", "unwritable"],
)
def test_an_unusable_database_stops_the_server_with_one_line_and_exit_2(tmp_path, prepare, store, message) -> None:
    """A missing directory, a damaged or foreign file, an unwritable path: one line, exit 2, nothing touched."""
    path = tmp_path / "jobs.db"
    if prepare is not None:
        prepare(path)
    before = path.read_bytes() if path.is_file() else None
    result = run_server_expecting_failure(tmp_path, "--store", store)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("Cannot open the job store: ") and message in lines[0]
    assert (path.read_bytes() if path.is_file() else None) == before


def test_a_database_held_by_another_server_is_refused(tmp_path) -> None:
    """One process per database: a second server on the same file stops at start-up, saying it is in use."""
    held = SqliteStore(str(tmp_path / "jobs.db"))
    try:
        result = run_server_expecting_failure(tmp_path, "--store", "sqlite:///jobs.db")
    finally:
        held.close()
    assert result.returncode == 2
    assert "in use by another server process" in result.stderr and "Traceback" not in result.stderr


def test_state_file_is_retired_with_a_pointer_to_store(tmp_path) -> None:
    """STATE_FILE set at start-up stops the server, telling the user to set STORE=sqlite:///… instead."""
    result = run_server_expecting_failure(tmp_path, env={"STATE_FILE": "state.json"})
    assert result.returncode == 2
    assert "STATE_FILE" in result.stderr and "STORE=sqlite:///" in result.stderr


def test_store_unavailable_is_a_domain_error() -> None:
    """StoreUnavailable is one of the engine's errors, with a stable code."""
    assert StoreUnavailable.code == "store_unavailable"
