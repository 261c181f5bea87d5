"""POST /translate: submit a job (the hourly limit on free submissions applies to this blueprint)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulator.domain import Scenario
from simulator.http.context import sim
from simulator.http.encoding import job_headers, json_response
from simulator.http.errors import ApiError
from simulator.http.parsing import choice, idempotency_key, parse_fields, simulate_header, text, user_id

bp = Blueprint("submissions", __name__)

TRANSLATE_FIELDS = {
    "role": choice("free", "premium"),
    "video_url": text(2048),
    "target_language": text(35),
    "simulate": Scenario.parse,
}


def submitted_script(fields: dict[str, Any]) -> Scenario | None:
    """Return the job's script from the body's `simulate` or the X-Simulate header (not both: 400)."""
    header = simulate_header()
    if header is not None and "simulate" in fields:
        raise ApiError(400, "invalid_header", "Both X-Simulate and the body's simulate member script this job; "
                       "send one of them.")
    return fields.get("simulate", header)


@bp.post("/translate")
def translate() -> Response:
    """Queue a job; answer 202 with it, Location and Retry-After (a replayed Idempotency-Key answers the original)."""
    fields = parse_fields(TRANSLATE_FIELDS)
    job, replayed = sim().engine.submit(
        fields.get("role", "free"),
        user_id(),
        video_url=fields.get("video_url"),
        target_language=fields.get("target_language"),
        idempotency_key=idempotency_key(),
        simulate=submitted_script(fields),
    )
    headers = {"Location": f"/status/{job['job_id']}", **job_headers(job)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(job, 202, headers)


def not_counted() -> bool:
    """Tell whether this submission is exempt from the hourly limit: premium, refused anyway, or a replay."""
    if request.method != "POST":
        return True  # OPTIONS (a browser's CORS preflight) submits nothing
    try:
        fields = parse_fields(TRANSLATE_FIELDS)
        key = idempotency_key()
        user = user_id()
        script = submitted_script(fields)
    except ApiError:
        return True  # refused with 400/422: a refusal must not use up the user's hour
    if fields.get("role", "free") == "premium":
        return True
    engine = sim().engine
    if script is not None and engine.settings.SCENARIOS != "on":
        return True  # refused with 403 anyway
    if engine.total() >= engine.settings.MAX_JOBS:
        return True  # refused with 503 anyway
    return key is not None and engine.find_idempotent(user, key) is not None


def hourly_limit() -> str:
    """Return the limit in force now (RATE_LIMIT may change at runtime)."""
    return f"{sim().engine.settings.RATE_LIMIT}/hour"
