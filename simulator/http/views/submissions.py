"""POST /translate: submit a job (the hourly limit on free submissions applies to this blueprint)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulator.auth.access import AccessDenied
from simulator.http.context import sim
from simulator.http.encoding import job_headers, json_response
from simulator.http.errors import ApiError
from simulator.http.identity import caller
from simulator.http.parsing import (
    MAX_USER_ID_LENGTH,
    choice,
    header_token,
    idempotency_key,
    parse_fields,
    text,
)
from simulator.webhooks.hosts import check_destination, parse_allowed_hosts

bp = Blueprint("submissions", __name__)

TRANSLATE_FIELDS = {
    "role": choice("free", "premium"),
    "video_url": text(2048),
    "target_language": text(35),
    "callback_url": text(2048),
}


def submitter(fields: dict[str, Any]) -> tuple[str, str]:
    """Return (user, role) the submission runs as: from the API key when one was sent, else as declared."""
    declared = header_token("X-User-Id", MAX_USER_ID_LENGTH)
    return caller().submitter(declared, fields.get("role"), request.remote_addr or "anonymous")


def callback_meta(fields: dict[str, Any]) -> dict[str, Any] | None:
    """Return the job's meta for a `callback_url` (422 when WEBHOOK_ALLOWED_HOSTS does not allow it)."""
    url = fields.get("callback_url")
    if url is None:
        return None
    why = check_destination(url, parse_allowed_hosts(sim().engine.settings.WEBHOOK_ALLOWED_HOSTS))
    if why is not None:
        errors = [{"field": "callback_url", "message": why}]
        raise ApiError(422, "validation_error", f"The request body is invalid: callback_url {why}.", errors=errors)
    return {"api": "native", "callback_url": url}


@bp.post("/translate")
def translate() -> Response:
    """Queue a job; answer 202 with it, Location and Retry-After (a replayed Idempotency-Key answers the original)."""
    fields = parse_fields(TRANSLATE_FIELDS)
    user, role = submitter(fields)
    job, replayed = sim().engine.submit(
        role,
        user,
        video_url=fields.get("video_url"),
        target_language=fields.get("target_language"),
        idempotency_key=idempotency_key(),
        meta=callback_meta(fields),
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
        user, role = submitter(fields)
        callback_meta(fields)
    except (ApiError, AccessDenied):
        return True  # refused with 400/403/422: a refusal must not use up the user's hour
    if role == "premium":
        return True
    engine = sim().engine
    if engine.total() >= engine.settings.MAX_JOBS:
        return True  # refused with 503 anyway
    return key is not None and engine.find_idempotent(user, key) is not None


def hourly_limit() -> str:
    """Return the limit in force now (RATE_LIMIT may change at runtime)."""
    return f"{sim().engine.settings.RATE_LIMIT}/hour"
