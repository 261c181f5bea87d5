"""Job: an immutable, typed view of one job as the server last described it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = frozenset({"completed", "permanently_failed", "cancelled"})


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Job:
    """An immutable view of one job as the server last described it."""

    job_id: str
    status: str
    result: str
    done: bool
    role: str
    priority: int
    user_id: str
    progress: int
    queue_position: int | None
    attempts: int
    max_retries: int
    eta_seconds: float | None
    error: dict[str, Any] | None
    version: int
    cancel_reason: str | None
    video_url: str | None
    target_language: str | None
    simulate: dict[str, Any] | None  # the job's scripted outcomes, when it was submitted with some
    stage: str | None
    upload_id: str | None
    result_url: str | None
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Build a Job from the server's JSON."""
        return cls(
            job_id=str(data["job_id"]),
            status=str(data["status"]),
            result=str(data.get("result", "")),
            done=bool(data.get("done", data["status"] in TERMINAL_STATUSES)),
            role=str(data.get("role", "free")),
            priority=int(data.get("priority", 0)),
            user_id=str(data.get("user_id", "")),
            progress=int(data.get("progress") or 0),
            queue_position=data.get("queue_position"),
            attempts=int(data.get("attempts") or 0),
            max_retries=int(data.get("max_retries") or 0),
            eta_seconds=None if data.get("eta_seconds") is None else float(data["eta_seconds"]),
            error=data.get("error"),
            version=int(data.get("version") or 0),
            cancel_reason=data.get("cancel_reason"),
            video_url=data.get("video_url"),
            target_language=data.get("target_language"),
            simulate=data.get("simulate"),
            stage=data.get("stage"),
            upload_id=data.get("upload_id"),
            result_url=data.get("result_url"),
            created_at=_timestamp(data.get("created_at")),
            updated_at=_timestamp(data.get("updated_at")),
            started_at=_timestamp(data.get("started_at")),
            finished_at=_timestamp(data.get("finished_at")),
            raw=dict(data),
        )

    @property
    def completed(self) -> bool:
        """Tell whether the job was translated."""
        return self.status == "completed"

    def progress_key(self) -> tuple[str, int, int | None]:
        """Return what on_progress reports a change of: status, progress and queue position."""
        return (self.status, self.progress, self.queue_position)
