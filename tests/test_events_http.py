"""GET /events through the Flask view (the hub's thread fans out), and the pieces an async route is made of.

The app runs on the fake clock; the hub's thread runs for real, with a short heartbeat so that a
stream always has something to read and a missing event fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from server import create_app
from simulator.events import STREAM_HEADERS, EventHub, Refusal, open_async, send_stream
from tests.conftest import FAST, FakeClock, make_engine
from tests.sse import named, parse, read_until

HEARTBEAT = 0.05


@pytest.fixture
def app(clock: FakeClock):
    app = create_app({**FAST, "PROCESSING_MODE": "manual"}, clock=clock)
    app.extensions["simulator"].events.heartbeat_seconds = HEARTBEAT
    yield app
    app.extensions["simulator"].events.close()


def open_stream(client, path: str = "/events", **headers: str) -> tuple[Any, Iterator[bytes]]:
    """Open a stream; return the response and an iterator over its chunks."""
    response = client.get(path, headers=headers, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response, iter(response.response)


def submit(client, user: str = "alice", role: str = "free") -> str:
    """Submit a job; return its id."""
    response = client.post("/translate", json={"role": role}, headers={"X-User-Id": user})
    assert response.status_code == 202
    return response.get_json()["job_id"]


def kinds_of(events) -> list[str]:
    """Return the names of the change events (not ready, reset or comments)."""
    return [e.event for e in named(events) if e.event not in ("ready", "reset")]


def test_events_answer_an_open_event_stream(app, client) -> None:
    """GET /events is text/event-stream, not cached or buffered, beginning with retry and ready."""
    response, chunks = open_stream(client)
    try:
        assert response.mimetype == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in response.headers
        events = read_until(chunks, lambda events: any(e.event == "ready" for e in events))
        assert named(events)[0].data["resumed"] is False
    finally:
        response.close()


def test_a_job_submitted_through_the_api_arrives_with_its_view(app, client) -> None:
    """POST /translate shows up on an open stream as `submitted`, with the job's wire view."""
    response, chunks = open_stream(client)
    try:
        job_id = submit(client)
        events = read_until(chunks, lambda events: "submitted" in kinds_of(events))
        (submitted,) = [e for e in events if e.event == "submitted"]
        assert submitted.data["job"]["job_id"] == job_id and submitted.data["job"]["queue_position"] == 1
    finally:
        response.close()


def test_a_stream_follows_a_job_to_its_end_with_progress(app, client, clock: FakeClock, auth) -> None:
    """started, progress and completed arrive for a job processed while the stream is open."""
    app.extensions["simulator"].events.progress_seconds = 0.0
    response, chunks = open_stream(client)
    try:
        submit(client)
        client.post("/process_jobs", headers=auth.ok)
        read_until(chunks, lambda events: "started" in kinds_of(events))
        clock.advance(4)
        events = read_until(chunks, lambda events: "progress" in kinds_of(events))
        assert [e.data["job"]["progress"] for e in events if e.event == "progress"][-1] == 40
        clock.advance(10)
        client.get("/healthz")  # catches up on what fell due (the ticker's job in a server)
        read_until(chunks, lambda events: "completed" in kinds_of(events))
    finally:
        response.close()


@pytest.mark.parametrize("how", ["header", "query"])
def test_reconnecting_with_the_last_event_id_resumes_without_loss_or_repeat(app, client, how: str) -> None:
    """A new stream with Last-Event-ID (or ?last_event_id=) gets exactly the events after it, then new ones."""
    response, chunks = open_stream(client)
    ids = [submit(client, f"user-{i}") for i in range(3)]
    events = read_until(chunks, lambda events: kinds_of(events).count("submitted") == 3)
    response.close()
    first = next(e.id for e in events if e.event == "submitted")
    later = [submit(client, "later") for _ in range(2)]
    if how == "header":
        response, chunks = open_stream(client, **{"Last-Event-ID": str(first)})
    else:
        response, chunks = open_stream(client, f"/events?last_event_id={first}")
    try:
        events = read_until(chunks, lambda events: kinds_of(events).count("submitted") == 4)
        ready = named(events)[0]
        assert (ready.event, ready.id, ready.data["resumed"]) == ("ready", first, True)
        submitted = [e for e in events if e.event == "submitted"]
        assert [e.data["job_id"] for e in submitted] == ids[1:] + later
        assert [e.id for e in submitted] == sorted({e.id for e in submitted})
    finally:
        response.close()


def test_the_header_wins_over_the_query(app, client) -> None:
    """A browser reconnecting to a URL with ?last_event_id= sends a newer Last-Event-ID header; that one counts."""
    response, chunks = open_stream(client)
    for i in range(3):
        submit(client, f"user-{i}")
    read_until(chunks, lambda events: kinds_of(events).count("submitted") == 3)
    response.close()
    response, chunks = open_stream(client, "/events?last_event_id=1", **{"Last-Event-ID": "2"})
    try:
        events = read_until(chunks, lambda events: len(kinds_of(events)) == 1)
        assert named(events)[0].id == 2 and [e.id for e in named(events)[1:]] == [3]
    finally:
        response.close()


def test_filters_keep_one_users_events(app, client) -> None:
    """?user_id= streams only that user's jobs."""
    response, chunks = open_stream(client, "/events?user_id=bob")
    try:
        submit(client, "alice")
        bobs = submit(client, "bob")
        events = read_until(chunks, lambda events: "submitted" in kinds_of(events))
        assert [e.data["job_id"] for e in named(events) if e.event == "submitted"] == [bobs]
    finally:
        response.close()


@pytest.mark.parametrize(
    ("path", "headers", "code"),
    [
        ("/events?user_id=", {}, "invalid_parameter"),
        ("/events?job_id=" + "x" * 65, {}, "invalid_parameter"),
        ("/events?last_event_id=-1", {}, "invalid_parameter"),
        ("/events?last_event_id=soon", {}, "invalid_parameter"),
        ("/events", {"Last-Event-ID": "yesterday"}, "invalid_header"),
    ],
)
def test_bad_stream_requests_are_a_400_problem(client, path: str, headers: dict[str, str], code: str) -> None:
    """Malformed filters and event ids answer 400 problem+json, and no stream is opened."""
    response = client.get(path, headers=headers)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json" and response.get_json()["code"] == code


def test_more_streams_than_max_event_streams_get_a_503(app, client) -> None:
    """Over MAX_EVENT_STREAMS a stream is refused with 503 too_many_streams and Retry-After; closing frees a place."""
    app.extensions["simulator"].engine.configure({"MAX_EVENT_STREAMS": 1})
    response, _ = open_stream(client)
    refused = client.get("/events")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.get_json()["code"] == "too_many_streams"
    response.close()
    again, _ = open_stream(client)
    again.close()


def test_closing_the_response_closes_the_stream_even_unread(app, client) -> None:
    """A stream whose body is never read (HEAD, a client gone at once) is taken out of the hub when closed."""
    hub = app.extensions["simulator"].events
    head = client.head("/events", buffered=False)
    assert head.status_code == 200 and head.get_data() == b""
    head.close()  # what a WSGI server does once it sent the (empty) body
    assert hub.open_streams == 0
    response = client.get("/events", buffered=False)
    assert hub.open_streams == 1
    response.close()
    assert hub.open_streams == 0


def test_stopping_the_server_ends_open_streams(app, client) -> None:
    """release_waiters (SIGTERM's first step) ends every stream, so the server can drain."""
    response, chunks = open_stream(client)
    read_until(chunks, lambda events: bool(named(events)))
    app.extensions["simulator"].release_waiters()
    assert all(chunk.startswith(b":") for chunk in chunks)  # at most heartbeats, then the end
    response.close()


@pytest.mark.parametrize("path", ["/events", "/metrics", "/dashboard"])
def test_observation_endpoints_never_get_injected_faults(clock: FakeClock, path: str) -> None:
    """With FAULT_RATE=1 the job endpoints fail, but /events, /metrics and /dashboard answer normally."""
    app = create_app({**FAST, "FAULT_RATE": 1.0, "FAULT_DELAY": 0.0}, clock=clock)
    response = app.test_client().get(path, buffered=False)
    try:
        assert response.status_code == 200
    finally:
        response.close()
        app.extensions["simulator"].events.close()


# ------------------------------------------------------------------------------------------------ async servers


@pytest.mark.parametrize(
    ("method", "query", "header", "status", "code"),
    [
        ("POST", "", None, 405, "method_not_allowed"),
        ("GET", "user_id=", None, 400, "invalid_parameter"),
        ("GET", "", "x", 400, "invalid_header"),
        ("GET", "", None, 503, "too_many_streams"),
    ],
)
def test_open_async_refuses_like_the_flask_view(clock: FakeClock, method, query, header, status, code) -> None:
    """open_async answers bad requests and a full server with the Flask view's problem+json statuses and codes."""
    hub = EventHub(make_engine(clock), threaded=False)
    cap = 0 if code == "too_many_streams" else 10

    async def decide() -> Any:
        return open_async(hub, cap, method, query, header)

    refusal = asyncio.run(decide())
    assert isinstance(refusal, Refusal) and refusal.status == status
    assert ("Content-Type", "application/problem+json") in refusal.headers
    assert json.loads(refusal.body)["code"] == code and hub.open_streams == 0


def test_open_async_answers_head_with_the_stream_headers_and_no_stream(clock: FakeClock) -> None:
    """HEAD /events gets the stream's headers and an empty body; no stream is opened."""
    hub = EventHub(make_engine(clock), threaded=False)

    async def decide() -> Any:
        return open_async(hub, 10, "HEAD", "", None)

    answer = asyncio.run(decide())
    assert (answer.status, answer.body) == (200, b"") and answer.headers == STREAM_HEADERS
    assert hub.open_streams == 0


def test_send_stream_sends_until_the_client_leaves_then_closes_the_stream(clock: FakeClock) -> None:
    """send_stream sends each batch as the hub hands it over, and stops (stream closed) once the client leaves."""
    engine = make_engine(clock, PROCESSING_MODE="manual")
    hub = EventHub(engine, threaded=False, monotonic=lambda: 0.0)
    sent: list[bytes] = []

    async def main() -> bool:
        subscription = open_async(hub, 10, "GET", "user_id=alice", None)
        gone = asyncio.Event()

        async def send(chunk: bytes) -> None:
            sent.append(chunk)

        sending = asyncio.ensure_future(send_stream(subscription, send, gone.wait()))
        await asyncio.sleep(0)
        engine.submit("free", "alice")
        engine.submit("free", "bob")
        await asyncio.to_thread(hub.pump, 0.0)
        for _ in range(100):
            if b"event: submitted" in b"".join(sent):
                break
            await asyncio.sleep(0)
        gone.set()
        return await asyncio.wait_for(sending, 5)

    ended_by_server = asyncio.run(main())
    assert [e.event for e in named(parse(b"".join(sent)))] == ["ready", "submitted"]
    assert not ended_by_server and hub.open_streams == 0


def test_send_stream_ends_when_the_server_ends_the_stream(clock: FakeClock) -> None:
    """When the hub closes (the server stops), send_stream returns True: the answer may be finished."""
    hub = EventHub(make_engine(clock), threaded=False)

    async def main() -> bool:
        subscription = open_async(hub, 10, "GET", "", None)

        async def send(chunk: bytes) -> None:
            pass

        sending = asyncio.ensure_future(send_stream(subscription, send, asyncio.Event().wait()))
        await asyncio.sleep(0)
        await asyncio.to_thread(hub.close)
        return await asyncio.wait_for(sending, 5)

    assert asyncio.run(main()) is True


def test_send_stream_stops_when_sending_fails(clock: FakeClock) -> None:
    """A send that raises ConnectionError (the client went away mid-write) ends the stream quietly."""
    hub = EventHub(make_engine(clock), threaded=False)

    async def main() -> bool:
        subscription = open_async(hub, 10, "GET", "", None)

        async def send(chunk: bytes) -> None:
            raise ConnectionError("the client left")

        return await asyncio.wait_for(send_stream(subscription, send, asyncio.Event().wait()), 5)

    assert asyncio.run(main()) is False
    assert hub.open_streams == 0


def test_in_keys_mode_a_stream_shows_only_the_keys_own_jobs(clock: FakeClock) -> None:
    """AUTH_MODE=keys: no key is 401, another user's filter is 403, and a key's stream carries only its user's jobs;
    the admin token sees every job. The dashboard's page and /metrics need no key."""
    keyed = create_app({**FAST, "PROCESSING_MODE": "manual", "AUTH_MODE": "keys"}, clock=clock)
    keyed.extensions["simulator"].events.heartbeat_seconds = HEARTBEAT
    client = keyed.test_client()
    admin = {"Authorization": "Bearer test-admin-token"}
    keys = {user: client.post("/api-keys", json={"user_id": user}, headers=admin).get_json()["api_key"]
            for user in ("alice", "bob")}
    try:
        assert client.get("/events").get_json()["code"] == "missing_api_key"
        refused = client.get("/events?user_id=bob", headers={"X-Api-Key": keys["alice"]})
        assert refused.status_code == 403 and refused.get_json()["code"] == "user_mismatch"
        assert client.get("/dashboard").status_code == 200 and client.get("/metrics").status_code == 200
        mine, everyone = (open_stream(client, **headers)[1] for headers in ({"X-Api-Key": keys["alice"]}, admin))
        jobs = {user: client.post("/translate", headers={"X-Api-Key": keys[user]}).get_json()["job_id"]
                for user in ("bob", "alice")}
        seen = read_until(mine, lambda events: "submitted" in kinds_of(events))
        assert [e.data["job"]["job_id"] for e in seen if e.event == "submitted"] == [jobs["alice"]]
        seen = read_until(everyone, lambda events: kinds_of(events).count("submitted") == 2)
        assert [e.data["job"]["job_id"] for e in seen if e.event == "submitted"] == [jobs["bob"], jobs["alice"]]
    finally:
        keyed.extensions["simulator"].events.close()
