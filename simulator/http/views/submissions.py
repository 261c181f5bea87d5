"""POST /translate: submit a job (the hourly limit on free submissions applies to this blueprint)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulator.domain import Scenario
from simulator.http.context import sim
from simulator.http.encoding import job_headers, json_response
from simulator.http.errors import ApiError
from simulator.http.parsing import choice, idempotency_key, parse_fields, simulate_header, text, user_id
from simulator.http.views.media import job_files
from simulator.media import MediaNotFound, Upload

bp = Blueprint("submissions", __name__)

TRANSLATE_FIELDS = {
    "role": choice("free", "premium"),
    "video_url": text(2048),
    "target_language": text(35),
    "simulate": Scenario.parse,
    "upload_id": text(64),
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
    upload = named_upload(fields.get("upload_id"))
    job, replayed = sim().engine.submit(
        fields.get("role", "free"),
        user_id(),
        video_url=fields.get("video_url"),
        target_language=fields.get("target_language"),
        idempotency_key=idempotency_key(),
        simulate=submitted_script(fields),
        upload_id=fields.get("upload_id"),
        media_seconds=upload.info.duration_seconds if upload else None,
    )
    if upload is not None:
        job_files().attach(upload.upload_id, job["job_id"])
    headers = {"Location": f"/status/{job['job_id']}", **job_headers(job)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(job, 202, headers)


def named_upload(upload_id: str | None) -> Upload | None:
    """Return the upload a submission names (kept for the job from now on), or 422 naming upload_id if none."""
    if upload_id is None:
        return None
    try:
        return job_files().use(upload_id)
    except MediaNotFound:
        message = "no upload has this id (POST /uploads first; unused uploads are deleted after JOB_TTL)"
        raise ApiError(422, "validation_error", f"The request body is invalid: upload_id: {message}.",
                       errors=[{"field": "upload_id", "message": message}]) from None


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
    if "upload_id" in fields and not job_files().has_upload(fields["upload_id"]):
        return True  # refused with 422 anyway
    engine = sim().engine
    if script is not None and engine.settings.SCENARIOS != "on":
        return True  # refused with 403 anyway
    if engine.total() >= engine.settings.MAX_JOBS:
        return True  # refused with 503 anyway
    return key is not None and engine.find_idempotent(user, key) is not None


def hourly_limit() -> str:
    """Return the limit in force now (RATE_LIMIT may change at runtime)."""
    return f"{sim().engine.settings.RATE_LIMIT}/hour"
