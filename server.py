"""HTTP layer of the translation simulator: routes parse, call `jobs.py`, serialise; one error handler.

`create_app(config=None, *, clock=None)` builds a complete app (engine, limiter, routes, errors) with
nothing shared between apps. `python server.py` serves it with waitress.
"""

from __future__ import annotations

import _thread
import argparse
import dataclasses
import hmac
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import wraps
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Flask, Response, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem
from limits.strategies import STRATEGIES, MovingWindowRateLimiter
from limits.util import WindowStats
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException, NotFound

import config as config_module
from config import ConfigError, RuntimeConfig, Settings
from jobs import (
    CapacityExceeded,
    Clock,
    IdempotencyMismatch,
    InvalidArgument,
    JobEngine,
    JobError,
    JobNotFound,
    Status,
    TransitionRefused,
)

log = logging.getLogger("server")

MAX_BODY_BYTES = 64 * 1024
MAX_ID_LENGTH = 64
MAX_USER_ID_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_PAGE = 10_000
MAX_OFFSET = 1_000_000_000
STREAM_BATCH = 1_000  # job views per piece of a streamed listing, and the size from which one is streamed
JOB_ERROR_STATUS: dict[type[JobError], int] = {
    JobNotFound: 404,
    TransitionRefused: 409,
    InvalidArgument: 422,
    IdempotencyMismatch: 422,
    CapacityExceeded: 503,
}
OPENAPI_PATH = Path(__file__).resolve().with_name("openapi.yaml")
#: The Swagger UI files the /docs page loads, served from the installed swagger-ui-bundle package (no CDN), each
#: with its media type spelled out: every answer says nosniff, so a browser runs or styles nothing mislabelled.
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Video translation job simulator — API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.yaml",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      deepLinking: true,
      validatorUrl: null  // the default would send the document to an online validator
    });
  </script>
</body>
</html>
"""


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


# ------------------------------------------------------------------------------------ request parsing

Validator = Callable[[Any], Any]


def _choice(*allowed: str) -> Validator:
    def check(value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return value

    return check


def _text(max_length: int) -> Validator:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or not value.strip() or len(value) > max_length:
            raise ValueError(f"must be a non-empty string of at most {max_length} characters, got {_short(value)}")
        return value

    return check


def _integer(low: int, high: int) -> Validator:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer in [{low}, {high}], got {_short(value)}")
        return value

    return check


def _seconds(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"must be a number of seconds ≥ 0, got {_short(value)}")
    return float(value)


def _statuses(value: Any) -> Any:
    finished = [s.value for s in Status if s.terminal]
    if not isinstance(value, list) or not value or any(v not in finished for v in value):
        raise ValueError(f"must be a non-empty list of finished statuses ({', '.join(finished)}), got {_short(value)}")
    return [Status(v) for v in value]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


TRANSLATE_FIELDS = {
    "role": _choice("free", "premium"),
    "video_url": _text(2048),
    "target_language": _text(35),
}
CANCEL_FIELDS = {"reason": _text(500)}
PROCESS_FIELDS = {"count": _integer(1, 100_000)}
CLEANUP_FIELDS = {"statuses": _statuses, "older_than": _seconds}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_type(value: Any) -> str:
    """Name a decoded JSON value's type as JSON does."""
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "a number"), (float, "a number"),
                       (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null"


def json_object() -> dict[str, Any]:
    """Return the request body as a JSON object ({} when empty), or raise a 400 ApiError."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "malformed_json", f"The request body is not valid JSON: {e}.") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", f"The request body must be a JSON object, got {json_type(body)}.")
    return body


def parse_fields(fields: Mapping[str, Validator]) -> dict[str, Any]:
    """Parse the body as a JSON object whose members are all in `fields`; raise 422 listing every bad one."""
    body = json_object()
    errors = []
    clean = {}
    for name, value in body.items():
        check = fields.get(name)
        if check is None:
            errors.append({"field": name, "message": f"unknown field; allowed: {', '.join(fields) or 'none'}"})
            continue
        try:
            clean[name] = check(value)
        except ValueError as e:
            errors.append({"field": name, "message": str(e)})
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ApiError(422, "validation_error", f"The request body is invalid: {detail}.", errors=errors)
    return clean


def header_token(name: str, max_length: int) -> str | None:
    """Return a header's value, or raise 400 when it is empty, too long or not printable ASCII."""
    value = request.headers.get(name)
    if value is None:
        return None
    if not value or len(value) > max_length or not value.isprintable() or not value.isascii():
        raise ApiError(400, "invalid_header", f"{name} must be 1–{max_length} printable ASCII characters.")
    return value


def user_id() -> str:
    """Return who is asking: X-User-Id, else the client address."""
    return header_token("X-User-Id", MAX_USER_ID_LENGTH) or request.remote_addr or "anonymous"


def query_number(name: str, *, integer: bool = False) -> float | None:
    """Return a query parameter as a number ≥ 0, or raise 400."""
    text = request.args.get(name)
    if text is None:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if not 0 <= value < math.inf:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, "invalid_parameter", f"Query parameter {name!r} must be {kind} ≥ 0, got {text!r}.")
    return value


def requested_wait() -> float | None:
    """Return the long-poll wait asked for by `?wait=N` or `Prefer: wait=N` (the query wins)."""
    wait = query_number("wait")
    if wait is not None:
        return wait
    for preference in request.headers.get("Prefer", "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                number = float(value.strip().strip('"'))
            except ValueError:
                raise ApiError(400, "invalid_header", f"Prefer: wait must be a number ≥ 0, got {value!r}.") from None
            if not 0 <= number < math.inf:
                raise ApiError(400, "invalid_header", f"Prefer: wait must be a number ≥ 0, got {value!r}.")
            return number
    return None


def page_args() -> tuple[int, int | None]:
    """Return (offset, limit) from `?offset=&limit=`; no limit means everything from the offset on."""
    offset = int(query_number("offset", integer=True) or 0)
    if offset > MAX_OFFSET:
        raise ApiError(400, "invalid_parameter", f"Query parameter 'offset' must be an integer in [0, {MAX_OFFSET}].")
    limit = query_number("limit", integer=True)
    if limit is not None and not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "invalid_parameter", f"Query parameter 'limit' must be an integer in [1, {MAX_PAGE}].")
    return offset, None if limit is None else int(limit)


def page_headers(offset: int, limit: int | None, total: int) -> dict[str, str]:
    """Return X-Total-Count, and a Link to the next page when a limited page is not the last."""
    headers = {"X-Total-Count": str(total)}
    if limit is not None and offset + limit < total:
        query = urlencode({**request.args.to_dict(), "offset": offset + limit, "limit": limit})
        headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return headers


def job_id_arg(job_id: str) -> str:
    """Refuse ids that no job could have before they reach the engine."""
    if len(job_id) > MAX_ID_LENGTH:
        raise ApiError(404, "job_not_found", f"No job with id {job_id[:MAX_ID_LENGTH]!r}… (ids are UUIDs).")
    return job_id


# ------------------------------------------------------------------------------------------ responses


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Serialise `body` as JSON."""
    response = Response(_dumps(body), status=status, mimetype="application/json")
    if headers:
        response.headers.update(headers)
    return response


def _dumps(value: Any) -> bytes:
    """Encode `value` as compact UTF-8 JSON (orjson: a tenth of the time of `json.dumps` on big listings)."""
    return orjson.dumps(value)


def listing_response(body: Any, jobs: int, levels: int, headers: Mapping[str, str]) -> Response:
    """Answer a listing of `jobs` job views; a long one is streamed (see `json_pieces`).

    Encoding 100 000 jobs (50 MB) took about as long as sending them: streamed, the two overlap. The
    bytes are the ones `json_response` would send; only Content-Length gives way to chunked transfer
    encoding.
    """
    if jobs <= STREAM_BATCH:
        return json_response(body, 200, headers)
    response = Response(json_pieces(body, levels), status=200, mimetype="application/json")
    response.headers.update(headers)
    return response


def json_pieces(value: Any, levels: int = 0) -> Iterator[bytes]:
    """Yield the JSON of `value` in pieces that join to `json_response`'s body.

    The first `levels` levels of dicts are walked key by key; below them a dict or list of more than
    STREAM_BATCH members goes out STREAM_BATCH members at a time, anything else in one piece.
    """
    if levels and isinstance(value, dict):
        yield b"{"
        for i, (key, member) in enumerate(value.items()):
            yield (b"," if i else b"") + _dumps(key) + b":"
            yield from json_pieces(member, levels - 1)
        yield b"}"
    elif isinstance(value, (dict, list)) and len(value) > STREAM_BATCH:
        is_dict = isinstance(value, dict)
        members = list(value.items()) if is_dict else value
        yield b"{" if is_dict else b"["
        for start in range(0, len(members), STREAM_BATCH):
            batch = members[start : start + STREAM_BATCH]
            yield (b"," if start else b"") + _dumps(dict(batch) if is_dict else batch)[1:-1]
        yield b"}" if is_dict else b"]"
    else:
        yield _dumps(value)


def job_headers(job: Mapping[str, Any]) -> dict[str, str]:
    """Return ETag, and Retry-After while the job is unfinished."""
    headers = {"ETag": f'"{job["version"]}"'}
    if not job["done"]:
        eta = job["eta_seconds"]
        headers["Retry-After"] = str(max(1, math.ceil(eta)) if eta is not None else 1)
    return headers


def problem(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    """Return an RFC 9457 problem+json response."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    response = json_response(body, status, headers)
    response.mimetype = "application/problem+json"
    return response


# --------------------------------------------------------------------------------------------- the app


class LongPollGate:
    """Counts held long-polls and refuses to hold more than the cap (the refused ones answer at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0
        self.draining = False

    def enter(self, cap: int) -> bool:
        """Take a place if fewer than `cap` are held and the server is not shutting down."""
        with self._lock:
            if self.draining or self.held >= cap:
                return False
            self.held += 1
            return True

    def leave(self) -> None:
        """Give a place back."""
        with self._lock:
            self.held -= 1


class _AmountFreeKey:
    """A rate-limit item as the storage sees it: the same amount and window, keyed without the amount."""

    def __init__(self, item: RateLimitItem) -> None:
        self.amount = item.amount
        self.get_expiry = item.get_expiry
        self._suffix = f"{item.multiples}/{item.GRANULARITY.name}"
        self._namespace = item.namespace

    def key_for(self, *identifiers: str) -> str:
        """Return the storage key: namespace, identifiers and window, but not the amount."""
        return "/".join([self._namespace, *map(str, identifiers), self._suffix])


class RuntimeLimitWindow(MovingWindowRateLimiter):
    """The moving window, keyed without the limit's amount.

    `limits` puts the amount in the storage key, so a runtime change of RATE_LIMIT would start every
    user's hour afresh; keyed without it, the hits already made count against the new limit at once.
    """

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Consume `cost` from the window if it allows it."""
        return super().hit(_AmountFreeKey(item), *identifiers, cost=cost)  # type: ignore[arg-type]

    def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        """Tell whether `cost` could be consumed."""
        return super().test(_AmountFreeKey(item), *identifiers, cost=cost)  # type: ignore[arg-type]

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """Return the reset time and what remains (never below 0, even after RATE_LIMIT was lowered)."""
        reset, remaining = super().get_window_stats(_AmountFreeKey(item), *identifiers)  # type: ignore[arg-type]
        return WindowStats(reset, max(0, remaining))


# flask-limiter picks its strategy by name from this registry; ours is the moving window above.
STRATEGIES.setdefault("runtime-moving-window", RuntimeLimitWindow)


FAULT_KINDS = ("error_before", "unavailable_before", "error_after", "slow_after")
#: Paths that are not the simulated backend: liveness and documentation never fail on purpose.
FAULT_FREE_PATHS = ("/healthz", "/openapi.yaml", "/docs")


class FaultInjector:
    """Draws injected faults (FAULT_RATE) from a generator of its own, so they never shift the simulation's."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._lock = threading.Lock()
        self.injected: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    def draw(self, rate: float) -> str | None:
        """Return the kind of fault to inject into this request, or None (probability 1 - rate)."""
        if rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= rate:
                return None
            kind = self._rng.choice(FAULT_KINDS)
            self.injected[kind] += 1
            return kind


class Ticker:
    """The server's background thread that drives the simulation clock, so jobs finish when nobody asks."""

    def __init__(self, engine: JobEngine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulation-clock", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        self._engine.wake()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._engine.wait_for_next_event(max_seconds=1.0)
            except Exception:  # pragma: no cover - the clock must keep running whatever happens
                log.exception("simulation clock step failed")
                time.sleep(0.1)


def _settings_from(config: Settings | Mapping[str, Any] | None) -> Settings:
    if config is None:
        settings = config_module.load()
    elif isinstance(config, Settings):
        settings = config
    else:
        settings = config_module.from_mapping(config)
    return settings.with_admin_token()


def create_app(config: Settings | Mapping[str, Any] | None = None, *, clock: Clock | None = None) -> Flask:
    """Build the app: settings (None: environment and .env; a mapping: defaults plus it), engine, limiter, routes.

    With the real clock (`clock=None`) a background thread drives the simulation; with a fake clock
    the caller drives it (every request also catches up on events that fell due).
    """
    settings = _settings_from(config)
    app = Flask(__name__, static_folder=None)  # no static files: without this Flask routes /static/<path>
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    engine = JobEngine(RuntimeConfig(settings), clock=clock)
    gate = LongPollGate()
    app.extensions["engine"] = engine
    app.extensions["long_polls"] = gate
    admin_token = (settings.ADMIN_TOKEN or "").encode()
    started = time.monotonic()

    faults = FaultInjector(None if settings.RANDOM_SEED is None else settings.RANDOM_SEED + 1)
    app.extensions["faults"] = faults

    # Registered before the limiter's own hook, so that a fault "before the work" costs no rate-limit hit.
    @app.before_request
    def inject_fault_before() -> None:
        view = app.view_functions.get(request.endpoint or "")
        if view is None or getattr(view, "admin_only", False) or request.path.startswith(FAULT_FREE_PATHS):
            return
        kind = faults.draw(engine.settings.FAULT_RATE)
        if kind is None:
            return
        log.warning("injected fault %s on %s %s", kind, request.method, request.path)
        if kind == "error_before":
            raise ApiError(500, "injected_fault", "Injected fault (FAULT_RATE): failed before doing anything.",
                           fault=kind)
        if kind == "unavailable_before":
            raise ApiError(503, "injected_fault", "Injected fault (FAULT_RATE): unavailable; nothing was done.",
                           headers={"Retry-After": "1"}, retry_after=1, fault=kind)
        g.fault = kind  # strikes after the work: see inject_fault_after

    limiter = Limiter(
        key_func=user_id,
        app=app,
        storage_uri="memory://",
        strategy="runtime-moving-window",
        headers_enabled=False,  # added below: flask-limiter would overwrite a 202's Retry-After
    )
    app.extensions["rate_limiter"] = limiter

    # ------------------------------------------------------------------ hooks

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
            response.status_code = 204  # Flask's automatic OPTIONS answer: only the Allow header matters
            response.headers.pop("Content-Type", None)
        current = limiter.current_limit
        if current is not None:
            response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
            response.headers["X-RateLimit-Remaining"] = str(current.remaining)
            response.headers["X-RateLimit-Reset"] = str(current.reset_at)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-store")
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info(
            '%s "%s %s" %s %.1fms',
            request.remote_addr,
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            elapsed_ms,
        )
        return response

    # Registered after `finish`, so it runs before it (Flask runs these hooks in reverse order).
    @app.after_request
    def inject_fault_after(response: Response) -> Response:
        kind = g.pop("fault", None)
        if kind == "error_after":
            return problem(500, "injected_fault",
                           "Injected fault (FAULT_RATE): the work was done but this answer was lost.", fault=kind)
        if kind == "slow_after":
            time.sleep(engine.settings.FAULT_DELAY)  # the work is done; the answer comes late
        return response

    def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(
                    401,
                    "missing_token",
                    "This endpoint needs an admin token: Authorization: Bearer <ADMIN_TOKEN>.",
                    headers={"WWW-Authenticate": 'Bearer realm="admin"'},
                )
            if not hmac.compare_digest(token.strip().encode(), admin_token):
                raise ApiError(
                    401,
                    "invalid_token",
                    "The admin token is wrong.",
                    headers={"WWW-Authenticate": 'Bearer realm="admin", error="invalid_token"'},
                )
            return view(*args, **kwargs)

        guarded.admin_only = True  # type: ignore[attr-defined]  # faults are never injected here
        return guarded

    # ------------------------------------------------------------------ errors

    @app.errorhandler(Exception)
    def handle_error(error: Exception) -> Response:
        if isinstance(error, ApiError):
            return problem(error.status, error.code, error.detail, error.headers, **error.extra)
        if isinstance(error, JobError):
            status = JOB_ERROR_STATUS.get(type(error), 400)
            headers = {}
            if "retry_after" in error.extra:
                headers["Retry-After"] = str(error.extra["retry_after"])
            return problem(status, error.code, error.detail, headers, **error.extra)
        if isinstance(error, ConfigError):
            errors = [{"field": key, "message": message} for key, message in error.errors.items()]
            return problem(422, "invalid_config", f"The configuration change was refused: {error}.", errors=errors)
        if isinstance(error, RateLimitExceeded):
            current = limiter.current_limit
            # The window's exact reset: `reset_at` is rounded up a second further, which would say 3601 s.
            reset_at = current.window.reset_time if current is not None else time.time() + 3600
            retry_after = max(1, math.ceil(reset_at - time.time()))
            amount = error.limit.limit.amount
            detail = (
                f"Free users may submit {amount} jobs per hour; try again in {retry_after} s or submit as premium."
                if amount
                else "Free submissions are switched off (RATE_LIMIT is 0); submit as premium."
            )
            return problem(429, "rate_limited", detail, {"Retry-After": str(retry_after)}, retry_after=retry_after)
        if isinstance(error, HTTPException):
            status = error.code or 500
            headers = {}
            if status == 405:
                headers["Allow"] = ", ".join(sorted(error.valid_methods or []))  # type: ignore[attr-defined]
            code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
            details = {
                404: f"No endpoint at {request.path}.",
                405: f"{request.method} is not allowed on {request.path}; allowed: {headers.get('Allow', '')}.",
                413: f"The request body is larger than {MAX_BODY_BYTES} bytes.",
            }
            return problem(status, code, details.get(status, error.description or HTTPStatus(status).phrase), headers)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "internal_error", "The server hit an unexpected error; it has been logged.")

    # ------------------------------------------------------------------ job endpoints

    def free_submission_not_counted() -> bool:
        """Exempt from the hourly limit: premium, invalid or over-capacity (refused anyway) and replayed submissions."""
        try:
            fields = parse_fields(TRANSLATE_FIELDS)
            key = header_token("Idempotency-Key", MAX_IDEMPOTENCY_KEY_LENGTH)
            user = user_id()
        except ApiError:
            return True
        if fields.get("role", "free") == "premium":
            return True
        if engine.total() >= engine.settings.MAX_JOBS:
            return True  # refused with 503 anyway: a refusal must not use up the user's hour
        return key is not None and engine.find_idempotent(user, key) is not None

    @app.post("/translate")
    @limiter.limit(
        lambda: f"{engine.settings.RATE_LIMIT}/hour",
        exempt_when=free_submission_not_counted,
        scope="free-submissions",
    )
    def translate() -> Response:
        fields = parse_fields(TRANSLATE_FIELDS)
        key = header_token("Idempotency-Key", MAX_IDEMPOTENCY_KEY_LENGTH)
        job, replayed = engine.submit(
            fields.get("role", "free"),
            user_id(),
            video_url=fields.get("video_url"),
            target_language=fields.get("target_language"),
            idempotency_key=key,
        )
        headers = {"Location": f"/status/{job['job_id']}", **job_headers(job)}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_response(job, 202, headers)

    def answer_status(find_job_id: Callable[[], str]) -> Response:
        wait = requested_wait()  # the query is checked before the job is looked up
        since = query_number("since", integer=True)
        job_id = find_job_id()
        max_wait = engine.settings.MAX_WAIT
        applied = None
        if wait is not None and wait > 0 and max_wait > 0 and gate.enter(engine.settings.MAX_LONG_POLLS):
            applied = min(wait, max_wait)
            try:
                job = engine.wait_for_change(job_id, None if since is None else int(since), applied)
            finally:
                gate.leave()
        else:
            job = engine.get(job_id)
        headers = job_headers(job)
        if applied is not None:
            headers["Preference-Applied"] = f"wait={applied:g}"
        return json_response(job, 200, headers)

    @app.get("/status/<job_id>")
    def status(job_id: str) -> Response:
        return answer_status(lambda: job_id_arg(job_id))

    @app.get("/status")
    def newest_status() -> Response:
        who = header_token("X-User-Id", MAX_USER_ID_LENGTH)
        return answer_status(lambda: engine.newest(who)["job_id"])

    @app.get("/jobs")
    def list_jobs() -> Response:
        who = request.args.get("user_id")
        if who is not None and not 0 < len(who) <= MAX_USER_ID_LENGTH:
            raise ApiError(400, "invalid_parameter", f"user_id must be 1–{MAX_USER_ID_LENGTH} characters.")
        offset, limit = page_args()
        body = engine.grouped(user_id=who, offset=offset, limit=limit)
        listed = sum(len(jobs) for roles in body.values() for jobs in roles.values())
        # levels 2: {status: {role: {job_id: job}}}
        return listing_response(body, listed, 2, page_headers(offset, limit, engine.total(who)))

    @app.get("/queue")
    def queue() -> Response:
        offset, limit = page_args()
        body = engine.queue(offset=offset, limit=limit)
        listed = len(body["queued"]) + len(body["running"])
        # levels 1: {"queued": [job, …], "running": [job, …], …}
        return listing_response(body, listed, 1, page_headers(offset, limit, body["queued_total"]))

    @app.post("/cancel/<job_id>")
    @admin_only
    def cancel(job_id: str) -> Response:
        fields = parse_fields(CANCEL_FIELDS)
        job, already = engine.cancel(job_id_arg(job_id), fields.get("reason"))
        # The same message either way: cancelling is idempotent; already_cancelled tells the two apart.
        message = f"Job {job['job_id']} cancelled successfully"
        return json_response({"message": message, "already_cancelled": already, "job": job})

    @app.post("/process_jobs")
    @app.post("/process")
    @admin_only
    def process_jobs() -> Response:
        fields = parse_fields(PROCESS_FIELDS)
        started = engine.start_next(fields.get("count", 1))
        return json_response({"started": started, "count": len(started), "queued": engine.counts()["queued"]})

    @app.post("/cleanup")
    @admin_only
    def cleanup() -> Response:
        fields = parse_fields(CLEANUP_FIELDS)
        statuses = fields.get("statuses", [Status.COMPLETED])
        removed = engine.cleanup(statuses, fields.get("older_than", 0.0))
        return json_response({"removed": removed, "statuses": [s.value for s in statuses]})

    @app.get("/config")
    def get_config() -> Response:
        return json_response(engine.settings.public())

    @app.post("/config")
    @admin_only
    def set_config() -> Response:
        changes = json_object()
        if not changes:
            raise ApiError(
                422, "validation_error", "Send at least one setting to change, e.g. {\"WORKERS\": 4}.", errors=[]
            )
        return json_response(engine.configure(changes).public())

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response(
            {"status": "ok", **engine.counts(), "uptime_seconds": round(time.monotonic() - started, 3)}
        )

    # ------------------------------------------------------------------ documentation

    @app.get("/openapi.yaml")
    def openapi_document() -> Response:
        return Response(OPENAPI_PATH.read_text(encoding="utf-8"), mimetype="application/yaml")

    @app.get("/docs")
    def docs() -> Response:
        return Response(DOCS_PAGE, mimetype="text/html")

    @app.get("/docs/<asset>")
    def docs_asset(asset: str) -> Response:
        mimetype = DOCS_ASSETS.get(asset)
        if mimetype is None:
            raise NotFound()
        return Response((swagger_ui_path / asset).read_bytes(), mimetype=mimetype)

    if clock is None:
        ticker = Ticker(engine)
        ticker.start()
        app.extensions["ticker"] = ticker
    return app


# ----------------------------------------------------------------------------------------------- main


def _listeners(server: Any) -> list[Any]:
    """Return waitress's listening servers: itself, or those of a MultiSocketServer (a host with several addresses)."""
    from waitress.server import BaseWSGIServer

    if isinstance(server, BaseWSGIServer):
        return [server]
    return [s for s in server.map.values() if isinstance(s, BaseWSGIServer)]


def _drain(server: Any, app: Flask, drained: threading.Event, grace: float = 10.0) -> None:
    """Stop taking connections, release held long-polls, let requests in flight finish, then stop the loop."""
    listeners = _listeners(server)
    for listener in listeners:
        listener.accepting = False
    app.extensions["long_polls"].draining = True
    app.extensions["engine"].release_waiters()
    dispatcher = server.task_dispatcher
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        busy = dispatcher.queue or dispatcher.active_count > 0
        unsent = any(channel.total_outbufs_len for listener in listeners
                     for channel in list(listener.active_channels.values()))
        if not busy and not unsent:
            break
        time.sleep(0.02)
    drained.set()
    _thread.interrupt_main()  # runs on_signal in the main thread, which now stops the loop


def _quiet_channel_class() -> type:
    """Return a waitress channel that does not ask to be written while its worker holds the output lock.

    Stock waitress reports such a channel writable, fails to take the lock in handle_write, and
    goes round its loop again: with hundreds of held long-polls in the socket map that spin holds
    the GIL and /healthz fell from ~1900 to ~50 req/s (bench/load.py). Relies on waitress 3.0.x
    internals, hence the exact pin in requirements.txt.
    """
    from waitress.channel import HTTPChannel

    class QuietChannel(HTTPChannel):
        def writable(self) -> bool:
            busy_writer = (
                self.requests
                and not (self.will_close or self.close_when_flushed)
                and self.total_outbufs_len <= self.adj.outbuf_high_watermark
            )
            if busy_writer:
                if not self.outbuf_lock.acquire(False):
                    return False  # the worker is writing; it pulls the trigger when done
                self.outbuf_lock.release()
            return bool(super().writable())

    return QuietChannel


def load_state(engine: JobEngine, path: str) -> int:
    """Load the jobs saved in `path` into `engine` (nothing if the file does not exist); return how many."""
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return engine.import_state(json.load(f))


def save_state(engine: JobEngine, path: str) -> int:
    """Write the engine's jobs to `path` atomically (a temporary file, then a rename); return how many."""
    state = engine.export_state()
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(state, f, separators=(",", ":"))
    os.replace(temporary, path)
    return len(state["jobs"])


def main(argv: list[str] | None = None) -> int:
    """Run the server: `python server.py [--host H] [--port P]`."""
    parser = argparse.ArgumentParser(description="Video translation job simulator (HTTP server).")
    parser.add_argument("--host", help="address to listen on (default: HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT, else 4777; 0: any free port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = config_module.load()
        if args.host is not None:
            settings = dataclasses.replace(settings, HOST=config_module.KEYS["HOST"].check(args.host))
        if args.port is not None:
            settings = dataclasses.replace(settings, PORT=config_module.KEYS["PORT"].check(args.port))
    except (ConfigError, ValueError) as e:
        print(f"Invalid configuration: {e}", file=sys.stderr)
        return 2
    settings = settings.with_admin_token()
    app = create_app(settings)
    engine: JobEngine = app.extensions["engine"]
    if settings.STATE_FILE:
        try:
            loaded = load_state(engine, settings.STATE_FILE)
        except (OSError, ValueError, KeyError, TypeError, JobError) as e:
            print(f"Cannot load STATE_FILE {settings.STATE_FILE}: {e}", file=sys.stderr)
            app.extensions["ticker"].stop()
            return 2
        log.info("loaded %d job(s) from %s", loaded, settings.STATE_FILE)

    import waitress  # imported here so that tests of the app do not need it

    server = waitress.create_server(
        app,
        host=settings.HOST,
        port=settings.PORT,
        threads=settings.THREADS,
        connection_limit=settings.THREADS + 512,
        channel_timeout=max(120, int(settings.MAX_WAIT) + 30),
        ident="translation-simulator",
    )
    quiet_channel = _quiet_channel_class()
    for listener in _listeners(server):
        listener.channel_class = quiet_channel
    if settings.admin_token_generated:
        # Printed once, never logged: the operator needs it for admin calls.
        print(f"ADMIN_TOKEN (generated for this run): {settings.ADMIN_TOKEN}", flush=True)
    for listener in _listeners(server):
        host = listener.effective_host
        print(f"Serving on http://{f'[{host}]' if ':' in host else host}:{listener.effective_port}", flush=True)

    stopping, drained = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if drained.is_set():
            raise KeyboardInterrupt  # leaves server.run()
        if not stopping.is_set():
            stopping.set()
            log.info("%s received: finishing requests in flight", signal.Signals(signum).name)
            threading.Thread(target=_drain, args=(server, app, drained), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.task_dispatcher.shutdown(timeout=5)
        app.extensions["ticker"].stop()
        if settings.STATE_FILE:
            log.info("saved %d job(s) to %s", save_state(engine, settings.STATE_FILE), settings.STATE_FILE)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
