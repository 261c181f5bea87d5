"""One place that turns every error into RFC 9457 problem+json (HeyGen's envelope on HeyGen's routes): API errors,
domain errors, media errors, HTTP errors, the rest."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from simulator.domain import (
    CapacityExceeded,
    ClockNotManual,
    IdempotencyMismatch,
    InvalidArgument,
    JobError,
    JobNotFound,
    ScenariosDisabled,
    StoreUnavailable,
    TransitionRefused,
)
from simulator.http import envelopes
from simulator.http.encoding import json_response
from simulator.media.errors import (
    MediaError,
    MediaNotFound,
    MediaTooLong,
    NotAVideo,
    ResultGone,
    StorageFull,
    TooLarge,
    UnreadableMedia,
    UnsupportedMedia,
)
from simulator.settings import ConfigError

log = logging.getLogger("server")

MAX_BODY_BYTES = 64 * 1024
JOB_ERROR_STATUS: dict[type[JobError], int] = {
    JobNotFound: 404,
    TransitionRefused: 409,
    ClockNotManual: 409,
    ScenariosDisabled: 403,
    InvalidArgument: 422,
    IdempotencyMismatch: 422,
    CapacityExceeded: 503,
    StoreUnavailable: 503,
}
MEDIA_ERROR_STATUS: dict[type[MediaError], int] = {
    NotAVideo: 415,
    UnreadableMedia: 422,
    MediaTooLong: 422,
    UnsupportedMedia: 422,
    TooLarge: 413,
    StorageFull: 507,
    ResultGone: 410,
    MediaNotFound: 404,
}


class ApiError(Exception):
    """An error answered as problem+json: HTTP status, stable code, human detail, extra members."""

    def __init__(
        self, status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_document(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """Return an RFC 9457 problem document: type, title, status, detail, code, and the extras."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    """Return an RFC 9457 problem+json response."""
    response = json_response(problem_document(status, code, detail, **extra), status, headers)
    response.mimetype = "application/problem+json"
    return response


def handle_error(error: Exception) -> Response:
    """Answer any error raised by a view or a hook as problem+json (500 for the unexpected, logged).

    On HeyGen's routes (`envelopes.family()`) the same error is answered in HeyGen's envelope instead.
    """
    status, code, detail, headers, extra = _describe(error)
    if envelopes.family() is not None:
        return envelopes.heygen_error(status, code, detail, headers, extra)
    return problem(status, code, detail, headers, **extra)


Described = tuple[int, str, str, dict[str, str], dict[str, Any]]


def _describe(error: Exception) -> Described:
    """Return (status, code, detail, headers, extra members) for any error."""
    if isinstance(error, ApiError):
        return error.status, error.code, error.detail, error.headers, error.extra
    if isinstance(error, JobError):
        status = JOB_ERROR_STATUS.get(type(error)) or getattr(error, "status", 400)
        headers = {}
        if "retry_after" in error.extra:
            headers["Retry-After"] = str(error.extra["retry_after"])
        return status, error.code, error.detail, headers, error.extra
    if isinstance(error, MediaError):
        return MEDIA_ERROR_STATUS.get(type(error), 422), error.code, error.detail, {}, error.extra
    if isinstance(error, ConfigError):
        errors = [{"field": key, "message": message} for key, message in error.errors.items()]
        return 422, "invalid_config", f"The configuration change was refused: {error}.", {}, {"errors": errors}
    if isinstance(error, RateLimitExceeded):
        return _rate_limited(error)
    if isinstance(error, HTTPException):
        return _http_error(error)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return 500, "internal_error", "The server hit an unexpected error; it has been logged.", {}, {}


def _rate_limited(error: RateLimitExceeded) -> Described:
    simulator = current_app.extensions["simulator"]
    current = simulator.hourly_limit.limiter.current_limit
    now = simulator.engine.now()  # the window moves with simulated time (CLOCK=manual included)
    # The window's exact reset: `reset_at` is rounded up a second further, which would say 3601 s.
    reset_at = current.window.reset_time if current is not None else now + 3600
    retry_after = max(1, math.ceil(reset_at - now))
    amount = error.limit.limit.amount
    detail = (
        f"Free users may submit {amount} jobs per hour; try again in {retry_after} s or submit as premium."
        if amount
        else "Free submissions are switched off (RATE_LIMIT is 0); submit as premium."
    )
    headers = {**simulator.hourly_limit.headers(), "Retry-After": str(retry_after)}
    return 429, "rate_limited", detail, headers, {"retry_after": retry_after}


def _http_error(error: HTTPException) -> Described:
    status = error.code or 500
    headers = {}
    if status == 405:
        headers["Allow"] = ", ".join(sorted(error.valid_methods or []))  # type: ignore[attr-defined]
    code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    details = {
        404: f"No endpoint at {request.path}.",
        405: f"{request.method} is not allowed on {request.path}; allowed: {headers.get('Allow', '')}.",
        413: f"The request body is larger than {request.max_content_length or MAX_BODY_BYTES} bytes.",
    }
    return status, code, details.get(status, error.description or HTTPStatus(status).phrase), headers, {}


def init_app(app: Flask) -> None:
    """Route every error of `app` through `handle_error`."""
    app.register_error_handler(Exception, handle_error)
