"""A job as HeyGen shows it: v2's and v3's status data, and the `video_translate.*` webhook events.

Statuses: a queued job (waiting, or queued again after a failed attempt) is `pending`, a job being
translated `running`; a completed job is `success` on v2 and `completed` on v3; a job that failed for good
or was cancelled is `failed`, with the reason in `message` (v2) or `failure_message` (v3).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from simulator.jobfiles import GENERATED_SECONDS

V2_STATUS = {"queued": "pending", "translating": "running"}
DONE = {"completed": ("success", "completed"), "permanently_failed": ("failed", "failed"),
        "cancelled": ("failed", "failed")}


def _status(job: dict[str, Any], version: int) -> str:
    if job["status"] in DONE:
        return DONE[job["status"]][version]
    return V2_STATUS[job["stage"]]


def failure_message(job: dict[str, Any]) -> str | None:
    """Return why a finished job did not succeed (None when it did, or is not finished)."""
    if job["status"] == "permanently_failed":
        error = job["error"] or {}
        return f"{error.get('message', 'The translation failed.')} (gave up after {job['attempts']} attempts)"
    if job["status"] == "cancelled":
        reason = job["cancel_reason"]
        return f"The translation was cancelled: {reason}" if reason else "The translation was cancelled."
    return None


def v2_status(job: dict[str, Any], meta: dict[str, Any] | None, url: str | None) -> dict[str, Any]:
    """Return `GET /v2/video_translate/<id>`'s data (`url` only once completed)."""
    extra = meta or {}
    return {
        "video_translate_id": job["job_id"],
        "title": extra.get("title"),
        "output_language": job["target_language"],
        "status": _status(job, 0),
        "url": url if job["status"] == "completed" else None,
        "message": failure_message(job),
        "callback_id": extra.get("callback_id"),
    }


def v3_status(job: dict[str, Any], meta: dict[str, Any] | None, url: str | None) -> dict[str, Any]:
    """Return `GET /v3/video-translations/<id>`'s data (`video_url` and `duration` only once completed)."""
    extra = meta or {}
    completed = job["status"] == "completed"
    return {
        "id": job["job_id"],
        "title": extra.get("title"),
        "status": _status(job, 1),
        "output_language": job["target_language"],
        "input_language": None,
        "duration": extra.get("duration", GENERATED_SECONDS) if completed else None,
        "translate_audio_only": bool(extra.get("translate_audio_only")),
        "video_url": url if completed else None,
        "audio_url": None,
        "callback_id": extra.get("callback_id"),
        "created_at": math.floor(datetime.fromisoformat(job["created_at"]).timestamp()),
        "failure_message": failure_message(job),
    }


def event(job: dict[str, Any], meta: dict[str, Any] | None, url: str | None) -> tuple[str, dict[str, Any]]:
    """Return a finished job's HeyGen event: (`video_translate.success` or `.fail`, its payload)."""
    extra = meta or {}
    data: dict[str, Any] = {"video_translate_id": job["job_id"]}
    if job["status"] == "completed":
        event_type = "video_translate.success"
        data["url"] = url
    else:
        event_type = "video_translate.fail"
        data["message"] = failure_message(job)
    data["callback_id"] = extra.get("callback_id")
    data["output_language"] = job["target_language"]
    return event_type, {"event_type": event_type, "event_data": data}
