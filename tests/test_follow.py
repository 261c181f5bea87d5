"""The feed follower: one thread between the change feed and the event loop (no sockets, no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from simulator.feed import Change, ChangeFeed
from simulator.follow import FeedFollower


def run(coroutine: Any) -> Any:
    """Run a coroutine to its end on a fresh event loop."""
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_each_batch_is_prepared_in_the_thread_and_delivered_in_the_loop() -> None:
    """prepare sees the changes in the follower's thread; deliver gets what it returned, in the event loop."""
    feed = ChangeFeed()

    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Queue[Any] = asyncio.Queue()
        follower = FeedFollower(feed, loop)
        follower.subscribe(lambda changes: [c.job_id for c in changes or []] or None,
                           lambda ids: delivered.put_nowait((ids, asyncio.get_running_loop() is loop)))
        follower.start()
        got = []
        for job in ("a", "b"):
            feed.publish("submitted", job, "u", 1, 0.0)
            got.append(await delivered.get())
        feed.close()
        await loop.run_in_executor(None, follower.join, 5)
        return got

    assert run(scenario()) == [(["a"], True), (["b"], True)]


def test_a_follower_that_falls_behind_is_told_so_with_none() -> None:
    """When the feed's buffer overflowed past the follower's cursor, prepare gets None (reload everything)."""
    feed = ChangeFeed(capacity=2)

    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        seen: asyncio.Queue[Sequence[Change] | None] = asyncio.Queue()
        follower = FeedFollower(feed, loop)
        follower.subscribe(lambda changes: loop.call_soon_threadsafe(seen.put_nowait, changes) or None,
                           lambda _: None)
        for n in range(5):  # before the thread starts: it begins at cursor 0, three changes are gone
            feed.publish("submitted", f"j{n}", "u", 1, 0.0)
        follower.start()
        first = await seen.get()
        feed.close()
        await loop.run_in_executor(None, follower.join, 5)
        return [first]

    assert run(scenario()) == [None]


def test_a_failing_subscriber_does_not_stop_the_others_and_closing_ends_the_thread() -> None:
    """An exception in one prepare is logged; the next subscriber still gets the batch; close() ends the thread."""
    feed = ChangeFeed()

    async def scenario() -> tuple[list[str], bool]:
        loop = asyncio.get_running_loop()
        delivered: asyncio.Queue[list[str]] = asyncio.Queue()
        follower = FeedFollower(feed, loop)
        follower.subscribe(lambda changes: 1 / 0, lambda _: None)
        follower.subscribe(lambda changes: [c.job_id for c in changes or []], delivered.put_nowait)
        follower.start()
        feed.publish("submitted", "x", "u", 1, 0.0)
        got = await delivered.get()
        feed.close()
        await loop.run_in_executor(None, follower.join, 5)
        return got, follower._thread.is_alive()

    assert run(scenario()) == (["x"], False)
