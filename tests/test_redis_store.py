"""The Redis store beyond the shared contract: URLs, conflicts between processes, round trips, the change stream,
runtime settings across processes, the ticker's lease, and the records beside jobs across processes (secrets, API
keys, webhook deliveries claimed once). A real redis-server, never a mock; several processes
are played by several stores (and engines) on the same keys."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import config
from jobs import ChangeFeed, FeedGap, JobEngine, JobNotFound, ReadFault, Scenario, Status
from server import create_app
from simulator.cluster import LeaderLease, RedisFollower
from simulator.domain.errors import StoreConflict
from simulator.store import StoreError, open_store
from simulator.store.records import ApiKey, Delivery
from simulator.store.redis_store import CLAIM_LEASE, RedisStore
from simulator.testing.redis_server import RedisServer
from tests.conftest import FAST, ROOT, FakeClock, redis_store_url


class CountingConnection(redis.Connection):
    """A Redis connection that counts the requests it sends: one per round trip (a script or a command)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Count, then send."""
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def store_url(redis_url: str) -> str:
    """Return a STORE URL with keys of this test's own."""
    return redis_store_url(redis_url)


@pytest.fixture
def stores(store_url: str) -> Iterator[list[RedisStore]]:
    """Open stores on the test's keys with `stores.append(...)`-like calls through `open_on`; close them after."""
    opened: list[RedisStore] = []
    yield opened
    for store in opened:
        store.close()


def open_on(stores: list[RedisStore], url: str, **options: Any) -> RedisStore:
    """Open one more store (one more process) on `url`."""
    store = RedisStore(url, **options)
    stores.append(store)
    return store


def engine_on(store: RedisStore, clock: FakeClock, seed: int = 7, **overrides: Any) -> JobEngine:
    """Return an engine with FAST settings (plus overrides) on `store`."""
    return JobEngine(config.from_mapping({**FAST, **overrides}), store=store, clock=clock, rng=random.Random(seed))


# ------------------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://", "names no host"),
        ("redis://localhost:port/0", "port that is not a number"),
        ("redis://localhost:6379/zero", "must be a number"),
        ("redis://localhost:6379/0?prefix=a%20b", "prefix must be"),
        ("redis://localhost:6379/0?timeout=3", "unknown option timeout"),
    ],
)
def test_a_bad_redis_url_is_refused_with_what_is_wrong(url: str, message: str) -> None:
    """A malformed STORE redis URL is refused with a StoreError naming the problem."""
    with pytest.raises(StoreError, match=message):
        open_store(url)


def test_an_unreachable_redis_is_refused_at_start_up(closed_port: int) -> None:
    """Opening a Redis store on a port where nothing listens fails at once with StoreError, not later per request."""
    with pytest.raises(StoreError, match="cannot reach Redis"):
        open_store(f"redis://127.0.0.1:{closed_port}/0")


def test_the_server_exits_2_with_one_line_when_redis_is_unreachable(closed_port: int) -> None:
    """`python server.py` on an unreachable Redis exits 2 with one line saying so."""
    done = subprocess.run([sys.executable, "server.py"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env={"PATH": "", "STORE": f"redis://127.0.0.1:{closed_port}/0", "PORT": "0"}, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "cannot reach Redis" in done.stderr


def test_requests_answer_503_while_redis_is_down() -> None:
    """With Redis gone, a status read and a submission answer 503 store_unavailable, never a 500."""
    with RedisServer() as own:
        app = create_app(FAST, store=RedisStore(redis_store_url(own.url)))
        client = app.test_client()
        job_id = client.post("/translate", json={"role": "premium"}).get_json()["job_id"]
        own.stop()
        for answer in (client.get(f"/status/{job_id}"), client.post("/translate", json={"role": "premium"})):
            assert answer.status_code == 503
            assert answer.get_json()["code"] == "store_unavailable"


@pytest.mark.parametrize("store", ["memory", "sqlite:///jobs.db"])
def test_several_workers_are_refused_on_a_store_of_one_process(store: str, tmp_path) -> None:
    """`--workers 2` with the memory or SQLite store exits 2 saying that the processes need a shared Redis store."""
    done = subprocess.run([sys.executable, str(ROOT / "server.py"), "--workers", "2", "--port", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, env={"PATH": "", "STORE": store}, check=False)
    assert done.returncode == 2
    assert "--workers 2 needs a store the processes share: set STORE=redis://" in done.stderr
    assert not (tmp_path / "jobs.db").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"CLOCK": "manual"}, "--workers 2 cannot run with CLOCK=manual"),
     ({"DATA_DIR": "files"}, "--workers 2 cannot share DATA_DIR")],
)
def test_several_workers_are_refused_with_a_manual_clock_or_one_data_folder(
        setting: dict[str, str], message: str, store_url: str, tmp_path) -> None:
    """`--workers 2` on Redis exits 2 with a manual clock (each process would keep its own time) or with DATA_DIR."""
    env = {"PATH": "", "STORE": store_url, **setting}
    done = subprocess.run([sys.executable, str(ROOT / "server.py"), "--workers", "2", "--port", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, env=env, check=False)
    assert done.returncode == 2
    assert message in done.stderr


# -------------------------------------------------------------------------------------- several processes


def test_a_commit_fails_when_another_process_changed_a_job_it_read(stores, store_url: str, clock) -> None:
    """A transaction that read a job another process has since moved raises StoreConflict and writes nothing."""
    a, b = open_on(stores, store_url), open_on(stores, store_url)
    engine_b = engine_on(b, clock, PROCESSING_MODE="manual")
    job_id = engine_b.submit("free", "u")[0]["job_id"]
    with pytest.raises(StoreConflict), a.transaction():
        job = a.get(job_id)
        engine_b.cancel(job_id, "first")
        job.cancel_reason = "second"
        job.version += 1
        a.moved(job, job.stage)
    assert engine_b.get(job_id)["cancel_reason"] == "first"


def test_a_call_that_lost_a_race_runs_again_and_both_changes_hold(stores, store_url: str) -> None:
    """When another process starts a job between a submission's reads and its commit, the submission runs again."""
    a, b = open_on(stores, store_url), open_on(stores, store_url)
    clock = FakeClock()
    engine_b = engine_on(b, clock, seed=8, PROCESSING_MODE="manual")
    queued = engine_b.submit("free", "bob")[0]["job_id"]
    reads = 0

    class RacingClock(FakeClock):
        """The clock of process A: its second reading, mid-submission, lets process B start a job first."""

        def __call__(self) -> float:
            nonlocal reads
            reads += 1
            if reads == 2:
                engine_b.start_next(1)
            return clock.now

    engine_a = engine_on(a, RacingClock(), PROCESSING_MODE="manual")
    view, _ = engine_a.submit("premium", "ann")
    assert reads > 3, "the submission ran again after its commit was refused"
    assert engine_a.get(queued)["status"] == Status.PENDING.value
    assert engine_a.get(queued)["attempts"] == 1
    assert [job["job_id"] for job in engine_a.queue()["queued"]] == [view["job_id"]]
    assert engine_a.check_invariants() == []


def test_a_slot_freed_in_one_process_goes_to_a_job_queued_meanwhile_in_another(stores, store_url: str) -> None:
    """Process A ends an attempt and fills the slot while process B (whose clock has not reached that end) queues
    a job: A's commit is refused and A runs again, so B's earlier job starts first, never A's later one."""
    clock = FakeClock()
    b_clock = FakeClock(clock.now)
    a_store, b_store = open_on(stores, store_url), open_on(stores, store_url)
    engine_b = engine_on(b_store, b_clock, seed=2, WORKERS=1)
    first = engine_b.submit("free", "u")[0]["job_id"]  # runs until t = 10
    clock.advance(10)
    b_clock.advance(9.9)
    reads = 0

    class RacingClock(FakeClock):
        """A's clock: at its second reading, inside A's submission, B queues a job."""

        def __call__(self) -> float:
            nonlocal reads
            reads += 1
            if reads == 2:
                answers["b"] = engine_b.submit("free", "v")[0]["job_id"]
            return clock.now

    answers: dict[str, str] = {}
    engine_a = engine_on(a_store, RacingClock(), seed=1, WORKERS=1)
    later = engine_a.submit("free", "w")[0]["job_id"]
    assert engine_a.get(first)["status"] == "completed"
    assert engine_a.get(answers["b"])["stage"] == "translating", "the job queued first takes the freed slot"
    assert engine_a.get(later)["queue_position"] == 1
    assert engine_a.check_invariants() == []


def test_four_processes_changing_the_same_jobs_at_once_keep_every_invariant(stores, store_url: str) -> None:
    """Four engines on the same keys, each in its own thread, submit, cancel, process and advance at random while
    time moves: afterwards every invariant holds, and in auto mode no job waits while a slot is free."""
    clock = FakeClock()
    settings = {"TRANSLATION_DELAY": 1.0, "DELAY_JITTER": 0.5, "ERROR_RATE": 0.3, "MAX_RETRIES": 1, "WORKERS": 2,
                "RATE_LIMIT": 1000}
    engines = [engine_on(open_on(stores, store_url), clock, seed=i, **settings) for i in range(4)]
    ids: list[str] = []
    errors: list[BaseException] = []

    def work(engine: JobEngine, rng: random.Random) -> None:
        try:
            for _ in range(150):
                action = rng.random()
                if action < 0.5 or not ids:
                    ids.append(engine.submit(rng.choice(["free", "premium"]), f"u{rng.randrange(5)}")[0]["job_id"])
                elif action < 0.65:
                    try:
                        engine.cancel(rng.choice(ids), "race")
                    except Exception as e:  # a finished job refuses; anything else is a failure
                        if type(e).__name__ != "TransitionRefused":
                            raise
                elif action < 0.75:
                    engine.start_next(rng.randrange(1, 3))
                else:
                    engine.get(rng.choice(ids))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(engine, random.Random(i))) for i, engine in enumerate(engines)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        clock.advance(0.05)
        threading.Event().wait(0.002)
    assert not errors, errors
    engines[0].advance()
    assert engines[0].check_invariants() == []
    queue = engines[0].queue()
    assert not queue["queued"] or len(queue["running"]) >= queue["workers"], "a job waits while a slot is free"


def test_a_queue_taken_from_since_the_first_read_makes_the_call_run_again(stores, store_url: str, clock) -> None:
    """When another process starts queued jobs after a transaction's first read, walking the queue raises
    StoreConflict rather than yielding a queue shorter than the count it read (which broke slot filling)."""
    a, b = open_on(stores, store_url), open_on(stores, store_url)
    engine_b = engine_on(b, clock, PROCESSING_MODE="manual")
    for _ in range(3):
        engine_b.submit("free", "u")
    with pytest.raises(StoreConflict), a.transaction():
        assert a.queued_count() == 3
        engine_b.start_next(2)
        list(a.queued())


def test_queueing_order_is_commit_order_across_processes(stores, store_url: str, clock) -> None:
    """Jobs submitted alternately through two processes queue in the order their submissions committed."""
    engines = [engine_on(open_on(stores, store_url), clock, seed=s, PROCESSING_MODE="manual") for s in (1, 2)]
    ids = [engines[i % 2].submit("free", f"u{i}")[0]["job_id"] for i in range(6)]
    assert [job["job_id"] for job in engines[0].queue()["queued"]] == ids
    assert [job["queue_position"] for job in engines[1].queue()["queued"]] == [1, 2, 3, 4, 5, 6]
    started = engines[1].start_next(2)
    assert [job["job_id"] for job in started] == ids[:2]


def test_an_idempotency_key_used_in_two_processes_makes_one_job(stores, store_url: str, clock) -> None:
    """The same user and Idempotency-Key submitted through two processes answers the first job from both."""
    a, b = (engine_on(open_on(stores, store_url), clock, seed=s) for s in (1, 2))
    first, replayed_first = a.submit("free", "u", idempotency_key="k")
    again, replayed_again = b.submit("free", "u", idempotency_key="k")
    assert (replayed_first, replayed_again) == (False, True)
    assert again["job_id"] == first["job_id"]
    assert b.total() == 1


def test_a_status_read_is_one_round_trip_and_a_submission_two(stores, store_url: str, clock) -> None:
    """Counted on the connection: GET-style reads cost one request to Redis, submissions two, in every state."""
    store = open_on(stores, store_url, connection_class=CountingConnection)
    engine = engine_on(store, clock, WORKERS=1)
    engine.submit("free", "warm-up")  # loads the scripts
    for role, user, key in [("free", "u", None), ("premium", "v", "k1"), ("free", "w", "k2")]:
        before = CountingConnection.sent
        job_id = engine.submit(role, user, idempotency_key=key)[0]["job_id"]
        assert CountingConnection.sent - before == 2, role
        before = CountingConnection.sent
        engine.get(job_id)
        assert CountingConnection.sent - before == 1
    before = CountingConnection.sent
    engine.submit("free", "w", idempotency_key="k2")  # a replay writes nothing
    assert CountingConnection.sent - before == 1


# ------------------------------------------------------------------------------------- the change stream


def test_a_long_poll_in_one_process_wakes_when_another_changes_the_job(stores, store_url: str) -> None:
    """A wait held by process B answers as soon as process A cancels the job, through the change stream."""
    clock = FakeClock()
    a = engine_on(open_on(stores, store_url), clock, seed=1, PROCESSING_MODE="manual")
    b_store = open_on(stores, store_url)
    b = engine_on(b_store, clock, seed=2, PROCESSING_MODE="manual")
    follower = RedisFollower(b_store, b, block_ms=200).start()
    try:
        job_id = a.submit("free", "u")[0]["job_id"]
        answers: dict[str, Any] = {}
        waiting = threading.Event()

        def wait() -> None:
            waiting.set()
            began = time.monotonic()
            answers["job"] = b.wait_for_change(job_id, timeout=5)
            answers["elapsed"] = time.monotonic() - began

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert waiting.wait(2)
        while b.feed.waiting() == 0 and waiter.is_alive():
            threading.Event().wait(0.005)
        a.cancel(job_id, "changed elsewhere")
        waiter.join(5)
        assert answers["job"]["status"] == "cancelled"
        assert answers["elapsed"] < 2
    finally:
        follower.stop()


def test_a_settings_change_in_one_process_reaches_the_others_within_a_second(stores, store_url: str) -> None:
    """POST /config through one app changes the settings every other app on the same keys answers."""
    token = {"Authorization": f"Bearer {FAST['ADMIN_TOKEN']}"}
    first = create_app(FAST, store=open_on(stores, store_url))
    second_store = open_on(stores, store_url)
    second = create_app(FAST, store=second_store)
    follower = RedisFollower(second_store, second.extensions["simulator"].engine, block_ms=200).start()
    try:
        changed = first.test_client().post("/config", json={"WORKERS": 7, "RATE_LIMIT": 9}, headers=token)
        assert changed.status_code == 200
        deadline = time.monotonic() + 1.0
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            seen = second.test_client().get("/config").get_json()
            if seen["WORKERS"] == 7:
                break
            threading.Event().wait(0.01)
        assert (seen["WORKERS"], seen["RATE_LIMIT"]) == (7, 9)
        third = create_app(FAST, store=open_on(stores, store_url))  # a process started later starts with them
        assert third.test_client().get("/config").get_json()["WORKERS"] == 7
    finally:
        follower.stop()


def test_a_reset_in_one_process_empties_the_store_and_restores_the_settings_of_every_process(
        stores, store_url: str) -> None:
    """POST /admin/reset to one app removes every job for all (no key of a job is left in Redis), tells the other
    app's long-polls, brings back every app's start-up settings and clears the shared rate-limit windows."""
    token = {"Authorization": f"Bearer {FAST['ADMIN_TOKEN']}"}
    first_store = open_on(stores, store_url)
    first = create_app({**FAST, "RATE_LIMIT": 1, "PROCESSING_MODE": "manual"}, store=first_store)
    second_store = open_on(stores, store_url)
    second = create_app({**FAST, "RATE_LIMIT": 1, "PROCESSING_MODE": "manual"}, store=second_store)
    engine = second.extensions["simulator"].engine
    follower = RedisFollower(second_store, engine, block_ms=200).start()
    try:
        client = first.test_client()
        ids = [client.post("/translate", headers={"X-User-Id": f"u{i}", "Idempotency-Key": "k"}).get_json()["job_id"]
               for i in range(3)]
        assert client.post("/translate", headers={"X-User-Id": "u0"}).status_code == 429
        assert client.post("/config", json={"WORKERS": 7}, headers=token).status_code == 200
        deadline = time.monotonic() + 2
        while engine.settings.WORKERS != 7:
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
        cursor = engine.feed.cursor()
        answer = client.post("/admin/reset", headers=token)
        assert (answer.status_code, answer.get_json()["removed"]) == (200, 3)
        assert second.test_client().get("/jobs").headers["X-Total-Count"] == "0"
        deadline = time.monotonic() + 2
        while engine.settings.WORKERS != 2:  # the other process restores its start-up settings too
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
        assert sorted(c.job_id for c in engine.feed.since(cursor) if c.kind == "removed") == sorted(ids)
        left = {key.split(":", 1)[1] for key in first_store.redis.keys(first_store.key("*"))}
        assert left <= {"seq", "rev", "changes", "leader", "secrets"}, left  # secrets: set-up a reset keeps
        assert client.post("/translate", headers={"X-User-Id": "u0", "Idempotency-Key": "k"}).status_code == 202
    finally:
        follower.stop()


def test_a_reset_is_refused_when_another_process_submitted_after_its_first_read(stores, store_url: str,
                                                                             clock) -> None:
    """A clear() whose store gained a job from another process since it read them commits nothing (StoreConflict),
    so the engine's reset runs again and removes, and announces, that job too."""
    other = engine_on(open_on(stores, store_url), clock, seed=2, PROCESSING_MODE="manual")
    other.submit("free", "u")
    store = open_on(stores, store_url)
    with pytest.raises(StoreConflict), store.transaction():
        assert len(list(store.jobs())) == 1
        other.submit("free", "v")
        store.clear()
    assert other.total() == 2
    engine = engine_on(store, clock, seed=1, PROCESSING_MODE="manual")
    cursor = engine.feed.cursor()
    assert engine.reset() == 2
    assert [c.kind for c in engine.feed.since(cursor)] == ["removed", "removed"]
    assert other.total() == 0


def test_a_scripted_jobs_status_faults_are_counted_for_every_process(stores, store_url: str, clock) -> None:
    """Reads of a job scripted with two 503s, alternating between two processes, take the two faults, then none."""
    a = engine_on(open_on(stores, store_url), clock, seed=1)
    b = engine_on(open_on(stores, store_url), clock, seed=2)
    script = Scenario.parse({"status_faults": [{"status": 503, "retry_after": 2, "times": 2}]})
    job_id = a.submit("free", "u", simulate=script)[0]["job_id"]
    taken = [engine.take_read_fault(job_id) for engine in (b, a, b, a)]
    assert taken == [ReadFault(503, 2), ReadFault(503, 2), None, None]
    assert a.store.reads_counted(job_id) == 2


def test_a_read_that_finds_its_job_expired_removes_it_for_every_process(stores, store_url: str, clock) -> None:
    """A status read answering 404 for a job past JOB_TTL still commits and announces the removal it made."""
    store = open_on(stores, store_url)
    engine = engine_on(store, clock, JOB_TTL=5.0)
    job_id = engine.submit("premium", "u")[0]["job_id"]
    clock.advance(FAST["TRANSLATION_DELAY"] * FAST["PREMIUM_DELAY_FACTOR"] + 6)
    cursor = engine.feed.cursor()
    with pytest.raises(JobNotFound):
        engine.get(job_id)
    assert [(c.kind, c.job_id) for c in engine.feed.since(cursor)][-1] == ("removed", job_id)
    assert not store.redis.exists(store.key(f"job:{job_id}"))


def test_a_status_read_over_http_is_one_round_trip(stores, store_url: str, clock) -> None:
    """GET /status/<id> of a job without status_faults costs one request to Redis, also in a process that did not
    submit it (after its first read there: a job's script never changes, so it is not loaded again to learn it)."""
    submitting = create_app(FAST, clock=clock, store=open_on(stores, store_url, connection_class=CountingConnection))
    reading = create_app(FAST, clock=clock, store=open_on(stores, store_url, connection_class=CountingConnection))
    job_id = submitting.test_client().post("/translate", json={"role": "premium"}).get_json()["job_id"]
    for app, first in ((submitting, 1), (reading, 2)):
        client = app.test_client()
        for expected in (first, 1, 1):
            before = CountingConnection.sent
            assert client.get(f"/status/{job_id}").status_code == 200
            assert CountingConnection.sent - before == expected


def test_the_hourly_limit_is_one_count_for_every_process(stores, store_url: str) -> None:
    """Free submissions of one user through two apps on the same Redis pass RATE_LIMIT in total, not per app."""
    apps = [create_app({**FAST, "RATE_LIMIT": 3}, store=open_on(stores, store_url)) for _ in range(2)]
    codes = [apps[i % 2].test_client().post("/translate", headers={"X-User-Id": "carol"}).status_code
             for i in range(6)]
    assert codes == [202, 202, 202, 429, 429, 429]


def test_a_resync_wakes_waiters_and_makes_readers_reload() -> None:
    """After resync() a held wait answers at once and following from an older cursor raises FeedGap."""
    feed = ChangeFeed()
    feed.publish("submitted", "j", "u", 1, 0.0)
    cursor = feed.cursor()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(feed.wait_for_job("j", cursor, 5)))
    waiter.start()
    while feed.waiting() == 0:
        threading.Event().wait(0.005)
    feed.resync()
    waiter.join(2)
    assert woke == [True]
    with pytest.raises(FeedGap):
        feed.since(cursor)
    assert feed.since(feed.cursor()) == []


# --------------------------------------------------------------------------------------------- the lease


def test_one_process_holds_the_ticker_lease_and_another_takes_it_when_it_is_gone(stores, store_url: str) -> None:
    """Only one lease is held at a time; when the holder's key is gone (it died and it expired) another takes it."""
    first, second = (LeaderLease(open_on(stores, store_url)) for _ in range(2))
    assert first.step() is True
    assert second.step() is False
    assert first.step() is True  # renewed
    stores[0].redis.delete(stores[0].key("leader"))  # what expiry does once the holder stops renewing
    assert second.step() is True
    assert first.step() is False, "a holder renews only its own lease"


def test_a_stopped_lease_is_given_up_at_once(stores, store_url: str) -> None:
    """Stopping the lease's holder (a clean shutdown) frees it for another process immediately."""
    first = LeaderLease(open_on(stores, store_url)).start()
    second = LeaderLease(open_on(stores, store_url))
    assert first.held and not second.step()
    first.stop()
    assert second.step() is True


# ------------------------------------------------------------------------------- the records across processes


def pending(n: int, due: float = 10.0) -> Delivery:
    """Return a pending delivery numbered `n`, due at `due`."""
    return Delivery(f"msg_{n}", n, "job.completed", f"job-{n}", "alice", None, "http://127.0.0.1:9/hook", "{}", 1.0,
                    next_attempt_at=due)


def test_two_processes_claiming_at_once_never_claim_the_same_delivery(stores, store_url: str) -> None:
    """Two stores (two processes), two threads each, claim 300 due deliveries a few at a time, all at once:
    every delivery is claimed exactly once."""
    writer = open_on(stores, store_url)
    with writer.transaction():
        for n in range(300):
            writer.put_delivery(pending(n, float(n % 7)))
    claimers = [open_on(stores, store_url) for _ in range(2)]
    claimed: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def claim(i: int) -> None:
        store = claimers[i % 2]
        start.wait()
        while True:
            with store.transaction():
                got = store.claim_due_deliveries(100.0, 3)
            if not got:
                return
            claimed[i] += [d.delivery_id for d in got]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [delivery_id for ids in claimed for delivery_id in ids]
    assert len(every) == len(set(every)) == 300
    assert all(claimed), "every claimer got some"
    with writer.transaction():
        assert writer.next_delivery_due() is None


def test_a_delivery_is_written_with_the_job_change_of_its_transaction_or_not_at_all(stores, store_url: str,
                                                                                      clock) -> None:
    """A delivery put in a transaction whose commit conflicts is not written; rerun, it is, with the change."""
    a, b = open_on(stores, store_url), open_on(stores, store_url)
    engine_b = engine_on(b, clock, PROCESSING_MODE="manual")
    job_id = engine_b.submit("free", "u")[0]["job_id"]
    with pytest.raises(StoreConflict), a.transaction():
        job = a.get(job_id)
        a.put_delivery(pending(1))
        engine_b.cancel(job_id, "first")
        job.version += 1
        a.moved(job, job.stage)
    with b.transaction():
        assert b.delivery("msg_1") is None and b.next_delivery_due() is None
    with a.transaction():
        job = a.get(job_id)
        job.version += 1
        a.moved(job, job.stage)
        a.put_delivery(pending(1))
    with b.transaction():
        assert b.next_delivery_due() == 10.0 and b.get(job_id).version == job.version


def test_a_delivery_claimed_by_a_process_that_died_is_due_again_after_the_lease(stores, store_url: str) -> None:
    """A claimed delivery never put back (its process died mid-attempt) is claimed again once the lease is over."""
    a, b = open_on(stores, store_url), open_on(stores, store_url)
    with a.transaction():
        a.put_delivery(pending(1))
    with a.transaction():
        assert [d.delivery_id for d in a.claim_due_deliveries(10.0, 5)] == ["msg_1"]
    with b.transaction():
        assert b.claim_due_deliveries(10.0 + CLAIM_LEASE - 1, 5) == []
        assert [d.delivery_id for d in b.claim_due_deliveries(10.0 + CLAIM_LEASE + 1, 5)] == ["msg_1"]


def test_a_delivery_put_back_after_a_reset_removed_it_is_not_written_again(stores, store_url: str) -> None:
    """A claimed delivery whose attempt ends after another process reset the store is dropped, not revived."""
    a, b = open_on(stores, store_url), open_on(stores, store_url)
    with a.transaction():
        a.put_delivery(pending(1))
    with a.transaction():
        (claimed,) = a.claim_due_deliveries(10.0, 5)
    with a.transaction():
        assert a.delivery("msg_1") is not None  # the deliverer checks it is still stored
        with b.transaction():
            b.clear()
        claimed.status, claimed.finished_at, claimed.next_attempt_at = "succeeded", 11.0, None
        a.put_delivery(claimed)
    with b.transaction():
        assert list(b.deliveries()) == []


def test_a_secret_and_an_api_key_are_the_same_for_every_process(stores, store_url: str) -> None:
    """Two stores asking for a secret at once get the one made first; a key put by one is found by the other."""
    first, second = open_on(stores, store_url), open_on(stores, store_url)
    with first.transaction(), second.transaction():
        assert first.secret("result-links") == second.secret("result-links")
    with first.transaction():
        first.put_api_key(ApiKey("k1", "d1", "alice", "premium", 1.0))
    with second.transaction():
        assert second.api_key_by_digest("d1").role == "premium"
        second.remove_api_key("k1")
    with first.transaction():
        assert first.api_key_by_digest("d1") is None and list(first.api_keys()) == []


def test_an_api_key_check_is_one_round_trip(stores, store_url: str) -> None:
    """Looking a key up by digest costs one request to Redis, found or not."""
    store = open_on(stores, store_url, connection_class=CountingConnection)
    with store.transaction():
        store.put_api_key(ApiKey("k1", "d1", "alice", "premium", 1.0))
    for digest in ("d1", "unknown"):
        before = CountingConnection.sent
        with store.transaction():
            store.api_key_by_digest(digest)
        assert CountingConnection.sent - before == 1


def test_heygens_routes_on_two_apps_share_keys_replays_and_endpoints(stores, store_url: str, clock) -> None:
    """Over two apps on the same Redis: a key issued by one authenticates on the other, a v3 Idempotency-Key used
    on one replays its answer on the other, and an endpoint registered on one is listed by the other."""
    first, second = (create_app(FAST, clock=clock, store=open_on(stores, store_url)).test_client() for _ in range(2))
    admin = {"Authorization": f"Bearer {FAST['ADMIN_TOKEN']}"}
    key = {"X-Api-Key": first.post("/api-keys", json={"user_id": "alice", "role": "free"},
                                   headers=admin).get_json()["api_key"]}
    body = {"video": {"type": "url", "url": "https://videos.example/a.mp4"}, "output_languages": ["French"]}
    made = first.post("/v3/video-translations", json=body, headers={**key, "Idempotency-Key": "order-1"})
    again = second.post("/v3/video-translations", json=body, headers={**key, "Idempotency-Key": "order-1"})
    assert (made.status_code, again.status_code) == (200, 200)
    assert again.get_json() == made.get_json() and again.headers["Idempotent-Replayed"] == "true"
    added = first.post("/v1/webhook/endpoint.add", json={"url": "http://127.0.0.1:9/hook"}, headers=key)
    data = added.get_json()["data"]
    assert second.get("/v1/webhook/endpoint.list", headers=key).get_json()["data"] == [{**data, "secret": None}]
