"""GET /metrics: the Prometheus exposition (prometheus_client), open unless METRICS_TOKEN is set."""

from __future__ import annotations

from flask import Blueprint, Response, request

from simulator.http.auth import require_bearer
from simulator.http.context import sim

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Answer every metric in the Prometheus text format (OpenMetrics when the Accept header asks for it)."""
    simulator = sim()
    token = simulator.metrics_token
    if token is not None:
        require_bearer(token, "metrics", "This server's metrics need its token: Authorization: Bearer "
                       "<METRICS_TOKEN>.", "The metrics token is wrong.")
    body, content_type = simulator.metrics.exposition(request.headers.get("Accept"))
    return Response(body, content_type=content_type)
