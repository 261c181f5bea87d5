"""Reading server-sent events in tests: split a stream's bytes into events as a browser's EventSource would."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One dispatched event (or a comment, event == ':'): its id, name and decoded JSON data."""

    id: int | None
    event: str
    data: Any


def parse(stream: bytes) -> list[Event]:
    """Return the events and comments of complete blocks in `stream` (a trailing partial block is ignored)."""
    events = []
    for block in stream.split(b"\n\n")[:-1]:
        fields: dict[str, str] = {}
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                events.append(Event(None, ":", line[1:].strip()))
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append(Event(int(fields["id"]) if "id" in fields else None, fields.get("event", "message"),
                                json.loads(fields["data"])))
    return events


def named(events: Iterable[Event]) -> list[Event]:
    """Return the events without comments."""
    return [e for e in events if e.event != ":"]


def read_until(chunks: Iterator[bytes], done: Any, max_chunks: int = 200) -> list[Event]:
    """Read chunks until `done(events so far)` holds; fail after `max_chunks` chunks (heartbeats count)."""
    buffer = b""
    for _ in range(max_chunks):
        buffer += next(chunks)
        events = parse(buffer)
        if done(events):
            return events
    raise AssertionError(f"the stream did not deliver what was expected: {parse(buffer)}")
