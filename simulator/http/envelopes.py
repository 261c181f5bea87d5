"""HeyGen's response envelopes, for the routes that speak HeyGen's API (never problem+json there).

Which envelope a request gets follows its path, so that even an unknown path or a wrong method under a
HeyGen prefix answers in HeyGen's shape:

- `/v3/video-translations…`: `{"data": …}`; errors `{"error": {"code", "message", "param", "doc_url"}}`
  (developers.heygen.com).
- `/v2/video_translate…`: `{"error": null, "data": …}`; errors `{"error": {…}, "data": null}` (docs.heygen.com).
- `/v1/webhook/…`: `{"code": 100, "data": …, "msg": null, "message": null}`; errors as v2's.

Error codes are HeyGen's (developers.heygen.com/docs/error-codes): `invalid_parameter` (400; HeyGen has no
422), `unauthorized` (401), `forbidden` (403), `not_found` (404), `request_in_progress` (409),
`rate_limit_exceeded` (429, with Retry-After), `internal_error` (500), `service_unavailable` (503).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, request

from simulator.http.encoding import json_response

HEYGEN_PREFIXES = ("/v1/webhook/", "/v2/video_translate", "/v3/video-translations")
DOC_URL = "https://developers.heygen.com/docs/error-codes#{}"

#: Native codes whose HeyGen name is not simply the one of their status.
_CODES = {
    "request_in_progress": "request_in_progress",
    "method_not_allowed": "method_not_allowed",
    "request_entity_too_large": "payload_too_large",
}
_BY_STATUS = {
    400: "invalid_parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


def family() -> str | None:
    """Return "v1", "v2" or "v3" when the request is on a HeyGen route, else None."""
    return family_of(request.path)


def family_of(path: str) -> str | None:
    """Return "v1", "v2" or "v3" when `path` is under a HeyGen prefix, else None (no Flask needed)."""
    return path[1:3] if path.startswith(HEYGEN_PREFIXES) else None


def heygen_ok(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Answer `data` in the envelope of the request's HeyGen version."""
    version = family()
    if version == "v1":
        body: dict[str, Any] = {"code": 100, "data": data, "msg": None, "message": None}
    elif version == "v2":
        body = {"error": None, "data": data}
    else:
        body = {"data": data}
    return json_response(body, status, headers)


def heygen_error(
    status: int, code: str, message: str, headers: Mapping[str, str], extra: Mapping[str, Any]
) -> Response:
    """Answer an error in HeyGen's envelope: its code for ours, 400 for a 422, the field at fault as `param`."""
    status, body = error_document(family(), status, code, message, extra)
    return json_response(body, status, headers)


def error_document(
    version: str | None, status: int, code: str, message: str, extra: Mapping[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Return (status, body) of an error in the envelope of HeyGen's `version` (no Flask needed)."""
    if status == 422:
        status = 400
    fallback = "internal_error" if status >= 500 else "invalid_parameter"
    heygen_code = _CODES.get(code) or _BY_STATUS.get(status) or fallback
    param = extra.get("param")
    if param is None and extra.get("errors"):
        param = extra["errors"][0].get("field")
    doc_url = DOC_URL.format(heygen_code.replace("_", "-"))
    error = {"code": heygen_code, "message": message, "param": param, "doc_url": doc_url}
    body: dict[str, Any] = {"error": error}
    if version != "v3":
        body["data"] = None
    return status, body
