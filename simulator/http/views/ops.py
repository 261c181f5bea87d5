"""Operations: GET /config and GET /healthz."""

from __future__ import annotations

import time

from flask import Blueprint, Response

from simulator.http.context import sim
from simulator.http.encoding import json_response

bp = Blueprint("ops", __name__)


@bp.get("/config")
def get_config() -> Response:
    """Answer every setting but secrets."""
    return json_response(sim().engine.settings.public())


@bp.get("/healthz")
def healthz() -> Response:
    """Answer liveness, with how many jobs are stored, queued and running."""
    simulator = sim()
    uptime = round(time.monotonic() - simulator.started, 3)
    return json_response({"status": "ok", **simulator.engine.counts(), "uptime_seconds": uptime})
