"""Controls for testing against the simulator, as a mock server has them (admin): the clock, reset, the journal.

`GET /admin/clock` shows simulated time; `POST /admin/clock/advance` moves a manual clock (CLOCK=manual);
`POST /admin/reset` leaves the server as freshly started; `GET /admin/requests` (and `/count`) read the
request journal, filtered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request

from simulator.domain.engine import MAX_CLOCK_STEP
from simulator.http.auth import admin_only
from simulator.http.context import sim
from simulator.http.encoding import json_response
from simulator.http.errors import ApiError
from simulator.http.journal import Filter
from simulator.http.parsing import MAX_USER_ID_LENGTH, parse_fields, short
from simulator.http.views.media import job_files
from simulator.paths import check_pattern


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
    """Remove every job, idempotency key, rate-limit window and delivery; restore start-up settings unless kept."""
    fields = parse_fields(RESET_FIELDS)
    keep = fields.get("keep_config", False)
    removed = sim().reset(keep_config=keep)
    job_files().clear()  # uploads and results go too: as freshly started
    return json_response({"removed": removed, "config_restored": not keep})


# ------------------------------------------------------------------------------------------------ the journal

JOURNAL_PARAMS = ("path", "method", "status", "user_id", "since")
MAX_JOURNAL_LIMIT = 100_000


def _bad(name: str, what: str) -> ApiError:
    return ApiError(400, "invalid_parameter", f"Query parameter {name!r} must be {what}, got "
                    f"{short(request.args.get(name))}.")


def journal_filter(allowed: tuple[str, ...]) -> Filter:
    """Read the journal's filters from the query; 400 naming a bad or unknown parameter."""
    args = request.args
    unknown = [name for name in args if name not in allowed]
    if unknown:
        raise ApiError(400, "invalid_parameter", f"Unknown query parameter {unknown[0]!r}; the filters are "
                       f"{', '.join(allowed)}.")
    path = args.get("path")
    if path is not None:
        try:
            check_pattern(path)
        except ValueError:
            raise _bad("path", "a path or route (/status/{job_id}), optionally ending in *") from None
    method = args.get("method")
    if method is not None and not (method.isascii() and method.isalpha() and len(method) <= 16):
        raise _bad("method", "an HTTP method such as GET")
    status = args.get("status")
    if status is not None and not (status.isascii() and status.isdigit() and 100 <= int(status) <= 599):
        raise _bad("status", "an HTTP status in [100, 599]")
    user = args.get("user_id")
    if user is not None and not 0 < len(user) <= MAX_USER_ID_LENGTH:
        raise _bad("user_id", f"1–{MAX_USER_ID_LENGTH} characters")
    return Filter(path=path, method=None if method is None else method.upper(),
                  status=None if status is None else int(status), user_id=user, since=_since(args.get("since")))


def _since(text: str | None) -> datetime | None:
    """Read `since`: an ISO 8601 time with a zone (2027-01-15T08:00:00Z) or epoch seconds, in simulated time."""
    if text is None:
        return None
    what = "an ISO 8601 time with a zone (2027-01-15T08:00:00Z) or epoch seconds"
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError):
            raise _bad("since", what) from None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise _bad("since", what) from None
    if moment.tzinfo is None:
        raise _bad("since", what)
    return moment


def _limit() -> int | None:
    text = request.args.get("limit")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_JOURNAL_LIMIT):
        raise _bad("limit", f"an integer in [1, {MAX_JOURNAL_LIMIT}]")
    return int(text)


@bp.get("/admin/requests")
@admin_only
def requests_journal() -> Response:
    """Answer the recorded requests the filters select, oldest first (with `limit`, the last ones)."""
    where = journal_filter((*JOURNAL_PARAMS, "limit"))
    journal = sim().journal
    entries, total = journal.select(where, _limit())
    return json_response({"requests": [entry.to_json() for entry in entries], "total": total,
                          "recorded": journal.recorded})


@bp.get("/admin/requests/count")
@admin_only
def requests_count() -> Response:
    """Answer how many recorded requests the filters select."""
    where = journal_filter(JOURNAL_PARAMS)
    journal = sim().journal
    return json_response({"count": journal.select(where, 0)[1], "recorded": journal.recorded})
