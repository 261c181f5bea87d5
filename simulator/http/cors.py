"""CORS for browser front-ends, off by default: CORS_ORIGINS lists the origins allowed (or `*` for any).

A small hook rather than a dependency: a simple request from an allowed origin gets
`Access-Control-Allow-Origin` and the headers a front-end needs to read (Location, Retry-After, ETag, the
rate-limit headers…); a preflight (`OPTIONS` with `Access-Control-Request-Method`), which Flask answers for
every route, also gets the methods the route allows and the request headers the API reads. No
credentials (cookies) are involved: the admin token travels in the Authorization header.
"""

from __future__ import annotations

from functools import lru_cache

from flask import Flask, Response, current_app, request

from simulator.settings import parse_origins

#: Answer headers a browser script may read.
EXPOSED = ("Location, Retry-After, ETag, Preference-Applied, Idempotent-Replayed, X-RateLimit-Limit, "
           "X-RateLimit-Remaining, X-RateLimit-Reset, X-Total-Count, Link, "
           "Content-Disposition, Content-Range, Accept-Ranges")  # the last three: result downloads
#: Request headers a browser script may send (Content-Disposition names a raw upload; Range resumes a download;
#: X-Api-Key authenticates, AUTH_MODE=keys).
ALLOWED_HEADERS = ("Authorization, Content-Type, Idempotency-Key, Prefer, X-Simulate, X-User-Id, X-Api-Key, "
                   "Content-Disposition, Range, If-Range")
PREFLIGHT_MAX_AGE = "600"


@lru_cache(maxsize=16)
def _origins(setting: str) -> frozenset[str]:
    return parse_origins(setting)  # checked when it was set: it parses


def cors_headers(setting: str, origin: str | None, *, preflight: bool = False, allow: str = "") -> dict[str, str]:
    """Return the CORS headers an answer to `origin` gets under the CORS_ORIGINS `setting` (Vary included).

    Framework-free, so that the async routes of `python server.py` answer exactly as the Flask hook does.
    """
    if not setting:
        return {}
    origins = _origins(setting)
    headers = {} if "*" in origins else {"Vary": "Origin"}  # the answer differs by origin: caches keep them apart
    if origin is None or ("*" not in origins and origin.rstrip("/").lower() not in origins):
        return headers
    headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
    if preflight:
        headers["Access-Control-Allow-Methods"] = allow
        headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    else:
        headers["Access-Control-Expose-Headers"] = EXPOSED
    return headers


def add_cors_headers(response: Response) -> Response:
    """Let an allowed origin read the answer; answer a preflight with what may be sent (after_request hook)."""
    setting = current_app.extensions["simulator"].engine.settings.CORS_ORIGINS
    if not setting:
        return response
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    headers = cors_headers(setting, request.headers.get("Origin"), preflight=preflight,
                           allow=response.headers.get("Allow", ""))
    if headers.pop("Vary", None):
        response.vary.add("Origin")
    response.headers.update(headers)
    return response


def init_app(app: Flask) -> None:
    """Register the CORS hook (it reads CORS_ORIGINS at each request, so it can change at runtime)."""
    app.after_request(add_cors_headers)
