"""Videos in and out: POST /uploads, GET /uploads/<id>, GET /results/<job_id> (the one place a job's file is served).

A job's `result_url` (the wire view's, `simulator.domain.view.result_path`) is this blueprint's results route;
HeyGen's routes and webhooks link to it too, with a signed query (`simulator.links`) that opens the file without
an API key, so that every download gets the same headers, Range support and expiry. Without a signed link the
usual rules apply: in AUTH_MODE=keys a key is needed and another user's job is not found. `upload_id_in_url`
tells routes that take a `video_url` whether it names an upload of this server.
"""

from __future__ import annotations

import math
import re

from flask import Blueprint, Response, current_app, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from simulator.domain.view import result_path
from simulator.http.bodies import body_limit
from simulator.http.context import sim
from simulator.http.encoding import json_response
from simulator.http.errors import ApiError
from simulator.http.identity import caller, signed_link_request
from simulator.http.parsing import job_id_arg
from simulator.http.uploads import MULTIPART_ALLOWANCE, upload_body
from simulator.jobfiles import JobFiles

bp = Blueprint("media", __name__)

_UPLOAD_PATH = re.compile(r"/uploads/([A-Za-z0-9_-]{1,64})/?")


def job_files() -> JobFiles:
    """Return the current app's JobFiles."""
    return current_app.extensions["job_files"]


def upload_path(upload_id: str) -> str:
    """Return where an upload is described (`GET /uploads/<id>`)."""
    return f"/uploads/{upload_id}"


def upload_id_in_url(url: str, host_url: str) -> str | None:
    """Return the upload id a URL names if it is an upload of this server (`<host_url>uploads/<id>`), else None."""
    if not url.startswith(host_url.rstrip("/") + "/"):
        return None
    match = _UPLOAD_PATH.fullmatch(url[len(host_url.rstrip("/")):])
    return match.group(1) if match else None


def _upload_body_limit() -> int:
    """Return the body limit of an upload: the video's limit, and room for a multipart form's boundaries."""
    return sim().engine.settings.MAX_UPLOAD_BYTES + MULTIPART_ALLOWANCE


@bp.post("/uploads")
@body_limit(_upload_body_limit)
def create_upload() -> Response:
    """Stream a video to DATA_DIR, probe it, and answer 201 with what it holds (refused ones leave nothing behind)."""
    files = job_files()
    store = files.open()
    body = upload_body(request, store.chunk_bytes)  # 415 for another content type, 413 from Content-Length
    store.check_upload_size(body.content_length)
    files.check_room(body.content_length or request.content_length)  # 507 before reading, if it cannot fit
    upload = files.save_upload(body.chunks, filename=body.filename, content_length=body.content_length)
    return json_response(upload.as_dict(), 201, {"Location": upload_path(upload.upload_id)})


@bp.get("/uploads/<upload_id>")
def get_upload(upload_id: str) -> Response:
    """Answer what an upload holds (the same JSON as its POST)."""
    return json_response(job_files().upload(upload_id).as_dict())


@bp.get(result_path("<job_id>"))
def get_result(job_id: str) -> Response:
    """Serve a completed job's video: Content-Length, ETag, Range (206), Content-Disposition with its name."""
    job_id = job_id_arg(job_id)
    signed = signed_link_request()
    if signed:
        why = sim().links.refusal(job_id, request.args.get("expires"), request.args.get("signature"))
        if why is not None:
            raise ApiError(403, "invalid_link", why)
    job = sim().engine.get(job_id)
    if not signed:
        caller().require_visible(job)  # a signed link opens its job's file to whoever holds it
    if job["status"] != "completed":
        headers, extra = {}, {}
        if job["eta_seconds"] is not None:
            extra["retry_after"] = max(1, math.ceil(job["eta_seconds"]))
            headers["Retry-After"] = str(extra["retry_after"])
        later = "once it completes" if not job["done"] else "never: it did not complete"
        raise ApiError(409, "result_not_ready", f"Job {job['job_id']} is {job['status']}; its result exists {later}.",
                       headers=headers, job_id=job["job_id"], job_status=job["status"], **extra)
    files = job_files()
    result = files.result(job)
    etag = f"{result.job_id}-{result.size_bytes}-{int(result.created_at * 1000)}"
    try:
        return send_file(result.path, mimetype=result.media_type, as_attachment=True,
                         download_name=result.download_name, conditional=True, etag=etag,
                         last_modified=result.created_at, max_age=None)
    except FileNotFoundError:
        files.result(job)  # deleted or evicted between finding and opening it: ResultGone (410) or made again
        raise ApiError(503, "result_unavailable", "The result changed while it was being sent; try again.",
                       headers={"Retry-After": "1"}, retry_after=1) from None
    except RequestedRangeNotSatisfiable:
        raise ApiError(416, "range_not_satisfiable",
                       f"The Range header is not one range of bytes within the result's {result.size_bytes} bytes.",
                       headers={"Content-Range": f"bytes */{result.size_bytes}"}) from None
