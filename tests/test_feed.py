"""Unit tests of the change feed: numbering, resuming from a cursor, and waiting for one job's changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from simulator.feed import ChangeFeed, FeedGap

JOB, OTHER = "job-1", "job-2"


def until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Return once `condition()` holds, which another thread is about to make true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        pause.wait(0.001)


class Waiter:
    """`feed.wait_for_job(job_id, cursor, timeout)` in a thread: its answer and how long it took."""

    def __init__(self, feed: ChangeFeed, job_id: str, timeout: float, cursor: int | None = None) -> None:
        self.answer: bool | None = None
        self.elapsed = 0.0
        start = feed.cursor() if cursor is None else cursor

        def run() -> None:
            began = time.monotonic()
            self.answer = feed.wait_for_job(job_id, start, timeout)
            self.elapsed = time.monotonic() - began

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, seconds: float = 2.0) -> bool | None:
        """Wait up to `seconds` for the answer; return it (None: still waiting)."""
        self.thread.join(seconds)
        return None if self.thread.is_alive() else self.answer


def publish(feed: ChangeFeed, job_id: str = JOB, kind: str = "started", version: int = 2) -> int:
    """Publish one change of `job_id` and return its number."""
    return feed.publish(kind, job_id, "alice", version, 100.0).seq


# ------------------------------------------------------------------------------------------ numbering


def test_changes_are_numbered_from_one_and_the_cursor_is_the_latest() -> None:
    """The first change is number 1, each next one adds 1, and cursor() is the latest number (0 before any)."""
    feed = ChangeFeed()
    assert feed.cursor() == 0
    assert [publish(feed), publish(feed, OTHER), publish(feed)] == [1, 2, 3]
    assert feed.cursor() == 3


def test_since_returns_exactly_the_changes_after_the_cursor_oldest_first() -> None:
    """since(c) answers every change numbered above c, in order, with what was published."""
    feed = ChangeFeed()
    for n in range(5):
        feed.publish("started", f"job-{n}", f"user-{n}", n + 1, 10.0 + n)
    assert [c.seq for c in feed.since(2)] == [3, 4, 5]
    third = feed.since(2)[0]
    assert (third.kind, third.job_id, third.user_id, third.version, third.at) == ("started", "job-2", "user-2", 3, 12.0)
    assert feed.since(5) == [] and feed.since(0)[0].seq == 1


def test_a_cursor_older_than_the_buffer_is_a_gap() -> None:
    """When the changes after a cursor were dropped from the bounded buffer, since() raises FeedGap."""
    feed = ChangeFeed(capacity=3)
    for _ in range(5):
        publish(feed)
    assert [c.seq for c in feed.since(2)] == [3, 4, 5]  # the oldest kept is 3: nothing lost after 2
    with pytest.raises(FeedGap, match="changes after 1 are gone; the oldest buffered is 3"):
        feed.since(1)


def test_a_resync_is_a_gap_for_every_older_cursor_and_takes_one_number() -> None:
    """After resync() a reader at any earlier cursor must reload; the resync takes one number, so a cursor read
    after it resumes normally with the next change."""
    feed = ChangeFeed()
    publish(feed)
    publish(feed)
    feed.resync()
    assert feed.cursor() == 3
    with pytest.raises(FeedGap, match=r"^changes after 2 may be missing \(resynchronised at 3\)$"):
        feed.since(2)
    assert feed.since(3) == []
    assert publish(feed) == 4
    assert [c.seq for c in feed.since(3)] == [4]


def test_a_resync_wakes_a_waiter_for_a_job_at_once() -> None:
    """A held wait for a job answers True as soon as the feed resynchronises: its job may have changed unseen."""
    feed = ChangeFeed()
    waiter = Waiter(feed, JOB, timeout=5)
    until(lambda: feed.waiting() == 1)
    feed.resync()
    waiter.thread.join(2)
    assert waiter.answer is True and waiter.elapsed < 2


def test_the_default_buffer_keeps_the_latest_ten_thousand_changes() -> None:
    """A reader 10 000 changes behind can resume; one a change further behind has to reload."""
    feed = ChangeFeed()
    for _ in range(10_001):
        publish(feed)
    assert len(feed.since(1)) == 10_000
    with pytest.raises(FeedGap):
        feed.since(0)


def test_wait_returns_the_changes_already_there_at_once() -> None:
    """wait(cursor) answers at once with the changes after the cursor when there are some."""
    feed = ChangeFeed()
    publish(feed)
    began = time.monotonic()
    assert [c.seq for c in feed.wait(0, timeout=5)] == [1]
    assert time.monotonic() - began < 0.5


def test_wait_with_nothing_new_times_out_empty() -> None:
    """wait(cursor) with no change after it answers an empty list after its timeout."""
    feed = ChangeFeed()
    publish(feed)
    began = time.monotonic()
    assert feed.wait(feed.cursor(), timeout=0.05) == []
    assert 0.04 <= time.monotonic() - began < 1.0


def test_wait_wakes_on_a_change_published_by_another_thread() -> None:
    """A held wait(cursor) answers the new change as soon as another thread publishes it."""
    feed = ChangeFeed()
    answers: list[list[int]] = []
    thread = threading.Thread(target=lambda: answers.append([c.seq for c in feed.wait(0, timeout=5)]), daemon=True)
    thread.start()
    publish(feed)
    thread.join(2)
    assert answers == [[1]]


# ------------------------------------------------------------------------------------ waiting for a job


def test_a_change_of_the_job_already_past_the_cursor_answers_at_once() -> None:
    """wait_for_job answers True at once when the job changed after the cursor, even before the wait began."""
    feed = ChangeFeed()
    cursor = feed.cursor()
    publish(feed)
    began = time.monotonic()
    assert feed.wait_for_job(JOB, cursor, timeout=5) is True
    assert time.monotonic() - began < 0.5


def test_changes_of_other_jobs_do_not_end_a_wait() -> None:
    """A change of another job leaves the wait held until its timeout, which answers False."""
    feed = ChangeFeed()
    cursor = feed.cursor()
    publish(feed, OTHER)
    began = time.monotonic()
    assert feed.wait_for_job(JOB, cursor, timeout=0.05) is False
    assert 0.04 <= time.monotonic() - began < 1.0


def test_a_held_wait_wakes_on_its_job_changing_in_another_thread() -> None:
    """A held wait_for_job answers True as soon as its job changes, long before its timeout."""
    feed = ChangeFeed()
    waiter = Waiter(feed, JOB, timeout=10)
    until(lambda: feed.waiting() == 1)
    publish(feed, OTHER)  # wakes nobody for good: another job
    assert waiter.join(0.05) is None
    publish(feed, JOB, kind="completed", version=3)
    assert waiter.join() is True
    assert waiter.elapsed < 5


@pytest.mark.parametrize("kind", ["started", "failed", "removed"])
def test_any_change_of_the_job_ends_the_wait(kind: str) -> None:
    """Not only a finish: a start, a failure or the job's removal (cleanup, TTL) wakes its waiter."""
    feed = ChangeFeed()
    waiter = Waiter(feed, JOB, timeout=10)
    until(lambda: feed.waiting() == 1)
    publish(feed, JOB, kind=kind)
    assert waiter.join() is True


def test_a_cursor_too_old_for_the_buffer_counts_as_a_change() -> None:
    """When the changes after the cursor are gone, the waiter cannot know, so it answers True to re-read the job."""
    feed = ChangeFeed(capacity=2)
    for _ in range(4):
        publish(feed, OTHER)
    began = time.monotonic()
    assert feed.wait_for_job(JOB, 0, timeout=5) is True
    assert time.monotonic() - began < 0.5


def test_waiting_counts_the_held_waits_and_drops_to_zero() -> None:
    """waiting() is the number of waits held now, whichever job they are for; 0 once they all ended."""
    feed = ChangeFeed()
    first, second, third = Waiter(feed, JOB, 10), Waiter(feed, JOB, 10), Waiter(feed, OTHER, 10)
    until(lambda: feed.waiting() == 3)
    publish(feed, OTHER)
    assert third.join() is True
    assert feed.waiting() == 2
    publish(feed, JOB)
    assert (first.join(), second.join()) == (True, True)
    assert feed.waiting() == 0


def test_a_waiter_that_times_out_leaves_the_other_waiters_of_its_job_wakeable() -> None:
    """When one of two waits for a job times out, the other still wakes at once on the job's next change."""
    feed = ChangeFeed()
    patient = Waiter(feed, JOB, timeout=10)
    until(lambda: feed.waiting() == 1)
    hasty = Waiter(feed, JOB, timeout=0.05)
    assert hasty.join() is False
    assert feed.waiting() == 1
    publish(feed, JOB)
    assert patient.join() is True
    assert patient.elapsed < 5


def test_waits_for_a_job_can_be_held_again_after_the_last_one_ended() -> None:
    """After every wait for a job ended, a new wait for it is woken by its next change like the first."""
    feed = ChangeFeed()
    assert feed.wait_for_job(JOB, feed.cursor(), timeout=0.01) is False
    waiter = Waiter(feed, JOB, timeout=10)
    until(lambda: feed.waiting() == 1)
    publish(feed, JOB)
    assert waiter.join() is True


def test_close_answers_held_and_later_waits_at_once() -> None:
    """close() wakes every held wait (for a job or for any change), and later waits no longer block."""
    feed = ChangeFeed()
    for_job = Waiter(feed, JOB, timeout=10)
    any_change: list[list[object]] = []
    thread = threading.Thread(target=lambda: any_change.append(feed.wait(0, timeout=10)), daemon=True)
    thread.start()
    until(lambda: feed.waiting() == 1)
    feed.close()
    assert feed.closed
    assert for_job.join() is True
    thread.join(2)
    assert any_change == [[]]
    began = time.monotonic()
    assert feed.wait_for_job(JOB, feed.cursor(), timeout=5) is True
    assert feed.wait(feed.cursor(), timeout=5) == []
    assert time.monotonic() - began < 0.5
