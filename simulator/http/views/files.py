"""GET /files/<job_id>.mp4: a successful translation's result, behind a signed link (no API key needed)."""

from __future__ import annotations

from flask import Blueprint, Response, request, send_file

from simulator.heygen.languages import tag
from simulator.http.context import sim
from simulator.http.errors import ApiError
from simulator.http.parsing import job_id_arg

bp = Blueprint("files", __name__)


@bp.get("/files/<job_id>.mp4")
def download(job_id: str) -> Response:
    """Send the result MP4 of a completed job whose link (expires, signature) is genuine and unexpired."""
    simulator = sim()
    why = simulator.heygen.links.refusal(job_id, request.args.get("expires"), request.args.get("signature"))
    if why is not None:
        raise ApiError(403, "invalid_link", why)
    job, meta = simulator.engine.get_with_meta(job_id_arg(job_id))
    if job["status"] != "completed":
        raise ApiError(404, "result_not_ready", f"Job {job_id} is {job['status']}: only a completed job has a "
                       "result.", job_id=job_id)
    language = tag(job["target_language"]) or job["target_language"]
    path = simulator.results.path(job_id, language, (meta or {}).get("title"))
    return send_file(path, mimetype="video/mp4", conditional=True, download_name=f"{job_id}.mp4")
