"""Property-based test of jobs.py: random sequences of operations keep the engine's invariants.

And the invariant checker itself, on stores broken on purpose: it must name every kind of breakage.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import config
from jobs import ROLES, InvalidArgument, JobEngine, Scenario, Stage, Status, TransitionRefused
from simulator.domain import Job, check_invariants
from simulator.store import MemoryStore, Store
from simulator.store.redis_store import RedisStore
from simulator.store.sqlite import SqliteStore
from tests.conftest import FakeClock, redis_store_url

TERMINAL = {s.value for s in Status if s.terminal}


class EngineMachine(RuleBasedStateMachine):
    """Drives one engine on a fake clock and checks, after every step, what must always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        start = config.from_mapping({"TRANSLATION_DELAY": 2.0, "DELAY_JITTER": 0.5, "ERROR_RATE": 0.3,
                                     "MAX_RETRIES": 1, "WORKERS": 2, "RATE_LIMIT": 5})
        self.engine = JobEngine(start, store=self.new_store(), clock=self.clock, rng=random.Random(0))
        self.ids: list[str] = []
        self.terminal: dict[str, str] = {}  # job -> the terminal status it reached
        self.progress: dict[tuple[str, int], int] = {}  # (job, attempt) -> progress seen while translating
        self.grandfathered = 0  # jobs running beyond WORKERS because WORKERS was lowered or mode switched

    def new_store(self) -> Store:
        """Return the store the engine keeps its jobs in."""
        return MemoryStore()

    # ------------------------------------------------------------------ operations

    @rule(role=st.sampled_from(sorted(ROLES)), user=st.sampled_from(["ann", "ben", "cy"]))
    def submit(self, role: str, user: str) -> None:
        view, _ = self.engine.submit(role, user)
        self.ids.append(view["job_id"])

    @rule(outcomes=st.lists(st.sampled_from(["succeed", "fail"]), min_size=1, max_size=4),
          seconds=st.lists(st.sampled_from([0.0, 0.5, 3.0]), min_size=1, max_size=3),
          faults=st.integers(min_value=0, max_value=2))
    def submit_scripted(self, outcomes: list[str], seconds: list[float], faults: int) -> None:
        script = {"outcomes": outcomes, "attempt_seconds": seconds}
        if faults:
            script["status_faults"] = [{"status": 503, "times": faults}]
        view, _ = self.engine.submit("free", "dee", simulate=Scenario.parse(script))
        self.ids.append(view["job_id"])
        assert [self.engine.take_read_fault(view["job_id"]) is not None for _ in range(faults + 1)] == (
            [True] * faults + [False])

    @rule(keep_config=st.booleans())
    def reset(self, keep_config: bool) -> None:
        settings = self.engine.settings
        self.engine.reset(restore_config=not keep_config)
        assert self.engine.counts() == {"jobs": 0, "queued": 0, "running": 0}
        assert self.engine.settings == (settings if keep_config else self.engine.config.initial)
        self.ids, self.terminal, self.progress, self.grandfathered = [], {}, {}, 0

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids))
        try:
            before = self.engine.get(job_id)
        except Exception:
            return  # removed by cleanup or TTL
        try:
            view, already = self.engine.cancel(job_id, "test")
        except TransitionRefused:
            assert before["status"] in ("completed", "permanently_failed")
            return
        assert view["status"] == "cancelled"
        assert already == (before["status"] == "cancelled")

    @rule(count=st.integers(min_value=1, max_value=3))
    def start_next(self, count: int) -> None:
        queued_before = [j["job_id"] for j in self.engine.queue()["queued"]]
        started = [j["job_id"] for j in self.engine.start_next(count)]
        assert started == queued_before[: len(started)], "jobs start in queue order"

    @rule(
        workers=st.integers(min_value=1, max_value=4),
        mode=st.sampled_from(["auto", "manual"]),
        error_rate=st.sampled_from([0.0, 0.5, 1.0]),
        retries=st.integers(min_value=0, max_value=2),
        delay=st.sampled_from([0.0, 0.5, 2.0, 7.0]),
    )
    def configure(self, workers: int, mode: str, error_rate: float, retries: int, delay: float) -> None:
        self.engine.configure({"WORKERS": workers, "PROCESSING_MODE": mode, "ERROR_RATE": error_rate,
                               "MAX_RETRIES": retries, "TRANSLATION_DELAY": delay})
        self.grandfathered = len(self.engine.queue()["running"])

    @rule(seconds=st.floats(min_value=0, max_value=10, allow_nan=False))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.engine.advance()

    @rule(statuses=st.sets(st.sampled_from(sorted(TERMINAL)), min_size=1),
          older_than=st.sampled_from([0.0, 1.0, 30.0]))
    def cleanup(self, statuses: set[str], older_than: float) -> None:
        self.engine.cleanup([Status(s) for s in statuses], older_than)

    @rule(status=st.sampled_from(["pending", "failed"]))
    def cleanup_refuses_unfinished(self, status: str) -> None:
        try:
            self.engine.cleanup([Status(status)])
        except InvalidArgument:
            return
        raise AssertionError("cleaning up unfinished jobs must be refused")

    # ------------------------------------------------------------------ invariants

    @invariant()
    def structure_holds(self) -> None:
        """Each job is in exactly one place, in order, with no priority or FIFO inversion, within its attempts."""
        assert self.engine.check_invariants() == []

    @invariant()
    def workers_bound_running_jobs_in_auto_mode(self) -> None:
        """In auto mode no job starts while WORKERS are busy (jobs already running when it was lowered finish)."""
        queue = self.engine.queue()
        running = len(queue["running"])
        if running <= queue["workers"]:
            self.grandfathered = 0
        if queue["mode"] == "auto":
            assert running <= max(queue["workers"], self.grandfathered)
            if queue["queued"]:
                assert running >= queue["workers"], "a free slot with a queued job in auto mode"

    @invariant()
    def terminal_statuses_never_change(self) -> None:
        """A completed, permanently failed or cancelled job stays so until it is removed."""
        for view in self.engine.jobs():
            if view["job_id"] in self.terminal:
                assert view["status"] == self.terminal[view["job_id"]]
            elif view["status"] in TERMINAL:
                self.terminal[view["job_id"]] = view["status"]
            assert view["attempts"] <= 1 + view["max_retries"]

    @invariant()
    def progress_never_goes_backwards_within_an_attempt(self) -> None:
        """While an attempt runs its progress only grows; a completed job is at 100."""
        for view in self.engine.jobs():
            key = (view["job_id"], view["attempts"])
            if view["stage"] == Stage.TRANSLATING.value:
                assert view["progress"] >= self.progress.get(key, 0)
                self.progress[key] = view["progress"]
            elif view["status"] == "completed":
                assert view["progress"] == 100


EngineMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True, database=None
)
TestEngineInvariants = EngineMachine.TestCase


class SqliteEngineMachine(EngineMachine):
    """The same machine on the SQLite store, which is also closed and read back between steps."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="engine-machine-")
        super().__init__()

    def new_store(self) -> Store:
        return SqliteStore(os.path.join(self.directory, "jobs.db"))

    @rule()
    def reopen(self) -> None:
        """Close the store and open it again: every job reads back exactly as it was, and the run goes on."""
        before = self.engine.jobs()
        self.engine.store.close()
        # RANDOM_SEED as the server uses it: the reopened store's counter keeps new ids from repeating old ones.
        settings = dataclasses.replace(self.engine.settings, RANDOM_SEED=1)
        self.engine = JobEngine(settings, store=self.new_store(), clock=self.clock)
        assert self.engine.jobs() == before

    def teardown(self) -> None:
        self.engine.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)


SqliteEngineMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, derandomize=True, database=None
)
TestSqliteEngineInvariants = SqliteEngineMachine.TestCase


# ------------------------------------------------------------------ the checker itself, on stores broken on purpose


def stored(store: MemoryStore, job_id: str, role: str = "free", stage: Stage = Stage.QUEUED, seq: int = 0,
           **fields: object) -> Job:
    """Add a job to `store` in `stage` (filed as that stage's index wants it) and return it."""
    record = {"user_id": "ann", "created_at": 0.0, "video_url": None, "target_language": None,
              "idempotency_key": None, "max_retries": 1, **fields}
    job = Job(job_id=job_id, role=role, stage=stage, submitted_seq=seq, enqueued_seq=seq, **record)  # type: ignore[arg-type]
    store.add(job)
    return job


def test_a_consistent_store_has_no_problems() -> None:
    """Jobs filed where their stage says, in queue order, within their attempts: the checker reports nothing."""
    store = MemoryStore()
    stored(store, "p", "premium", seq=3)
    stored(store, "f", seq=1, idempotency_key="k")
    stored(store, "r", stage=Stage.TRANSLATING, seq=0, started_seq=2, attempts=2)
    stored(store, "c", stage=Stage.FINISHED, status=Status.COMPLETED, seq=4)
    assert check_invariants(store) == []


def test_the_checker_reports_a_job_indexed_but_no_longer_stored() -> None:
    """A running job removed from the store but left in the running set is named, and the counts disagree."""
    store = MemoryStore()
    job = stored(store, "r", stage=Stage.TRANSLATING, started_seq=1, attempts=1)
    store.remove(job)
    assert check_invariants(store) == [
        "an index holds r, which is not stored",
        "a queue, the running set or the finished list holds an unknown id",
    ]


def test_the_checker_reports_a_job_in_two_places_and_at_the_wrong_stage() -> None:
    """A job filed both as queued and as running is in 2 places; a queued job said to translate is misplaced."""
    store = MemoryStore()
    twice = stored(store, "twice")
    twice.stage = Stage.TRANSLATING
    store.add(twice)  # filed again, as running
    assert check_invariants(store) == ["twice is in 2 places"]
    store = MemoryStore()
    stored(store, "moved").stage = Stage.TRANSLATING  # changed without telling the store
    assert check_invariants(store) == ["moved is translating but not kept as such"]


def test_the_checker_reports_statuses_that_do_not_fit_the_stage() -> None:
    """A terminal status while queued, and a failed job that is not queued for its retry, are both named."""
    store = MemoryStore()
    stored(store, "q", seq=5).status = Status.CANCELLED
    stored(store, "r", stage=Stage.TRANSLATING, seq=1, started_seq=2, attempts=1).status = Status.FAILED
    assert check_invariants(store) == [
        "q is cancelled at stage queued",
        "r is failed but not queued for its retry",
    ]


def test_the_checker_allows_one_plus_max_retries_attempts_and_no_more() -> None:
    """With MAX_RETRIES 1 two attempts are fine and a third is reported."""
    store = MemoryStore()
    job = stored(store, "r", stage=Stage.TRANSLATING, started_seq=1, attempts=2)
    assert check_invariants(store) == []
    job.attempts = 3
    assert check_invariants(store) == ["r made 3 attempts, more than 1 + 1"]


def test_the_checker_reports_a_job_missing_from_its_users_history_or_key() -> None:
    """A job whose user or Idempotency-Key changed behind the store's back cannot be found by them."""
    store = MemoryStore()
    stored(store, "a", seq=0).user_id = "bob"
    stored(store, "b", seq=1).idempotency_key = "k"
    assert check_invariants(store) == [
        "a is missing from its user's history",
        "the idempotency key of b does not lead to it",
    ]


def test_the_checker_reports_priority_and_fifo_inversions_in_each_lane() -> None:
    """A premium job behind a free one, and a lane out of its queueing order, are reported with wrong positions."""
    store = MemoryStore()
    stored(store, "f", seq=0)
    stored(store, "p", seq=1).role = "premium"  # in the free lane, behind f
    problems = check_invariants(store)
    assert "a free job is queued before a premium one" in problems
    assert "p is said to be at 1, not 2" in problems
    for role in ("premium", "free"):
        store = MemoryStore()
        stored(store, "first", role, seq=0).enqueued_seq = 5
        stored(store, "second", role, seq=1)
        assert "a lane is not in the order its jobs were queued" in check_invariants(store), role


def test_the_checker_reports_a_job_started_out_of_order_after_one_that_was_in_order() -> None:
    """Every running job is compared with every queued one, also after a running job that started first."""
    for role, message in [("premium", "free late started while premium waiting waited"),
                          ("free", "late started before waiting, queued earlier")]:
        store = MemoryStore()
        stored(store, "early", stage=Stage.TRANSLATING, seq=0, started_seq=1, attempts=1)  # before `waiting` came
        stored(store, "waiting", role, seq=2)
        stored(store, "late", stage=Stage.TRANSLATING, seq=3, started_seq=4, attempts=1)
        assert check_invariants(store) == [message]


class HidingStore(MemoryStore):
    """A store broken on purpose: its running index hides every job, while its count still counts them."""

    def running(self) -> list[Job]:
        return []


def test_the_checker_reports_a_job_in_no_index_and_counts_that_disagree() -> None:
    """A stored job that no index holds is in 0 places, and the running count no longer matches the index."""
    store = HidingStore()
    stored(store, "r", stage=Stage.TRANSLATING, started_seq=1, attempts=1)
    assert check_invariants(store) == [
        "r is in 0 places",
        "r is translating but not kept as such",
        "a queue, the running set or the finished list holds an unknown id",
        "the queue or running counts disagree with the indexes",
    ]


_REDIS: dict[str, str] = {}


@pytest.fixture(scope="module")
def _redis_for_machines(redis_url: str) -> None:
    """Let the Redis machines below open stores on the session's Redis server (only they start one: a run of the
    other machines, such as mutation testing's `-k "not redis"`, starts no redis-server)."""
    _REDIS["url"] = redis_url


class RedisEngineMachine(EngineMachine):
    """The same machine on the Redis store; `switch` moves to a second engine on the same keys (another process)."""

    def __init__(self) -> None:
        self.url = redis_store_url(_REDIS["url"])
        self.stores: list[RedisStore] = []
        super().__init__()
        self.engines = [self.engine, JobEngine(self.engine.settings, store=self.new_store(), clock=self.clock,
                                               rng=random.Random(1))]

    def new_store(self) -> Store:
        store = RedisStore(self.url)
        self.stores.append(store)
        return store

    @rule()
    def switch(self) -> None:
        """Carry on in the other process: it reads everything the first one changed, from Redis."""
        self.engine = self.engines[1] if self.engine is self.engines[0] else self.engines[0]
        # What its follower would have applied: its start-up settings (a reset drops the stored ones), then those
        # any process changed since.
        self.engine.config.restore()
        self.engine.config.update(self.engine.store.stored_settings())

    def teardown(self) -> None:
        for store in self.stores:
            store.close()


RedisEngineMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None, derandomize=True, database=None
)
TestRedisEngineInvariants = pytest.mark.usefixtures("_redis_for_machines")(RedisEngineMachine.TestCase)
