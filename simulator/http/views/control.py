"""Controls for testing against the simulator, as a mock server has them (admin): the clock and reset.

`GET /admin/clock` shows simulated time; `POST /admin/clock/advance` moves a manual clock (CLOCK=manual);
`POST /admin/reset` leaves the server as freshly started.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from simulator.domain.engine import MAX_CLOCK_STEP
from simulator.http.auth import admin_only
from simulator.http.context import sim
from simulator.http.encoding import json_response
from simulator.http.errors import ApiError
from simulator.http.parsing import parse_fields, short


def flag(value: Any) -> bool:
    """Accept a JSON boolean."""
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {short(value)}")
    return value

bp = Blueprint("control", __name__)


def clock_seconds(value: Any) -> float:
    """Accept a number of seconds in [0, MAX_CLOCK_STEP] (ten years)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_CLOCK_STEP:
        raise ValueError(f"must be a number of seconds in [0, {MAX_CLOCK_STEP}], got {short(value)}")
    return float(value)


ADVANCE_FIELDS = {"seconds": clock_seconds}
RESET_FIELDS = {"keep_config": flag}


@bp.get("/admin/clock")
@admin_only
def clock() -> Response:
    """Answer the clock's kind, the simulated now and when the next event is due."""
    return json_response(sim().engine.clock_state())


@bp.post("/admin/clock/advance")
@admin_only
def advance_clock() -> Response:
    """Move a manual clock forward, running every event that falls due meanwhile, in order."""
    fields = parse_fields(ADVANCE_FIELDS)
    if "seconds" not in fields:
        detail = 'Say how far to move the clock, e.g. {"seconds": 3600}.'
        raise ApiError(422, "validation_error", detail, errors=[{"field": "seconds", "message": "required"}])
    return json_response(sim().engine.advance_clock(fields["seconds"]))


@bp.post("/admin/reset")
@admin_only
def reset() -> Response:
    """Remove every job, idempotency key and rate-limit window, restore the start-up settings unless keep_config."""
    fields = parse_fields(RESET_FIELDS)
    keep = fields.get("keep_config", False)
    removed = sim().reset(keep_config=keep)
    return json_response({"removed": removed, "config_restored": not keep})
