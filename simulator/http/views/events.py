"""GET /events: job changes as server-sent events, one server thread per open stream (see simulator.events)."""

from __future__ import annotations

import dataclasses

from flask import Blueprint, Response, request

from simulator.events import StreamRequestError, TooManyStreams, parse_request, too_many_streams_detail
from simulator.http.context import sim
from simulator.http.errors import ApiError
from simulator.http.identity import caller

bp = Blueprint("events", __name__)


@bp.get("/events")
def events() -> Response:
    """Stream job changes from the feed (resuming after Last-Event-ID), filtered by ?user_id= and ?job_id=
    (and to the key's own user for a caller whose key limits what it sees)."""
    try:
        wanted = parse_request(request.args, request.headers.get("Last-Event-ID"))
    except StreamRequestError as e:
        raise ApiError(e.status, e.code, e.detail) from None
    # With an API key (and always in AUTH_MODE=keys without the admin token) a caller sees only their own jobs.
    scope = caller().reading_scope(wanted.filters.user_id)
    filters = dataclasses.replace(wanted.filters, user_id=scope)
    simulator = sim()
    cap = simulator.engine.settings.MAX_EVENT_STREAMS
    try:
        subscription = simulator.events.subscribe(filters, wanted.last_event_id, max_streams=cap)
    except TooManyStreams:
        raise ApiError(503, "too_many_streams", too_many_streams_detail(cap), headers={"Retry-After": "5"},
                       retry_after=5) from None
    response = Response(subscription.frames(), mimetype="text/event-stream")
    response.call_on_close(subscription.close)  # also when the body is never read (HEAD)
    response.headers["X-Accel-Buffering"] = "no"  # a proxy such as nginx must not hold events back
    return response
