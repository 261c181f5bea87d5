"""Reading jobs: GET /status/<id> (with long-polling), GET /status, GET /jobs, GET /queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from simulator.domain import ROLES, ReadFault, Status
from simulator.http.context import sim
from simulator.http.encoding import LazyViews, job_headers, json_response, listing_response, page_headers
from simulator.http.errors import ApiError
from simulator.http.identity import caller
from simulator.http.parsing import (
    MAX_USER_ID_LENGTH,
    header_token,
    job_id_arg,
    page_args,
    query_number,
    requested_wait,
)

bp = Blueprint("jobs", __name__)


def answer_status(find_job_id: Callable[[], str]) -> Response:
    """Answer one job, held up to the wait asked for (capped by MAX_WAIT and MAX_LONG_POLLS) until it changes."""
    wait = requested_wait()  # the query is checked before the job is looked up
    since = query_number("since", integer=True)
    job_id = find_job_id()
    simulator = sim()
    engine = simulator.engine
    who = caller()
    if who.scope is not None:
        who.require_visible(engine.get(job_id))  # another user's job is not found, before any wait
    fault = engine.take_read_fault(job_id)
    if fault is not None:
        raise scripted_fault(job_id, fault)
    settings = engine.settings
    applied = None
    if wait is not None and wait > 0 and settings.MAX_WAIT > 0 and simulator.long_polls.enter(settings.MAX_LONG_POLLS):
        applied = min(wait, settings.MAX_WAIT)
        try:
            job = engine.wait_for_change(job_id, None if since is None else int(since), applied)
        finally:
            simulator.long_polls.leave()
    else:
        job = engine.get(job_id)
    headers = job_headers(job)
    if applied is not None:
        headers["Preference-Applied"] = f"wait={applied:g}"
    return json_response(job, 200, headers)


def scripted_fault(job_id: str, fault: ReadFault) -> ApiError:
    """Return the error a scripted status read answers (simulate.status_faults), with its Retry-After if any."""
    headers, extra = {}, {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
        extra["retry_after"] = fault.retry_after
    detail = f"Scripted fault (simulate.status_faults): this status read of job {job_id} answers {fault.status}."
    return ApiError(fault.status, "scripted_fault", detail, headers=headers, job_id=job_id, **extra)


@bp.get("/status/<job_id>")
def status(job_id: str) -> Response:
    """Answer one job; `?wait=N` or `Prefer: wait=N` long-polls."""
    return answer_status(lambda: job_id_arg(job_id))


@bp.get("/status")
def newest_status() -> Response:
    """Answer the newest job of the caller's X-User-Id (of anyone without one)."""
    who = caller()
    declared = header_token("X-User-Id", MAX_USER_ID_LENGTH, single=True)
    if declared is None and who.principal is not None:
        declared = who.principal.user_id  # with a key, "my newest job"
    user = who.reading_scope(declared)
    if not requested_wait():  # no long-poll: the newest job's view is the answer, in one read of the store
        query_number("since", integer=True)  # checked all the same
        engine = sim().engine
        job = engine.newest(user)
        fault = engine.take_read_fault(job["job_id"])
        if fault is not None:
            raise scripted_fault(job["job_id"], fault)
        return json_response(job, 200, job_headers(job))
    return answer_status(lambda: sim().engine.newest(user)["job_id"])


@bp.get("/jobs")
def list_jobs() -> Response:
    """Answer every job (or one user's, or a page) grouped by status and role, built from a snapshot."""
    who = request.args.get("user_id")
    if who is not None and not 0 < len(who) <= MAX_USER_ID_LENGTH:
        raise ApiError(400, "invalid_parameter", f"user_id must be 1–{MAX_USER_ID_LENGTH} characters.")
    who = caller().reading_scope(who)
    offset, limit = page_args()
    snapshot = sim().engine.snapshot(user_id=who, offset=offset, limit=limit)
    groups: dict[str, dict[str, list[Any]]] = {status.value: {role: [] for role in ROLES} for status in Status}
    for job in snapshot.jobs:
        groups[job.status.value][job.role].append(job)
    body = {status: {role: LazyViews(snapshot, jobs, keyed=True) for role, jobs in roles.items()}
            for status, roles in groups.items()}
    # levels 2: {status: {role: {job_id: job}}}
    return listing_response(body, len(snapshot.jobs), 2, page_headers(offset, limit, snapshot.total))


@bp.get("/queue")
def queue() -> Response:
    """Answer the queued jobs in start order (or a page), the running ones, workers and mode."""
    offset, limit = page_args()
    engine = sim().engine
    queued, running = engine.queue_snapshot(offset=offset, limit=limit, user_id=caller().scope)
    settings = engine.settings
    body = {
        "mode": settings.PROCESSING_MODE,
        "workers": settings.WORKERS,
        "queued": LazyViews(queued),
        "queued_total": queued.total,
        "running": LazyViews(running),
    }
    # levels 1: {"queued": [job, …], "running": [job, …], …}
    return listing_response(body, len(queued.jobs) + len(running.jobs), 1, page_headers(offset, limit, queued.total))
