"""POST /translate: submit a job (the hourly limit on free submissions applies to this blueprint)."""

from __future__ import annotations

from flask import Blueprint, Response

from simulator.http.context import sim
from simulator.http.encoding import job_headers, json_response
from simulator.http.errors import ApiError
from simulator.http.parsing import choice, idempotency_key, parse_fields, text, user_id

bp = Blueprint("submissions", __name__)

TRANSLATE_FIELDS = {
    "role": choice("free", "premium"),
    "video_url": text(2048),
    "target_language": text(35),
}


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
    )
    headers = {"Location": f"/status/{job['job_id']}", **job_headers(job)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(job, 202, headers)


def not_counted() -> bool:
    """Tell whether this submission is exempt from the hourly limit: premium, refused anyway, or a replay."""
    try:
        fields = parse_fields(TRANSLATE_FIELDS)
        key = idempotency_key()
        user = user_id()
    except ApiError:
        return True  # refused with 400/422: a refusal must not use up the user's hour
    if fields.get("role", "free") == "premium":
        return True
    # Refused with 503 when MAX_JOBS are stored, or a replay of a job already made: neither counts.
    return not sim().engine.would_create(user, key)


def hourly_limit() -> str:
    """Return the limit in force now (RATE_LIMIT may change at runtime)."""
    return f"{sim().engine.settings.RATE_LIMIT}/hour"
