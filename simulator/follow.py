"""One thread that follows the change feed for the event loop: every batch of changes, prepared, then delivered.

Async routes must never block the event loop, and a thread per waiting request is what they exist to
avoid. `FeedFollower` is the one thread between them and the `ChangeFeed`: it waits on `feed.wait`,
and for each batch of changes calls every subscriber's `prepare(changes)` in its own thread (where
reading the engine may block on the store: read the jobs, encode their answers once), then hands what
`prepare` returned to `deliver(prepared)` in the event loop (where the waiting requests are answered).

`prepare(None)` means the follower fell behind the feed's buffer (`FeedGap`): anything may have changed.
When the feed is closed (the server is stopping) the thread ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.feed import Change, ChangeFeed, FeedGap

log = logging.getLogger("server")

#: Called in the follower's thread with a batch of changes (None: some were missed); returns what to deliver.
Prepare = Callable[[Sequence[Change] | None], Any]
#: Called in the event loop with what `prepare` returned (not called when it returned None).
Deliver = Callable[[Any], None]


@dataclass(frozen=True)
class Subscription:
    """One subscriber: `prepare` in the follower's thread, then `deliver` in the event loop."""

    prepare: Prepare
    deliver: Deliver


class FeedFollower:
    """Follows a ChangeFeed in one thread and delivers each batch of changes to the event loop's subscribers."""

    def __init__(self, feed: ChangeFeed, loop: asyncio.AbstractEventLoop) -> None:
        self.feed = feed
        self.loop = loop
        self._cursor = feed.cursor()  # it follows every change after it was made
        self._subscriptions: list[Subscription] = []
        self._thread = threading.Thread(target=self._run, name="feed-follower", daemon=True)

    def subscribe(self, prepare: Prepare, deliver: Deliver) -> Subscription:
        """Add a subscriber; its `prepare` sees every batch after the one being prepared now."""
        subscription = Subscription(prepare, deliver)
        self._subscriptions = [*self._subscriptions, subscription]  # replaced, never changed: read without a lock
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a subscriber."""
        self._subscriptions = [s for s in self._subscriptions if s is not subscription]

    def start(self) -> FeedFollower:
        """Start the thread; return self."""
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (it ends once the feed is closed)."""
        self._thread.join(timeout)

    def _run(self) -> None:
        feed = self.feed
        cursor = self._cursor
        while True:
            try:
                changes: Sequence[Change] | None = feed.wait(cursor, 1.0)
            except FeedGap:
                changes, cursor = None, feed.cursor()
            if changes:
                cursor = changes[-1].seq
            if changes is None or changes:
                for subscription in self._subscriptions:
                    self._prepare(subscription, changes)
            if feed.closed:
                return

    def _prepare(self, subscription: Subscription, changes: Sequence[Change] | None) -> None:
        try:
            prepared = subscription.prepare(changes)
        except Exception:  # one subscriber's failure must not stop the others, nor the thread
            log.exception("a feed subscriber failed to prepare changes")
            return
        if prepared is not None:
            try:
                self.loop.call_soon_threadsafe(subscription.deliver, prepared)
            except RuntimeError:  # the loop is closed: the server has stopped
                return
