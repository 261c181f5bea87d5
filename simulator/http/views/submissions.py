"""POST /translate: submit a job; a free one that is new counts against its user's hourly limit."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from simulator.domain import Scenario
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
    simulate_header,
    text,
)
from simulator.http.views.media import job_files
from simulator.media import MediaNotFound, Upload
from simulator.webhooks.hosts import check_destination, parse_allowed_hosts

bp = Blueprint("submissions", __name__)

TRANSLATE_FIELDS = {
    "role": choice("free", "premium"),
    "video_url": text(2048),
    "target_language": text(35),
    "simulate": Scenario.parse,
    "upload_id": text(64),
    "callback_url": text(2048),
}


def submitter(fields: dict[str, Any]) -> tuple[str, str]:
    """Return (user, role) the submission runs as: from the API key when one was sent, else as declared."""
    declared = header_token("X-User-Id", MAX_USER_ID_LENGTH, single=True)
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


def submitted_script(fields: dict[str, Any]) -> Scenario | None:
    """Return the job's script from the body's `simulate` or the X-Simulate header (not both: 400)."""
    header = simulate_header()
    if header is not None and "simulate" in fields:
        raise ApiError(400, "invalid_header", "Both X-Simulate and the body's simulate member script this job; "
                       "send one of them.")
    return fields.get("simulate", header)


@bp.post("/translate")
def translate() -> Response:
    """Queue a job; answer 202 with it, Location and Retry-After (a replayed Idempotency-Key answers the original).

    Submissions under one user's Idempotency-Key run one at a time: the first decides whether the key
    is new (and only then counts against the hourly limit), the others find it and replay it, however
    many arrive at once. Premium submissions, replays, refused ones and those refused for capacity
    never count. With an API key, the user and role are the key's (`submitter`).
    """
    fields = parse_fields(TRANSLATE_FIELDS)
    user, role = submitter(fields)  # 403 when a declaration disagrees with the key
    key = idempotency_key()
    script = submitted_script(fields)
    meta = callback_meta(fields)  # 422 for a callback_url WEBHOOK_ALLOWED_HOSTS refuses
    upload = named_upload(fields.get("upload_id"))  # 422 for an unknown upload, before anything counts
    simulator = sim()
    engine = simulator.engine
    with simulator.submissions.hold((user, key) if key is not None else None):
        counted = (
            role == "free"
            and (script is None or engine.settings.SCENARIOS == "on")  # refused with 403 anyway
            # Neither refused with 503 for MAX_JOBS nor a replay: one read of the store (one round trip on Redis).
            and engine.would_create(user, key)
        )
        if counted:
            simulator.hourly_limit.check()
        job, replayed = engine.submit(
            role,
            user,
            video_url=fields.get("video_url"),
            target_language=fields.get("target_language"),
            idempotency_key=key,
            simulate=script,
            upload_id=fields.get("upload_id"),
            media_seconds=upload.info.duration_seconds if upload else None,
            meta=meta,
        )
    if upload is not None:
        job_files().attach(upload.upload_id, job["job_id"])
    headers = {"Location": f"/status/{job['job_id']}", **job_headers(job), **simulator.hourly_limit.headers()}
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


def hourly_limit() -> str:
    """Return the limit in force now (RATE_LIMIT may change at runtime)."""
    return f"{sim().engine.settings.RATE_LIMIT}/hour"
