"""The engine's reads and hook for observers: depths per role, running views, observe() in step with the feed."""

from __future__ import annotations

from tests.conftest import FakeClock, make_engine


def test_depths_count_queued_jobs_per_role_running_and_stored(each_store: str, clock: FakeClock) -> None:
    """depths() says how many jobs each lane holds, how many run and how many are stored."""
    engine = make_engine(clock, WORKERS=1)
    for role in ("free", "free", "premium", "free", "premium"):
        engine.submit(role, "alice")
    assert engine.depths() == {"free": 2, "premium": 2, "running": 1, "stored": 5}
    clock.advance(10)  # the first free job completes; the first premium one starts
    assert engine.depths() == {"free": 2, "premium": 1, "running": 1, "stored": 5}


def test_running_returns_the_views_of_the_jobs_being_translated(each_store: str, clock: FakeClock) -> None:
    """running() lists exactly the translating jobs, as get() shows them."""
    engine = make_engine(clock, WORKERS=2)
    jobs = [engine.submit("free", f"user-{i}")[0] for i in range(3)]
    clock.advance(4)
    running = engine.running()
    assert sorted(view["job_id"] for view in running) == sorted(job["job_id"] for job in jobs[:2])
    assert all(view == engine.get(view["job_id"]) and view["progress"] == 40 for view in running)


def test_observers_see_every_change_the_feed_publishes_in_the_same_order(each_store: str, clock: FakeClock) -> None:
    """observe(fn) calls fn(kind, job, at) once per published change, in feed order, with the job as changed."""
    engine = make_engine(clock, WORKERS=1, ERROR_RATE=0.5)
    seen: list[tuple[str, str, int, float]] = []
    engine.observe(lambda kind, job, at: seen.append((kind, job.job_id, job.version, at)))
    for i in range(6):
        engine.submit("premium" if i % 2 else "free", "alice")
        clock.advance(7)
    unfinished = [job for job in engine.jobs() if not job["done"]]
    engine.cancel(unfinished[-1]["job_id"])
    clock.advance(200)
    engine.cleanup(["completed", "cancelled", "permanently_failed"])
    published = [(c.kind, c.job_id, c.version, c.at) for c in engine.feed.since(0)]
    assert seen == published and len(seen) > 12
