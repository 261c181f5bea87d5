"""The wire view of a job: the JSON-ready dict every endpoint, event and webhook shows."""

from __future__ import annotations

from typing import Any

from simulator.domain.job import Job
from simulator.domain.planning import progress
from simulator.domain.status import Status


def result_path(job_id: str) -> str:
    """Return where a job's result file is served (`GET /results/<job_id>`): the one URL of a job's file."""
    return f"/results/{job_id}"


def job_view(job: Job, now: float, queue_position: int | None, eta: float | None) -> dict[str, Any]:
    """Return the job as the API shows it at `now`, given its place in the queue and its ETA (seconds)."""
    status = job.status
    return {
        "job_id": job.job_id,
        "status": status.value,
        "result": status.result,
        "done": status.terminal,
        "stage": job.stage.value,
        "role": job.role,
        "priority": job.priority,
        "user_id": job.user_id,
        "progress": progress(job, now),
        "queue_position": queue_position,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "eta_seconds": None if eta is None else round(eta, 3),
        "error": job.error,
        "version": job.version,
        "cancel_reason": job.cancel_reason,
        "video_url": job.video_url,
        "target_language": job.target_language,
        "simulate": job.simulate,
        "upload_id": job.upload_id,
        "result_url": result_path(job.job_id) if status is Status.COMPLETED else None,
        "created_at": job.created_iso,
        "updated_at": job.updated_iso,
        "started_at": job.started_iso,
        "finished_at": job.finished_iso,
    }
