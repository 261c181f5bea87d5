"""The API's requests and answers without any I/O: what to send, and what an answer means.

Both clients (sync.py on requests, aio.py on httpx) build a `Call` here, send it their own way, turn what
came back into an `Answer`, and let `Call.decode` judge it: the value the caller wants, an APIError for
an HTTP error in problem+json, or ProtocolError for anything that is not this API. One place decides
what "not this API" means, so both clients treat a foreign server the same way: fatal, at once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from simulator.client.errors import JobFailedError, ProtocolError, ServerError, error_class
from simulator.client.job import Job

T = TypeVar("T")

#: Statuses an intermediary (a reverse proxy, a load balancer) sends when the server behind it is down. The
#: simulator never sends them itself, so without a problem body they are taken as transient, not as foreign.
GATEWAY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole: what the decoders need, whichever library fetched it."""

    method: str
    url: str
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (requests' and httpx' header mappings both are)
    body: bytes
    raw: Any = field(default=None, repr=False, compare=False)  # the library's own response object

    @property
    def content_type(self) -> str:
        """Return the media type without parameters, lower-cased ('' if none was sent)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def snippet(self, limit: int = 80) -> str:
        """Return the start of the body on one line, for error messages."""
        text = " ".join(self.body[: limit * 4].decode("utf-8", "replace").split())
        return text[:limit] + ("…" if len(text) > limit else "")

    def foreign(self, why: str) -> ProtocolError:
        """Return the ProtocolError for this answer: one line naming the URL and what came back."""
        kind = self.content_type or "no content type"
        body = f": {self.snippet()!r}" if self.body else ", empty"
        return ProtocolError(
            f"{self.url.split('?', 1)[0]} is not the translation API: it answered {self.status} {kind}{body} ({why})"
        )


def _is_json(media_type: str) -> bool:
    return media_type in ("application/json", "application/problem+json") or media_type.endswith("+json")


def parse_json(answer: Answer) -> Any:
    """Return the JSON value of an answer that says it is JSON; raise ProtocolError for anything else."""
    if not _is_json(answer.content_type):
        raise answer.foreign("not JSON")
    try:
        return json.loads(answer.body)
    except ValueError:
        raise answer.foreign("not JSON: it does not parse") from None


def check(answer: Answer) -> None:
    """Raise the APIError of an HTTP error answer, or ProtocolError if the answer is not this API's."""
    if 300 <= answer.status < 400:
        location = answer.headers.get("Location", "nowhere")
        raise answer.foreign(f"a redirect to {location}; this API never redirects")
    if answer.status < 400:
        return
    try:
        problem = parse_json(answer)
        if not isinstance(problem, dict) or not ({"status", "code", "title"} & problem.keys()):
            raise answer.foreign("an error without the problem+json shape")
    except ProtocolError:
        if answer.status in GATEWAY_STATUSES:  # a proxy's error page: the server behind it is down
            raise ServerError(answer, {"detail": answer.snippet()}) from None
        raise
    raise error_class(answer.status)(answer, problem)


def json_object(answer: Answer) -> dict[str, Any]:
    """Return the JSON object of a successful answer (every endpoint of this API answers an object)."""
    check(answer)
    value = parse_json(answer)
    if not isinstance(value, dict):
        raise answer.foreign(f"a JSON {type(value).__name__} where an object was expected")
    return value


def job_from(answer: Answer, data: Any = None) -> Job:
    """Return the Job an answer describes (or `data`, taken from it); ProtocolError if it is not a job."""
    if data is None:
        data = json_object(answer)
    try:
        return Job.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise answer.foreign(f"not a job: {e!r}") from e


def completed(job: Job) -> Job:
    """Return the job if it completed; raise JobFailedError if it ended otherwise."""
    if not job.completed:
        raise JobFailedError(job)
    return job


def has_next_page(answer: Answer) -> bool:
    """Tell whether a paged listing says more follow (a Link header with rel="next")."""
    return 'rel="next"' in answer.headers.get("Link", "")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API and how to read its answer."""

    method: str
    path: str
    decode: Callable[[Answer], T]
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    admin: bool = False
    #: Seconds the server may hold this request on purpose (a long-poll), on top of the request budget.
    hold: float = 0.0


def base_url(url: str) -> str:
    """Return the server's URL without a trailing slash; ValueError unless it is http(s)://host[:port][/path]."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the server URL must look like http://127.0.0.1:4777, not {url!r}")
    return url.rstrip("/")


def request_headers(call: Call[Any], user_id: str | None, admin_token: str | None) -> dict[str, str]:
    """Return the headers of a call: JSON accepted, the user, the admin token when needed, the call's own."""
    headers = {"Accept": "application/json"}
    if user_id is not None:
        headers["X-User-Id"] = user_id
    if call.admin and admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    headers.update(call.headers)
    return headers


# ------------------------------------------------------------------------------------------ the calls


def status_call(job_id: str, *, wait: float | None = None, since: int | None = None) -> Call[Job]:
    """GET /status/<id>, as a long-poll of up to `wait` seconds past version `since` when `wait` is given."""
    params: dict[str, Any] = {}
    if wait is not None and wait > 0:
        params["wait"] = f"{wait:.3f}"
        if since is not None:
            params["since"] = since
    return Call("GET", f"/status/{job_id}", job_from, params=params, hold=wait or 0.0)


def long_poll_honoured(answer: Answer) -> bool:
    """Tell whether the server held a status request as asked (it says so with Preference-Applied)."""
    return "Preference-Applied" in answer.headers


def result_path(job_id: str) -> str:
    """Return where a job's result is downloaded (what a completed job's `result_url` says)."""
    return f"/results/{job_id}"


def newest_call() -> Call[Job]:
    """GET /status: the caller's newest job."""
    return Call("GET", "/status", job_from)


def submit_key(user: str | None, role: str, video_url: str | None, target_language: str | None,
               simulate: Mapping[str, Any] | None = None, upload_id: str | None = None) -> str:
    """Return the Idempotency-Key of a submission of a video: the same user, video and language, the same key.

    A scripted submission (`simulate`) gets a key of its own script: the same video scripted otherwise is
    another job, not a conflict. An uploaded video (`upload_id`) is keyed on the upload.
    """
    parts: list[Any] = [user, video_url, target_language, role]
    if simulate is not None:
        parts.append(simulate)
    if upload_id is not None:  # only then, so that the keys of other submissions stay what they were
        parts.append(upload_id)
    material = json.dumps(parts, sort_keys=True)
    return "video-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def submit_call(
    role: str,
    *,
    user: str | None,
    video_url: str | None,
    target_language: str | None,
    idempotency_key: str | None,
    deduplicate: bool,
    simulate: Mapping[str, Any] | None = None,
    upload_id: str | None = None,
) -> Call[Job]:
    """POST /translate, always under an Idempotency-Key so that it can be retried safely."""
    if idempotency_key is None:
        if (video_url is not None or upload_id is not None) and deduplicate:
            idempotency_key = submit_key(user, role, video_url, target_language, simulate, upload_id)
        else:
            idempotency_key = str(uuid.uuid4())
    body: dict[str, Any] = {"role": role}
    if video_url is not None:
        body["video_url"] = video_url
    if target_language is not None:
        body["target_language"] = target_language
    if simulate is not None:
        body["simulate"] = dict(simulate)
    if upload_id is not None:
        body["upload_id"] = upload_id
    headers = {"Idempotency-Key": idempotency_key}
    if user is not None:
        headers["X-User-Id"] = user
    return Call("POST", "/translate", job_from, json_body=body, headers=headers)


def list_jobs_call(user_id: str | None) -> Call[dict[str, Any]]:
    """GET /jobs: every job grouped {status: {role: {job_id: job}}}."""
    return Call("GET", "/jobs", json_object, params={"user_id": user_id} if user_id is not None else None)


def jobs_page_call(user_id: str | None, offset: int, limit: int) -> Call[tuple[list[Job], bool]]:
    """GET /jobs?offset=&limit=: one page of jobs, and whether more follow."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if user_id is not None:
        params["user_id"] = user_id

    def decode(answer: Answer) -> tuple[list[Job], bool]:
        grouped = json_object(answer)
        try:
            found = [job_from(answer, j) for roles in grouped.values() for by_id in roles.values()
                     for j in by_id.values()]
        except AttributeError as e:
            raise answer.foreign("not a listing of jobs") from e
        return found, has_next_page(answer)

    return Call("GET", "/jobs", decode, params=params)


def oldest_first(jobs: Sequence[Job]) -> list[Job]:
    """Return jobs sorted by creation, then id."""
    return sorted(jobs, key=lambda j: (j.created_at or datetime.min, j.job_id))


def queue_call() -> Call[dict[str, Any]]:
    """GET /queue."""
    return Call("GET", "/queue", json_object)


def health_call() -> Call[dict[str, Any]]:
    """GET /healthz."""
    return Call("GET", "/healthz", json_object)


def get_config_call() -> Call[dict[str, Any]]:
    """GET /config."""
    return Call("GET", "/config", json_object)


def update_config_call(changes: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """POST /config (admin)."""
    return Call("POST", "/config", json_object, json_body=dict(changes), admin=True)


def cancel_call(job_id: str, reason: str | None) -> Call[dict[str, Any]]:
    """POST /cancel/<id> (admin)."""
    return Call("POST", f"/cancel/{job_id}", json_object, json_body={"reason": reason} if reason else {}, admin=True)


def cancelled_job(answer: dict[str, Any]) -> Job:
    """Return the job of a cancellation's answer."""
    return Job.from_dict(answer["job"])


def process_call(count: int) -> Call[list[Job]]:
    """POST /process_jobs (admin): the jobs started."""

    def decode(answer: Answer) -> list[Job]:
        started = json_object(answer).get("started")
        if not isinstance(started, list):
            raise answer.foreign("no list of started jobs")
        return [job_from(answer, j) for j in started]

    return Call("POST", "/process_jobs", decode, json_body={"count": count}, admin=True)


def cleanup_call(statuses: Sequence[str] | None, older_than: float | None) -> Call[int]:
    """POST /cleanup (admin): how many jobs were removed."""
    body: dict[str, Any] = {}
    if statuses is not None:
        body["statuses"] = list(statuses)
    if older_than is not None:
        body["older_than"] = older_than

    def decode(answer: Answer) -> int:
        removed = json_object(answer).get("removed")
        if not isinstance(removed, int):
            raise answer.foreign("no count of removed jobs")
        return removed

    return Call("POST", "/cleanup", decode, json_body=body, admin=True)


# ------------------------------------------------------------------------------------------ the testing controls


def clock_call() -> Call[dict[str, Any]]:
    """GET /admin/clock (admin): the clock's kind, the simulated now and the next event."""
    return Call("GET", "/admin/clock", json_object, admin=True)


def advance_clock_call(seconds: float) -> Call[dict[str, Any]]:
    """POST /admin/clock/advance (admin): move a manual clock, running what falls due."""
    return Call("POST", "/admin/clock/advance", json_object, json_body={"seconds": seconds}, admin=True)


def reset_call(keep_config: bool) -> Call[dict[str, Any]]:
    """POST /admin/reset (admin): leave the server as freshly started."""
    return Call("POST", "/admin/reset", json_object, json_body={"keep_config": keep_config}, admin=True)


def journal_params(path: str | None, method: str | None, status: int | None, user_id: str | None,
                   since: datetime | float | str | None) -> dict[str, Any]:
    """Return the journal's filters as query parameters (`since`: a datetime, epoch seconds or ISO 8601 text)."""
    params: dict[str, Any] = {"path": path, "method": method, "status": status, "user_id": user_id}
    if isinstance(since, datetime):
        params["since"] = since.isoformat()
    elif since is not None:
        params["since"] = str(since)
    return {name: value for name, value in params.items() if value is not None}


def request_journal_call(params: Mapping[str, Any], limit: int | None) -> Call[list[dict[str, Any]]]:
    """GET /admin/requests (admin): the recorded requests the filters select, oldest first."""

    def decode(answer: Answer) -> list[dict[str, Any]]:
        entries = json_object(answer).get("requests")
        if not isinstance(entries, list):
            raise answer.foreign("no list of requests")
        return entries

    query = dict(params) if limit is None else {**params, "limit": limit}
    return Call("GET", "/admin/requests", decode, params=query, admin=True)


def count_requests_call(params: Mapping[str, Any]) -> Call[int]:
    """GET /admin/requests/count (admin): how many recorded requests the filters select."""

    def decode(answer: Answer) -> int:
        count = json_object(answer).get("count")
        if not isinstance(count, int):
            raise answer.foreign("no count of requests")
        return count

    return Call("GET", "/admin/requests/count", decode, params=dict(params), admin=True)
