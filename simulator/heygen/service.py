"""HeyGen's routes over the engine: submissions as the key's user and role, one job per language; statuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.auth.keys import Principal
from simulator.domain import JobEngine, JobNotFound, Scenario
from simulator.heygen import views
from simulator.heygen.replays import ReplayGate
from simulator.heygen.requests import TranslationRequest
from simulator.links import ResultLinks


class HeyGenService:
    """Submits and reads HeyGen-route jobs; the same jobs, queue, priorities and faults as the native routes."""

    def __init__(self, engine: JobEngine, links: ResultLinks, replays: ReplayGate) -> None:
        self.engine = engine
        self.links = links
        self.replays = replays

    def submit(
        self,
        principal: Principal,
        request: TranslationRequest,
        api: str,
        base_url: str,
        replay: tuple[str, Callable[[list[str]], str]] | None = None,
        simulate: Scenario | None = None,
        upload: tuple[str, float | None] | None = None,
    ) -> list[str]:
        """Queue one job per output language as the key's user and role; return their ids, in the request's order.

        With `replay` (a key's scope, and how to render the answer from the ids), the answer is kept in the
        same store transaction as the jobs, so a crash can never keep one without the other. `simulate`
        scripts every one of the jobs (X-Simulate; ScenariosDisabled while SCENARIOS is off). `upload` is
        (upload id, duration in seconds) when the video URL names an upload of this server.
        """
        meta = request.meta(api, base_url)
        upload_id, seconds = upload if upload is not None else (None, None)
        if seconds is not None:
            meta["duration"] = seconds  # the result is the upload remuxed: as long as it
        wanted = [{"video_url": request.video_url, "target_language": language, "meta": meta, "upload_id": upload_id,
                   "media_seconds": seconds} for language in request.output_languages]

        def remember(made: list[dict[str, Any]]) -> None:
            if replay is not None:
                scope, render = replay
                self.replays.remember(scope, render([job["job_id"] for job in made]), 200)

        made = self.engine.submit_many(principal.role, principal.user_id, wanted, simulate=simulate, also=remember)
        return [job["job_id"] for job in made]

    def status(self, principal: Principal, job_id: str, base_url: str, version: str) -> dict[str, Any]:
        """Return a job of the key's user as HeyGen's v2 or v3 status route shows it (another's is not found)."""
        job, meta = self.engine.get_with_meta(job_id)
        if job["user_id"] != principal.user_id:
            raise JobNotFound(f"No video translation with id {job_id!r}.", job_id=job_id)
        url = self.links.url(base_url, job_id) if job["status"] == "completed" else None
        return views.v2_status(job, meta, url) if version == "v2" else views.v3_status(job, meta, url)
