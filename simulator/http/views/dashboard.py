"""GET /dashboard: one page that shows the simulation live (from GET /events), with its script and stylesheet.

The files live in simulator/http/dashboard/ and are served from here only: no CDN, no framework, about
30 KB in all. A Content-Security-Policy lets the page load nothing but this server's own files and
talk to nothing but this server.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response
from werkzeug.exceptions import NotFound

from simulator.settings import RUNTIME_KEYS

bp = Blueprint("dashboard", __name__)

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
#: The files the page loads, each with its media type spelled out (every answer says nosniff).
DASHBOARD_ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@bp.get("/dashboard")
def dashboard() -> Response:
    """Answer the dashboard page."""
    page = (DASHBOARD_DIR / "index.html").read_text(encoding="utf-8")
    # The page offers inputs for the settings POST /config may change, and shows the others as they are.
    page = page.replace("{{RUNTIME_KEYS}}", ",".join(RUNTIME_KEYS))
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/dashboard/<asset>")
def dashboard_asset(asset: str) -> Response:
    """Answer one of the files the dashboard page loads."""
    mimetype = DASHBOARD_ASSETS.get(asset)
    if mimetype is None:
        raise NotFound()
    return Response((DASHBOARD_DIR / asset).read_bytes(), mimetype=mimetype)
