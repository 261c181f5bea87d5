"""What `python server.py` serves in the event loop: the async routes, which requests are heavy, and how the
bridge words the errors it answers itself.

`async_routes(app, loop)` is the one list of async routes (see `simulator.serve` for how a route is
written and why); add a route here and `python server.py` serves it. Under any other WSGI server the
Flask views answer the same requests, holding a thread each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Flask

from simulator.follow import FeedFollower
from simulator.http.context import Simulator
from simulator.http.envelopes import error_document, family_of
from simulator.http.eventstream import EventStreamRoute
from simulator.http.longpoll import LongPollRoute
from simulator.rsgi import AsyncRoute, Request, problem_error


def async_routes(app: Flask, loop: asyncio.AbstractEventLoop) -> list[AsyncRoute]:
    """Return the app's async routes, made in the running event loop, with the one thread that follows the feed."""
    simulator: Simulator = app.extensions["simulator"]
    follower = FeedFollower(simulator.engine.feed, loop).start()  # ends when the feed closes (release_waiters)
    return [LongPollRoute(simulator, follower), EventStreamRoute(simulator)]


def full_listing(request: Request) -> bool:
    """Tell a full listing (`GET /jobs` or `GET /queue` without `limit`): the heavy requests of this app."""
    return (request.method == "GET" and request.path in ("/jobs", "/queue")
            and "limit=" not in request.query_string)


def error_body(path: str, status: int, code: str, detail: str, extra: Mapping[str, Any]) -> tuple[str, bytes]:
    """Word an error the bridge answers itself as the app does on `path`: HeyGen's envelope on HeyGen's routes
    (a body over the limit there is HeyGen's 413 payload_too_large), problem+json everywhere else."""
    version = family_of(path)
    if version is None:
        return problem_error(path, status, code, detail, extra)
    _, body = error_document(version, status, code, detail, extra)
    return "application/json", orjson.dumps(body)
