"""Webhooks over HTTP: HeyGen's endpoint routes (v1, per user, X-Api-Key) and the delivery log (admin).

- `POST /v1/webhook/endpoint.add` `{url, events?}` — the endpoint with its `secret` (shown only here).
- `GET /v1/webhook/endpoint.list` — the caller's endpoints (without secrets).
- `DELETE /v1/webhook/endpoint.delete?endpoint_id=` — remove one.
- `GET /v1/webhook/webhook.list` — the event types.
- `GET /webhooks/deliveries` (admin) — the delivery log, `?job_id=&endpoint_id=&outcome=&offset=&limit=`.
- `POST /webhooks/deliveries/<id>/retry` (admin) — send a delivery again now.
"""

from __future__ import annotations

from typing import NoReturn

from flask import Blueprint, Response, request

from simulator.http.auth import admin_only
from simulator.http.context import sim
from simulator.http.encoding import json_response, page_headers
from simulator.http.envelopes import heygen_ok
from simulator.http.errors import ApiError
from simulator.http.identity import caller
from simulator.http.parsing import json_object, page_args
from simulator.webhooks.service import WebhookError, delivery_view, endpoint_view, event_types

bp = Blueprint("webhooks", __name__)


def _fail(error: WebhookError) -> NoReturn:
    extra = {"param": error.param} if error.param else {}
    raise ApiError(error.status, error.code, error.message, **extra) from None


def _user() -> str:
    principal = caller().principal
    if principal is None:  # identity refuses these routes without a key before they run; never reached
        raise ApiError(401, "missing_api_key", "This endpoint needs an API key: X-Api-Key: <key>.")
    return principal.user_id


@bp.post("/v1/webhook/endpoint.add")
def add_endpoint() -> Response:
    """Register an endpoint for the key's user; answer it with its signing secret (shown this once)."""
    body = json_object()
    unknown = set(body) - {"url", "events"}
    if unknown:
        raise ApiError(400, "invalid_parameter", f"Unknown field {sorted(unknown)[0]!r}.", param=sorted(unknown)[0])
    try:
        endpoint = sim().webhooks.add_endpoint(_user(), body.get("url"), body.get("events"))
    except WebhookError as e:
        _fail(e)
    return heygen_ok(endpoint_view(endpoint, with_secret=True))


@bp.get("/v1/webhook/endpoint.list")
def list_endpoints() -> Response:
    """List the key's user's endpoints, oldest first (secrets are never shown again)."""
    return heygen_ok([endpoint_view(e) for e in sim().webhooks.endpoints(_user())])


@bp.delete("/v1/webhook/endpoint.delete")
def delete_endpoint() -> Response:
    """Remove one of the key's user's endpoints; events are no longer sent to it."""
    endpoint_id = request.args.get("endpoint_id")
    if not endpoint_id:
        raise ApiError(400, "invalid_parameter", "'endpoint_id' is required (query parameter).", param="endpoint_id")
    try:
        sim().webhooks.delete_endpoint(_user(), endpoint_id)
    except WebhookError as e:
        _fail(e)
    return heygen_ok(None)


@bp.get("/v1/webhook/webhook.list")
def list_event_types() -> Response:
    """List the event types an endpoint can subscribe to."""
    return heygen_ok(list(event_types()))


@bp.get("/webhooks/deliveries")
@admin_only
def list_deliveries() -> Response:
    """List deliveries, oldest first, filtered by job, endpoint and outcome (pending, succeeded, failed)."""
    offset, limit = page_args()
    filters = {"job_id": request.args.get("job_id"), "endpoint_id": request.args.get("endpoint_id"),
               "status": request.args.get("outcome")}
    try:
        page, total = sim().webhooks.deliveries(**filters, offset=offset, limit=limit)
    except WebhookError as e:
        raise ApiError(400, "invalid_parameter", e.message) from None
    body = {"deliveries": [delivery_view(d) for d in page], "total": total}
    return json_response(body, 200, page_headers(offset, limit, total))


@bp.post("/webhooks/deliveries/<delivery_id>/retry")
@admin_only
def retry_delivery(delivery_id: str) -> Response:
    """Send a delivery again now, whatever its outcome (same webhook-id)."""
    try:
        delivery = sim().webhooks.retry(delivery_id)
    except WebhookError as e:
        _fail(e)
    return json_response({"delivery": delivery_view(delivery)})
