"""Admin endpoints (Bearer ADMIN_TOKEN): cancel, process_jobs, cleanup, POST /config."""

from __future__ import annotations

from flask import Blueprint, Response

from simulator.domain import Status
from simulator.http.auth import admin_only
from simulator.http.context import sim
from simulator.http.encoding import json_response
from simulator.http.errors import ApiError
from simulator.http.parsing import finished_statuses, integer, job_id_arg, json_object, parse_fields, seconds, text

bp = Blueprint("admin", __name__)

CANCEL_FIELDS = {"reason": text(500)}
PROCESS_FIELDS = {"count": integer(1, 100_000)}
CLEANUP_FIELDS = {"statuses": finished_statuses, "older_than": seconds}


@bp.post("/cancel/<job_id>")
@admin_only
def cancel(job_id: str) -> Response:
    """Cancel a queued or running job (again: 200 with already_cancelled; a finished one: 409)."""
    fields = parse_fields(CANCEL_FIELDS)
    job, already = sim().engine.cancel(job_id_arg(job_id), fields.get("reason"))
    # The same message either way: cancelling is idempotent; already_cancelled tells the two apart.
    message = f"Job {job['job_id']} cancelled successfully"
    return json_response({"message": message, "already_cancelled": already, "job": job})


@bp.post("/process_jobs")
@bp.post("/process")
@admin_only
def process_jobs() -> Response:
    """Start the next `count` queued jobs in priority order."""
    fields = parse_fields(PROCESS_FIELDS)
    engine = sim().engine
    started = engine.start_next(fields.get("count", 1))
    return json_response({"started": started, "count": len(started), "queued": engine.counts()["queued"]})


@bp.post("/cleanup")
@admin_only
def cleanup() -> Response:
    """Remove finished jobs of the given statuses (default: completed), optionally only older ones."""
    fields = parse_fields(CLEANUP_FIELDS)
    statuses = fields.get("statuses", [Status.COMPLETED])
    removed = sim().engine.cleanup(statuses, fields.get("older_than", 0.0))
    return json_response({"removed": removed, "statuses": [s.value for s in statuses]})


@bp.post("/config")
@admin_only
def set_config() -> Response:
    """Change runtime settings, all or nothing; answer the whole new config."""
    changes = json_object()
    if not changes:
        detail = 'Send at least one setting to change, e.g. {"WORKERS": 4}.'
        raise ApiError(422, "validation_error", detail, errors=[])
    engine = sim().engine
    return json_response(engine.configure(changes).public())
