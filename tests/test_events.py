"""The event hub without HTTP: frames, replay from a cursor, resets, filters, progress, heartbeats, async fan-out.

The hub runs unthreaded here: each test calls `pump(now)` where the thread would, with a fake clock
for the engine and made-up monotonic times for the ticks.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from simulator.events import (
    HEARTBEAT,
    EventHub,
    StreamFilter,
    StreamRequestError,
    Subscription,
    TooManyStreams,
    parse_request,
    sse_frame,
)
from simulator.feed import ChangeFeed
from tests.conftest import ROOT, FakeClock, make_engine
from tests.sse import Event, named, parse


def hub_for(engine, **options) -> EventHub:
    """Return an unthreaded hub on `engine`."""
    return EventHub(engine, threaded=False, **{"monotonic": lambda: 0.0, **options})


def events(subscription: Subscription) -> list[Event]:
    """Return what the subscription has unsent, parsed."""
    return parse(b"".join(subscription.drain()))


def changes(subscription: Subscription) -> list[Event]:
    """Return the unsent events that are changes (not ready, reset, progress or comments)."""
    return [e for e in named(events(subscription)) if e.event not in ("ready", "reset", "progress")]


# ------------------------------------------------------------------------------------------------ frames


def test_a_frame_has_the_id_the_event_name_and_one_line_of_json() -> None:
    """sse_frame writes `id:`, `event:` and a single `data:` line of compact JSON, ended by a blank line."""
    frame = sse_frame("completed", {"text": "two\nlines", "n": 1}, 42)
    assert frame == b'id: 42\nevent: completed\ndata: {"text":"two\\nlines","n":1}\n\n'
    assert parse(frame) == [Event(42, "completed", {"text": "two\nlines", "n": 1})]


def test_a_new_stream_starts_with_retry_and_ready_at_the_current_cursor(clock: FakeClock) -> None:
    """A stream without Last-Event-ID begins `retry:` then `ready` whose id is the feed's newest number."""
    engine = make_engine(clock)
    engine.submit("free", "alice")
    hub = hub_for(engine)
    subscription = hub.subscribe()
    raw = b"".join(subscription.drain())
    assert raw.startswith(b"retry: 2000\n\n")
    (ready,) = parse(raw)
    assert (ready.id, ready.event) == (engine.feed.cursor(), "ready")
    assert ready.data["resumed"] is False and ready.data["cursor"] == engine.feed.cursor()
    assert ready.data["boot"] == hub.boot != hub_for(engine).boot  # another hub (a restarted server): another boot


# ------------------------------------------------------------------------------------------------ changes


def test_each_change_is_an_event_named_by_its_kind_with_the_job_view_and_version(clock: FakeClock) -> None:
    """A submission in manual mode arrives as `submitted`, id = its feed number, with the job's view and version."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine)
    subscription = hub.subscribe()
    subscription.drain()
    job, _ = engine.submit("premium", "alice")
    hub.pump(0.0)
    (event,) = changes(subscription)
    assert (event.id, event.event) == (engine.feed.cursor(), "submitted")
    assert event.data["seq"] == event.id and event.data["version"] == 1
    assert (event.data["job_id"], event.data["user_id"]) == (job["job_id"], "alice")
    assert event.data["job"] == engine.get(job["job_id"])


def test_every_kind_of_change_is_streamed(clock: FakeClock) -> None:
    """Submitted, started, failed, retried, permanently_failed, completed, cancelled and removed all arrive."""
    engine = make_engine(clock, ERROR_RATE=1.0, MAX_RETRIES=1, WORKERS=1)
    hub = hub_for(engine)
    subscription = hub.subscribe()
    engine.submit("free", "alice")
    queued, _ = engine.submit("free", "bob")
    engine.cancel(queued["job_id"])
    clock.advance(100)  # every attempt of the first job fails
    engine.configure({"ERROR_RATE": 0.0})
    engine.submit("premium", "carol")
    clock.advance(100)
    engine.cleanup(["completed", "cancelled", "permanently_failed"])
    hub.pump(0.0)
    kinds = [e.event for e in changes(subscription)]
    assert set(kinds) == {"submitted", "started", "failed", "retried", "permanently_failed", "completed",
                          "cancelled", "removed"}
    assert kinds.count("removed") == 3


def test_a_removed_job_has_a_null_view() -> None:
    """The `removed` event names the job but its view is null: the job is gone."""
    clock = FakeClock()
    engine = make_engine(clock, TRANSLATION_DELAY=0.0)
    hub = hub_for(engine)
    subscription = hub.subscribe()
    job, _ = engine.submit("free", "alice")
    engine.cleanup()
    hub.pump(0.0)
    removed = [e for e in changes(subscription) if e.event == "removed"]
    assert [(e.data["job_id"], e.data["job"]) for e in removed] == [(job["job_id"], None)]


def test_events_arrive_in_feed_order_with_increasing_ids(clock: FakeClock) -> None:
    """Ids of the changes a stream gets are the feed's numbers, each once, in order."""
    engine = make_engine(clock)
    hub = hub_for(engine)
    subscription = hub.subscribe()
    for i in range(30):
        engine.submit("premium" if i % 2 else "free", f"user-{i % 4}")
        clock.advance(1.5)
        if i % 7 == 0:
            hub.pump(float(i))
    newest = engine.feed.cursor()
    hub.pump(100.0)
    ids = [e.id for e in changes(subscription)]
    assert ids == list(range(1, ids[-1] + 1)) and ids[-1] >= newest


# ------------------------------------------------------------------------------------------------ resuming


def test_resuming_from_a_last_event_id_loses_and_repeats_nothing(clock: FakeClock) -> None:
    """A stream reopened after event N gets `ready` (resumed) and exactly the events after N a live one got."""
    engine = make_engine(clock)
    hub = hub_for(engine)
    live = hub.subscribe()
    first = hub.subscribe()
    for i in range(10):
        engine.submit("free", f"user-{i}")
        clock.advance(2)
    hub.pump(0.0)
    seen = changes(first)
    first.close()
    last = seen[4].id
    for i in range(5):
        engine.submit("premium", f"later-{i}")
        clock.advance(3)
    hub.pump(1.0)
    resumed = hub.subscribe(last_event_id=last)
    hub.pump(2.0)
    got = named(events(resumed))
    assert (got[0].event, got[0].id, got[0].data["resumed"]) == ("ready", last, True)
    everything = changes(live)
    assert [e.id for e in got[1:]] == [e.id for e in everything if e.id > last]
    assert [e.data for e in got[1:]] == [e.data for e in everything if e.id > last]  # the very same frames


def test_resuming_after_a_change_the_hub_has_not_read_yet_waits_for_it(clock: FakeClock) -> None:
    """An id newer than the hub's cursor (but known to the feed) resumes: the hub brings the changes after it."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine)
    for i in range(4):
        engine.submit("free", f"user-{i}")
    subscription = hub.subscribe(last_event_id=2)
    hub.pump(0.0)
    got = named(events(subscription))
    assert got[0].event == "ready" and got[0].data["resumed"] is True
    assert [e.id for e in got[1:]] == [3, 4]


@pytest.mark.parametrize(("last", "reason"), [(10_000, "unknown_event_id"), (1, "too_old")])
def test_a_last_event_id_that_cannot_be_resumed_gets_a_reset(clock: FakeClock, last: int, reason: str) -> None:
    """An id from the future (a restarted server) or older than the replay log starts with `reset`, not `ready`."""
    engine = make_engine(clock)
    hub = hub_for(engine, replay_capacity=5)
    hub.subscribe()
    for i in range(20):
        engine.submit("free", f"user-{i}")
    hub.pump(0.0)
    subscription = hub.subscribe(last_event_id=last)
    (first,) = named(events(subscription))
    newest = engine.feed.cursor()
    assert (first.event, first.id, first.data) == ("reset", newest, {"reason": reason, "cursor": newest,
                                                                     "boot": hub.boot})


def test_a_hub_that_falls_behind_the_feed_resets_its_streams(clock: FakeClock) -> None:
    """When the feed dropped changes the hub had not read, every stream that missed some gets `reset`."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    engine.feed = ChangeFeed(capacity=5)
    hub = hub_for(engine)
    subscription = hub.subscribe()
    subscription.drain()
    for i in range(20):
        engine.submit("free", f"user-{i}")
    hub.pump(0.0)
    (reset,) = named(events(subscription))
    assert reset.event == "reset" and reset.id == engine.feed.cursor()
    engine.submit("free", "after")
    hub.pump(1.0)
    assert [e.id for e in changes(subscription)] == [engine.feed.cursor()]


def test_a_stream_too_far_behind_gets_a_reset_instead_of_its_backlog(clock: FakeClock) -> None:
    """A reader that leaves more than `backlog_bytes` unsent gets one `reset` in their place, then new events."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine, backlog_bytes=5_000)  # about seven submitted events
    slow = hub.subscribe()
    for i in range(15):
        engine.submit("free", f"user-{i}")
    hub.pump(0.0)
    got = named(events(slow))
    assert [(e.event, e.data.get("reason")) for e in got] == [("reset", "behind")]
    engine.submit("free", "next")
    hub.pump(1.0)
    assert [e.event for e in changes(slow)] == ["submitted"]


# ------------------------------------------------------------------------------------------------ filters


@pytest.mark.parametrize(
    ("filters", "expected_users"),
    [
        (StreamFilter(user_id="alice"), {"alice"}),
        (StreamFilter(user_id="nobody"), set()),
        (StreamFilter(), {"alice", "bob"}),
    ],
)
def test_a_user_filter_keeps_only_that_users_jobs(clock: FakeClock, filters, expected_users) -> None:
    """?user_id= streams only the changes of that user's jobs."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine)
    subscription = hub.subscribe(filters)
    for user in ("alice", "bob", "alice"):
        engine.submit("free", user)
    hub.pump(0.0)
    assert {e.data["user_id"] for e in changes(subscription)} == expected_users


def test_a_job_filter_keeps_only_that_job_and_combines_with_the_user_filter(clock: FakeClock) -> None:
    """?job_id= streams one job's changes; with ?user_id= both must match."""
    engine = make_engine(clock)
    hub = hub_for(engine)
    job, _ = engine.submit("free", "alice")
    engine.submit("free", "bob")
    only_job = hub.subscribe(StreamFilter(job_id=job["job_id"]))
    mismatch = hub.subscribe(StreamFilter(user_id="bob", job_id=job["job_id"]))
    clock.advance(20)
    engine.advance()  # what the ticker does: both jobs complete
    hub.pump(0.0)
    assert {e.data["job_id"] for e in changes(only_job)} == {job["job_id"]}
    assert changes(mismatch) == []


def test_a_resumed_stream_replays_only_what_its_filter_keeps(clock: FakeClock) -> None:
    """Replay after Last-Event-ID applies the stream's filter too."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine)
    hub.subscribe()
    for user in ("alice", "bob", "alice", "bob"):
        engine.submit("free", user)
    hub.pump(0.0)
    resumed = hub.subscribe(StreamFilter(user_id="bob"), last_event_id=1)
    assert [e.data["user_id"] for e in changes(resumed)] == ["bob", "bob"]


# ------------------------------------------------------------------------------------------------ ticks


def test_running_jobs_get_progress_events_once_per_interval_when_progress_moved(clock: FakeClock) -> None:
    """A running job gets `progress` at most every progress_seconds, only when its percentage moved past 0."""
    engine = make_engine(clock)  # free attempts take 10 s
    hub = hub_for(engine, progress_seconds=1.0)
    subscription = hub.subscribe()
    job, _ = engine.submit("free", "alice")
    hub.pump(0.0)  # the progress is 0 %: the started event said so, no progress event
    assert "progress" not in [e.event for e in named(events(subscription))]
    clock.advance(1.0)
    hub.pump(1.0)
    clock.advance(0.5)
    hub.pump(1.5)  # too soon for another
    clock.advance(0.5)
    hub.pump(2.0)
    hub.pump(3.0)  # due, but the progress did not move (the fake clock stood still)
    progress = [e for e in named(events(subscription)) if e.event == "progress"]
    assert [e.data["job"]["progress"] for e in progress] == [10, 20]
    assert all(e.data["job_id"] == job["job_id"] and e.id == engine.feed.cursor() for e in progress)


def test_progress_events_follow_the_filters(clock: FakeClock) -> None:
    """A stream filtered to another user gets no progress of this user's jobs."""
    engine = make_engine(clock)
    hub = hub_for(engine)
    mine = hub.subscribe(StreamFilter(user_id="alice"))
    theirs = hub.subscribe(StreamFilter(user_id="bob"))
    engine.submit("free", "alice")
    clock.advance(2)
    hub.pump(5.0)
    assert [e.event for e in named(events(mine))].count("progress") == 1
    assert [e.event for e in named(events(theirs))].count("progress") == 0


def test_a_heartbeat_comment_comes_after_each_heartbeat_interval_of_silence(clock: FakeClock) -> None:
    """`: heartbeat` is sent once heartbeat_seconds passed with nothing sent to the stream, and not before."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = EventHub(engine, threaded=False, heartbeat_seconds=15.0, monotonic=lambda: 0.0)
    subscription = hub.subscribe()  # its opening frames count as sent at 0
    subscription.drain()
    hub.pump(14.9)
    assert subscription.drain() == []
    hub.pump(15.0)
    assert subscription.drain() == [HEARTBEAT]
    engine.submit("free", "alice")
    hub.pump(20.0)  # an event: the silence starts again
    assert [e.event for e in named(events(subscription))] == ["submitted"]
    hub.pump(34.9)
    assert subscription.drain() == []
    hub.pump(35.0)
    assert subscription.drain() == [HEARTBEAT]


def test_streams_opened_at_different_moments_get_their_heartbeats_apart(clock: FakeClock) -> None:
    """Each stream's heartbeat follows its own silence, so a thousand streams do not all get one at once."""
    now = [0.0]
    hub = EventHub(make_engine(clock), threaded=False, heartbeat_seconds=15.0, monotonic=lambda: now[0])
    early = hub.subscribe()
    now[0] = 7.0
    late = hub.subscribe()
    for stream in (early, late):
        stream.drain()
    hub.pump(15.0)
    assert (early.drain(), late.drain()) == ([HEARTBEAT], [])
    hub.pump(22.0)
    assert (early.drain(), late.drain()) == ([], [HEARTBEAT])


# ------------------------------------------------------------------------------------------------ opening, closing


def test_more_streams_than_allowed_are_refused(clock: FakeClock) -> None:
    """subscribe(max_streams=n) raises TooManyStreams once n streams are open; closing one makes room."""
    hub = hub_for(make_engine(clock))
    first = hub.subscribe(max_streams=1)
    with pytest.raises(TooManyStreams):
        hub.subscribe(max_streams=1)
    first.close()
    hub.subscribe(max_streams=1)
    assert hub.open_streams == 1


def test_closing_the_hub_ends_every_stream(clock: FakeClock) -> None:
    """close() ends each stream: its reader gets what was queued, then the end, and later streams end at once."""
    hub = hub_for(make_engine(clock))
    subscription = hub.subscribe()
    hub.close()
    assert named(parse(b"".join(subscription.take(0) or [])))[0].event == "ready"
    assert subscription.take(0) is None
    assert [e.event for e in named(parse(b"".join(hub.subscribe().frames())))] == ["ready"]  # and it ends


def test_the_blocking_iterator_yields_the_frames_and_closes_its_subscription(clock: FakeClock) -> None:
    """frames() yields what was pushed and, closed early, takes the stream out of the hub."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine)
    subscription = hub.subscribe()
    engine.submit("free", "alice")
    hub.pump(0.0)
    frames = subscription.frames()
    assert [e.event for e in named(parse(next(frames)))] == ["ready", "submitted"]
    frames.close()
    assert hub.open_streams == 0 and subscription.closed


# ------------------------------------------------------------------------------------------------ async


def test_async_streams_get_the_same_frames_as_blocking_ones(clock: FakeClock) -> None:
    """Many async subscriptions on one loop each get exactly what a blocking subscription gets."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine)
    blocking = hub.subscribe()

    async def main() -> list[bytes]:
        readers = [hub.subscribe_async() for _ in range(200)]
        for i in range(5):
            engine.submit("free", f"user-{i}")
        hub.pump(0.0)
        got = []
        for reader in readers:
            chunks = reader.aframes()
            got.append(await anext(chunks))
            await chunks.aclose()
        return got

    got = asyncio.run(main())
    expected = b"".join(blocking.drain())
    assert all(chunk == expected for chunk in got)
    assert hub.open_streams == 1  # the async ones closed themselves


def test_an_async_reader_waits_for_the_next_batch_and_ends_with_the_hub(clock: FakeClock) -> None:
    """atake() waits until the hub pushes (from another thread too) and returns None once the hub closes."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = hub_for(engine)

    async def main() -> tuple[list[str], object]:
        reader = hub.subscribe_async()
        await reader.atake()  # retry and ready
        waiting = asyncio.ensure_future(reader.atake())
        await asyncio.sleep(0)
        assert not waiting.done()
        engine.submit("free", "alice")
        await asyncio.to_thread(hub.pump, 0.0)
        batch = await waiting
        await asyncio.to_thread(hub.close)
        return [e.event for e in named(parse(b"".join(batch)))], await reader.atake()

    kinds, end = asyncio.run(main())
    assert kinds == ["submitted"] and end is None


# ------------------------------------------------------------------------------------------------ parsing requests


def test_parse_request_reads_filters_and_the_last_event_id() -> None:
    """user_id, job_id and last_event_id come from the query; the Last-Event-ID header wins over the query."""
    request = parse_request({"user_id": "alice", "job_id": "j1", "last_event_id": "7"})
    assert (request.filters, request.last_event_id) == (StreamFilter("alice", "j1"), 7)
    assert parse_request({"last_event_id": "7"}, "9").last_event_id == 9
    assert parse_request({}, " ").last_event_id is None


@pytest.mark.parametrize(
    ("query", "header", "code"),
    [
        ({"user_id": ""}, None, "invalid_parameter"),
        ({"user_id": "x" * 129}, None, "invalid_parameter"),
        ({"job_id": ""}, None, "invalid_parameter"),
        ({"job_id": "x" * 65}, None, "invalid_parameter"),
        ({"last_event_id": "-1"}, None, "invalid_parameter"),
        ({"last_event_id": "1.5"}, None, "invalid_parameter"),
        ({"last_event_id": "abc"}, None, "invalid_parameter"),
        ({"last_event_id": "99999999999999999999"}, None, "invalid_parameter"),
        ({"last_event_id": "١٢"}, None, "invalid_parameter"),
        ({}, "abc", "invalid_header"),
        ({}, "-3", "invalid_header"),
    ],
)
def test_parse_request_refuses_malformed_input_with_a_400(query, header, code) -> None:
    """Bad filters and event ids raise StreamRequestError 400 with a stable code."""
    with pytest.raises(StreamRequestError) as raised:
        parse_request(query, header)
    assert (raised.value.status, raised.value.code) == (400, code)


def test_the_event_module_loads_no_web_framework() -> None:
    """`import simulator.events` leaves Flask, Werkzeug and requests unloaded: async servers can use it alone."""
    web = {"flask", "werkzeug", "flask_limiter", "requests"}
    code = f"import sys, simulator.events\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {web!r}))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
