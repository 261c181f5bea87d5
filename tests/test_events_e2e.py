"""GET /events on a real `python server.py`: served in the event loop, so streams hold none of the app's threads."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import requests

from tests.sse import named, parse

#: More streams than the app's pool has threads (8): under a thread per stream, /healthz would starve.
STREAMS = 24


def open_stream(url: str, path: str = "/events") -> tuple[socket.socket, Iterator[bytes]]:
    """Open a stream on a raw socket (HTTP/1.0: the body as sent); return it and an iterator over its bytes."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())

    def chunks() -> Iterator[bytes]:
        while data := sock.recv(65536):
            yield data

    return sock, chunks()


def read_events(chunks: Iterator[bytes], until: str, limit: int = 50) -> list:
    """Read until an event named `until` arrived (at most `limit` reads); return the events."""
    buffer = b""
    for _ in range(limit):
        buffer += next(chunks)
        events = named(parse(buffer.split(b"\r\n\r\n", 1)[-1]))
        if any(e.event == until for e in events):
            return events
    raise AssertionError(f"no {until!r} event in {parse(buffer)}")


def test_many_open_streams_hold_no_thread_and_all_get_each_event(run_server) -> None:
    """With more streams open than the app has threads, /healthz stays quick and a submission reaches every one."""
    server = run_server({"PROCESSING_MODE": "manual"})
    streams = [open_stream(server.url) for _ in range(STREAMS)]
    try:
        for _, chunks in streams:
            read_events(chunks, "ready")
        metrics = requests.get(f"{server.url}/metrics", timeout=5).text
        assert f"http_event_streams_open {STREAMS}.0" in metrics
        started = time.monotonic()
        assert requests.get(f"{server.url}/healthz", timeout=5).ok
        assert time.monotonic() - started < 1.0
        job_id = requests.post(f"{server.url}/translate", json={}, timeout=5).json()["job_id"]
        for _, chunks in streams:
            (submitted,) = [e for e in read_events(chunks, "submitted") if e.event == "submitted"]
            assert submitted.data["job_id"] == job_id
        metrics = requests.get(f"{server.url}/metrics", timeout=5).text
        assert f'http_requests_total{{method="GET",route="/events",status="200"}} {STREAMS}.0' in metrics
    finally:
        for sock, _ in streams:
            sock.close()


def test_refusals_over_the_real_server_are_problem_json(run_server) -> None:
    """A bad filter is a 400 and a stream over MAX_EVENT_STREAMS a 503, both problem+json, from the event loop."""
    server = run_server({"MAX_EVENT_STREAMS": 1})
    bad = requests.get(f"{server.url}/events?last_event_id=soon", timeout=5)
    assert bad.status_code == 400 and bad.headers["Content-Type"] == "application/problem+json"
    assert bad.headers["X-Content-Type-Options"] == "nosniff"
    sock, chunks = open_stream(server.url)
    try:
        read_events(chunks, "ready")
        full = requests.get(f"{server.url}/events", timeout=5)
        assert full.status_code == 503 and full.json()["code"] == "too_many_streams"
        assert full.headers["Retry-After"] == "5"
        head = requests.head(f"{server.url}/events", timeout=5)
        assert head.status_code == 200 and head.headers["Content-Type"].startswith("text/event-stream")
    finally:
        sock.close()


def test_sigterm_ends_open_streams_and_the_server_exits_at_once(run_server) -> None:
    """Stopping the server ends every open stream (their sockets close) and it exits 0 without waiting its grace."""
    server = run_server({})
    streams = [open_stream(server.url) for _ in range(3)]
    for _, chunks in streams:
        read_events(chunks, "ready")
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 5.0
    for sock, chunks in streams:
        assert b"".join(chunks) is not None  # the stream ends: recv returns b"" (no hang, no error)
        sock.close()
