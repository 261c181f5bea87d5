"""HeyGen's video-translation routes, v2 and v3, in HeyGen's envelopes (see simulator.heygen for the rules).

- `GET /v2/video_translate/target_languages`, `GET /v3/video-translations/languages`: the language names.
- `POST /v2/video_translate`, `POST /v3/video-translations`: submit, as the API key's user and role.
- `GET /v2/video_translate/<id>`, `GET /v3/video-translations/<id>`: HeyGen's status of a job.

Every route needs X-Api-Key (`simulator.http.identity`). A submission may script its jobs' outcomes with the
`X-Simulate` header, as `POST /translate` does (HeyGen's bodies take no field of ours). Free keys' submissions
count against the same hourly limit as `POST /translate`, one per output language, keyed on the key's user,
checked in the view as `POST /translate` checks it: only a submission that is new (not a replay) and not
refused anyway.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from simulator.auth.keys import Principal
from simulator.domain import JobNotFound, Scenario
from simulator.heygen.languages import language_names
from simulator.heygen.replays import KEY_PATTERN, ReplayGate, RequestInProgress
from simulator.heygen.requests import InvalidParameter, TranslationRequest, parse_v2, parse_v3
from simulator.http.context import sim
from simulator.http.encoding import dumps
from simulator.http.envelopes import heygen_ok
from simulator.http.errors import ApiError
from simulator.http.identity import caller
from simulator.http.parsing import MAX_ID_LENGTH, json_object, simulate_header
from simulator.http.views.jobs import scripted_fault
from simulator.http.views.media import job_files, upload_id_in_url
from simulator.media import MediaNotFound
from simulator.webhooks.hosts import parse_allowed_hosts

bp = Blueprint("heygen", __name__)
V3_SUBMIT = "POST /v3/video-translations"


def _principal() -> Principal:
    principal = caller().principal
    if principal is None:  # identity refuses HeyGen routes without a key before they run; never reached
        raise ApiError(401, "missing_api_key", "This endpoint needs an API key: X-Api-Key: <key>.")
    return principal


def _base_url() -> str:
    return request.host_url.rstrip("/")


def _parsed(version: str) -> TranslationRequest:
    """Return the request body as a TranslationRequest (cached for the limiter's hooks), or raise a 400."""
    if "heygen_request" not in g:
        allowed = parse_allowed_hosts(sim().engine.settings.WEBHOOK_ALLOWED_HOSTS)
        try:
            body = json_object()
            g.heygen_request = parse_v2(body, allowed) if version == "v2" else parse_v3(body, allowed)
        except InvalidParameter as e:
            raise ApiError(400, "invalid_parameter", e.message, param=e.param) from None
    return g.heygen_request


def _idempotency_scope() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not KEY_PATTERN.fullmatch(key):
        raise ApiError(400, "invalid_parameter", "Idempotency-Key must be 1–255 characters of A-Z, a-z, 0-9, "
                       "'_', ':', '.' and '-'.", param="Idempotency-Key")
    return ReplayGate.scope(_principal().user_id, V3_SUBMIT, key)


@bp.get("/v2/video_translate/target_languages")
def v2_languages() -> Response:
    """List the supported target languages (HeyGen's names)."""
    return heygen_ok({"languages": language_names()})


@bp.get("/v3/video-translations/languages")
def v3_languages() -> Response:
    """List the supported target languages (HeyGen's names)."""
    return heygen_ok({"languages": language_names()})


@bp.post("/v2/video_translate")
def v2_submit() -> Response:
    """Queue a translation (one job per language); answer its id, or ids for `output_languages`."""
    translation = _parsed("v2")
    script = simulate_header()
    upload = _named_upload(translation, "video_url")
    _count(translation, script)
    ids = sim().heygen.submit(_principal(), translation, "v2", _base_url(), simulate=script, upload=upload)
    _attach(upload, ids)
    data = {"video_translate_ids": ids} if translation.batch else {"video_translate_id": ids[0]}
    return heygen_ok(data, headers=sim().hourly_limit.headers())


@bp.post("/v3/video-translations")
def v3_submit() -> Response:
    """Queue one job per output language; answer their ids. An Idempotency-Key replays the first answer (24 h).

    The key is held while its request is answered (another request with it gets 409), so only the first
    request under a key can count against the hourly limit; a replay never does.
    """
    scope = _idempotency_scope()
    script = simulate_header()
    simulator = sim()
    service = simulator.heygen
    if scope is None:
        translation = _parsed("v3")
        upload = _named_upload(translation, "video.url")
        _count(translation, script)
        ids = service.submit(_principal(), translation, "v3", _base_url(), simulate=script, upload=upload)
        _attach(upload, ids)
        return heygen_ok({"video_translation_ids": ids}, headers=simulator.hourly_limit.headers())
    try:
        with service.replays.hold(scope):
            kept = service.replays.find(scope)
            if kept is not None:
                response = Response(kept.body, status=kept.status, mimetype="application/json")
                response.headers["Idempotent-Replayed"] = "true"
                return response

            def render(ids: list[str]) -> str:
                return dumps({"data": {"video_translation_ids": ids}}).decode()

            translation = _parsed("v3")
            upload = _named_upload(translation, "video.url")
            _count(translation, script)
            ids = service.submit(_principal(), translation, "v3", _base_url(), replay=(scope, render), simulate=script,
                                 upload=upload)
            _attach(upload, ids)
            return Response(render(ids), status=200, mimetype="application/json",
                            headers=simulator.hourly_limit.headers())
    except RequestInProgress:
        raise ApiError(409, "request_in_progress", "A request with this Idempotency-Key is still in flight; "
                       "retry once it has been answered.", headers={"Retry-After": "1"}) from None


def _named_upload(translation: TranslationRequest, param: str) -> tuple[str, float | None] | None:
    """Return (upload id, duration) when the video URL is an upload of this server (`<base>/uploads/<id>`).

    Such a job translates the upload, and its result is the upload remuxed, as `upload_id` on POST
    /translate makes it; an upload URL whose upload is gone is a 400 naming the field.
    """
    upload_id = upload_id_in_url(translation.video_url, request.host_url)
    if upload_id is None:
        return None
    try:
        upload = job_files().use(upload_id)
    except MediaNotFound:
        raise ApiError(400, "invalid_parameter", f"'{param}' names an upload of this server that does not exist "
                       "(POST /uploads first; unused uploads are deleted after JOB_TTL).", param=param) from None
    return upload.upload_id, upload.info.duration_seconds


def _attach(upload: tuple[str, float | None] | None, job_ids: list[str]) -> None:
    """Keep the upload for as long as any of the jobs made from it is stored."""
    if upload is not None:
        for job_id in job_ids:
            job_files().attach(upload[0], job_id)


def _count(translation: TranslationRequest, script: Scenario | None) -> None:
    """Count a free key's submission against its user's hour, one per output language (429 when it does not fit).

    Premium keys never count, and neither does a submission refused anyway: by MAX_JOBS (503), or scripted
    while SCENARIOS is off (403).
    """
    simulator = sim()
    engine = simulator.engine
    settings = engine.settings
    wanted = len(translation.output_languages)
    refused = engine.total() + wanted > settings.MAX_JOBS or (script is not None and settings.SCENARIOS != "on")
    if _principal().role == "free" and not refused:
        simulator.hourly_limit.check(wanted)


@bp.get("/v2/video_translate/<video_translate_id>")
def v2_status(video_translate_id: str) -> Response:
    """Answer a translation's status: pending, running, success or failed (with `url` on success)."""
    return heygen_ok(_status(video_translate_id, "v2"))


@bp.get("/v3/video-translations/<video_translation_id>")
def v3_status(video_translation_id: str) -> Response:
    """Answer a translation's details: pending, running, completed or failed (with `video_url` when completed)."""
    return heygen_ok(_status(video_translation_id, "v3"))


def _status(job_id: str, version: str) -> dict[str, Any]:
    """Return the job's HeyGen status data, or raise what its script makes this read answer (simulate)."""
    if len(job_id) > MAX_ID_LENGTH:
        raise JobNotFound("No video translation with this id (ids are UUIDs).", job_id=job_id[:MAX_ID_LENGTH])
    simulator = sim()
    data = simulator.heygen.status(_principal(), job_id, _base_url(), version)  # another user's job: 404
    fault = simulator.engine.take_read_fault(job_id)
    if fault is not None:
        raise scripted_fault(job_id, fault)  # in HeyGen's envelope, with its Retry-After
    return data
