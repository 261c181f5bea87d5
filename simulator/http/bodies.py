"""Per-route body limits: a view may declare its own limit instead of the app-wide MAX_CONTENT_LENGTH (64 KiB).

    @bp.post("/uploads")
    @body_limit(lambda: sim().engine.settings.MAX_UPLOAD_BYTES)
    def create_upload(): ...

A before_request hook (`apply_body_limit`, the app's first) sets `request.max_content_length` for the request
from the view's declaration. Werkzeug then enforces it under any WSGI server: a Content-Length over it is
refused with 413 when the body is first touched, before any of it is read; a chunked body (servers that set
`wsgi.input_terminated`) is cut off with 413 as soon as it passes it. A server that receives the whole body
before calling the app (waitress does, into a temporary file) has read it by then: the limit still refuses it,
but cannot spare the transfer — only a server that streams the body (gunicorn, Werkzeug's, granian) can.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException

F = TypeVar("F", bound=Callable[..., object])


def body_limit(limit: Callable[[], int | None]) -> Callable[[F], F]:
    """Declare a view's body limit in bytes, read per request (None: no limit); see the module's description."""

    def declare(view: F) -> F:
        view.body_limit = limit  # type: ignore[attr-defined]
        return view

    return declare


def apply_body_limit() -> None:
    """Set this request's body limit from its view's declaration, if it has one (before_request hook)."""
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "body_limit", None)
    if limit is not None:
        request.max_content_length = limit()


def init_app(app: Flask) -> None:
    """Register the hook; call before any other hook that could touch the body."""
    app.before_request(apply_body_limit)


def body_limits(app: Flask) -> Callable[[str, str], int]:
    """Return `limit(method, path)`: the body limit of the view that answers it (MAX_CONTENT_LENGTH by default).

    For a serving layer that reads bodies itself (`python server.py`'s bridge): it refuses a longer
    Content-Length before reading and cuts a chunked body off there, with the number the view declared.
    """
    default = int(app.config.get("MAX_CONTENT_LENGTH") or 0)
    views = app.view_functions
    adapter = app.url_map.bind("localhost")

    def limit(method: str, path: str) -> int:
        try:
            endpoint, _ = adapter.match(path, method)
        except HTTPException:
            return default  # 404, 405 or a redirect: the app answers it without reading the body
        declared = getattr(views.get(str(endpoint)), "body_limit", None)
        if declared is None:
            return default
        with app.app_context():
            value = declared()
        return default if value is None else int(value)

    return limit
