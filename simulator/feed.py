"""The change feed: one ordered stream of every job change, which long-polls, event streams and webhooks read.

The engine publishes a `Change` for every transition (with the job's new version), every submission
and every removal, while it holds the store. Each change gets the next number of the feed (`seq`); a
bounded buffer keeps the latest ones so that a reader can resume from the last number it saw (an
event stream's `Last-Event-ID`), or learn that it fell too far behind (`FeedGap`) and must reload.

Waiting is race-free without holding the store: read `cursor()` first, then read the job, then
`wait_for_job(job_id, cursor, …)`: a change published in between is found in the buffer.

With a shared store, changes made by other processes arrive from the store's stream. When that stream
may have lost some (a reconnection), `resync()` marks a gap: every waiter re-reads its job, and a
reader following the feed gets `FeedGap` and reloads. The job's version stays the source of truth, so
a missed message costs a re-read, never a hang.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one job: what happened, the job's version after it, and when (simulated epoch s)."""

    seq: int
    kind: str  # submitted, started, retried, completed, failed, permanently_failed, cancelled, removed
    job_id: str
    user_id: str
    version: int
    at: float


class FeedGap(Exception):
    """The changes after this cursor are no longer buffered: reload the state, then follow from `cursor()`."""


class ChangeFeed:
    """An ordered, bounded buffer of changes with waiting by job or for any change."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._any = threading.Condition(self._lock)
        self._changes: deque[Change] = deque(maxlen=capacity)
        self._seq = 0
        self._job_waits: dict[str, list[object]] = {}  # job_id -> [Condition, number of waiters]
        self._closed = False
        self._resynced = 0  # the cursor of the last gap: changes before it may be missing

    @property
    def closed(self) -> bool:
        """Tell whether the feed was closed (the server is stopping): every wait answers at once."""
        return self._closed

    def cursor(self) -> int:
        """Return the number of the latest change (0 before any)."""
        return self._seq

    def publish(self, kind: str, job_id: str, user_id: str, version: int, at: float) -> Change:
        """Append a change and wake whoever waits for it."""
        with self._lock:
            self._seq += 1
            change = Change(self._seq, kind, job_id, user_id, version, at)
            self._changes.append(change)
            waits = self._job_waits.get(job_id)
            if waits is not None:
                waits[0].notify_all()  # type: ignore[attr-defined]
            self._any.notify_all()
            return change

    def since(self, cursor: int) -> list[Change]:
        """Return every change after `cursor`, oldest first; raise FeedGap if some are no longer buffered."""
        with self._lock:
            return self._since(cursor)

    def wait(self, cursor: int, timeout: float) -> list[Change]:
        """Return the changes after `cursor`, waiting up to `timeout` real seconds for one (empty: none came)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                changes = self._since(cursor)
                remaining = deadline - time.monotonic()
                if changes or self._closed or remaining <= 0:
                    return changes
                self._any.wait(remaining)

    def wait_for_job(self, job_id: str, cursor: int, timeout: float) -> bool:
        """Wait up to `timeout` real seconds for a change of `job_id` after `cursor`; tell whether one came.

        A cursor too old for the buffer counts as a change: the caller re-reads the job either way.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._changed(job_id, cursor) or self._closed:
                return True
            entry = self._job_waits.setdefault(job_id, [threading.Condition(self._lock), 0])
            entry[1] += 1  # type: ignore[operator]
            try:
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    entry[0].wait(remaining)  # type: ignore[attr-defined]
                    if self._changed(job_id, cursor) or self._closed:
                        return True
            finally:
                entry[1] -= 1  # type: ignore[operator]
                if entry[1] == 0:
                    del self._job_waits[job_id]

    def resync(self) -> None:
        """Mark a gap (changes may have been missed): wake every waiter to re-read, and make readers reload."""
        with self._lock:
            self._seq += 1
            self._resynced = self._seq
            for condition, _ in self._job_waits.values():
                condition.notify_all()  # type: ignore[attr-defined]
            self._any.notify_all()

    def waiting(self) -> int:
        """Return how many waits for a job are held now."""
        with self._lock:
            return sum(entry[1] for entry in self._job_waits.values())  # type: ignore[misc]

    def close(self) -> None:
        """Answer every held and future wait at once (the server is shutting down)."""
        with self._lock:
            self._closed = True
            for condition, _ in self._job_waits.values():
                condition.notify_all()  # type: ignore[attr-defined]
            self._any.notify_all()

    # ---------------------------------------------------------------- internals (lock held)

    def _since(self, cursor: int) -> list[Change]:
        changes = self._changes
        if cursor >= self._seq:
            return []
        if cursor < self._resynced:
            raise FeedGap(f"changes after {cursor} may be missing (resynchronised at {self._resynced})")
        oldest = changes[0].seq if changes else self._seq + 1
        if cursor < oldest - 1:
            raise FeedGap(f"changes after {cursor} are gone; the oldest buffered is {oldest}")
        return list(_tail(changes, self._seq - cursor))

    def _changed(self, job_id: str, cursor: int) -> bool:
        if cursor >= self._seq:
            return False
        try:
            return any(change.job_id == job_id for change in self._since(cursor))
        except FeedGap:
            return True


def _tail(changes: deque[Change], count: int) -> Iterator[Change]:
    """Yield the last `count` changes, oldest first, walking only those from the end of the buffer."""
    return reversed(list(itertools.islice(reversed(changes), count)))
