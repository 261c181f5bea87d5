"""The wire view of a job: the JSON-ready dict every endpoint, event and webhook shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from simulator.domain.job import Job
from simulator.domain.planning import progress, running_eta
from simulator.domain.status import Stage, Status

#: Where queued jobs stand: job_id -> (queue_position, eta seconds or None).
Places = dict[str, tuple[int, float | None]]


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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Copies of jobs taken at one instant (`now`), turned into views later, batch by batch, without the store.

    A listing holds the store only while it copies the jobs (half a microsecond each) and works out
    where the queued ones stand; building and encoding their views, the bulk of the work, needs no lock,
    and only one batch of views exists at a time. The views are the ones the engine would have shown
    at `now`.
    """

    now: float
    jobs: list[Job]
    places: Places = field(default_factory=dict)
    total: int = 0  # how many jobs the listing is a page of

    def view(self, job: Job) -> dict[str, Any]:
        """Return one copied job's view at the snapshot's instant."""
        if job.stage is Stage.QUEUED:
            position, eta = self.places[job.job_id]
        elif job.stage is Stage.TRANSLATING:
            position, eta = None, running_eta(job, self.now)
        else:
            position, eta = None, None
        return job_view(job, self.now, position, eta)

    def views(self, jobs: Iterable[Job] | None = None) -> list[dict[str, Any]]:
        """Return the views of `jobs` (default: all of them), in order."""
        return [self.view(job) for job in (self.jobs if jobs is None else jobs)]
