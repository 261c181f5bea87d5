"""X-Api-Key on every route: who is calling (a `Caller` in `g.caller`), refused early when the key is wrong.

Runs before any view, so that the hourly limit (checked in the submission views) is keyed on the
authenticated user. A request that presents a key always has it checked; one without a key is refused when
the route needs one (HeyGen's routes always; the other non-admin routes in AUTH_MODE=keys, where the admin
token stands in for a key on reading routes). Liveness, the documentation, the dashboard's page, the metrics
(METRICS_TOKEN guards them) and a result download by signed
link (`GET /results/<job_id>?expires=&signature=`, checked by the view) need no key. A client that presented
`AUTH_FAILURE_LIMIT` wrong keys in the last minute gets 429 until the oldest of them is a minute old.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request

from simulator.auth.access import Caller
from simulator.http import envelopes
from simulator.http.auth import has_admin_token
from simulator.http.context import sim
from simulator.http.errors import ApiError
from simulator.links import LINK_PARAMETERS

#: Routes that never need a key: liveness, the API description, the dashboard's static page, and the metrics
#: (which METRICS_TOKEN guards instead).
KEY_EXEMPT = {"ops.healthz"}
#: Routes that need no key when they carry a signed link's query (`simulator.links`): the link is the credential.
SIGNED_LINK_ROUTES = {"media.get_result"}
KEY_EXEMPT_BLUEPRINTS = {"docs", "dashboard", "metrics"}
#: Routes that in keys mode need a key even from the admin: a submission needs a user to run as.
SUBMISSIONS = {"submissions.translate"}


def authenticate() -> None:
    """Set `g.caller`, or raise 401 (no key or a wrong one) or 429 (too many wrong keys from this client).

    An OPTIONS request only describes the route (a browser's CORS preflight never carries the key), so it is
    anonymous, whatever the mode.
    """
    if request.method == "OPTIONS":
        g.caller = Caller(None)
        return
    simulator = sim()
    settings = simulator.engine.settings
    heygen = envelopes.family() is not None
    keys_mode = settings.AUTH_MODE == "keys"
    presented = request.headers.get("X-Api-Key")
    if presented is not None:
        client = request.remote_addr or "unknown"
        wait = simulator.auth_failures.retry_after(client, settings.AUTH_FAILURE_LIMIT)
        if wait is not None:
            raise ApiError(429, "too_many_auth_failures",
                           f"Too many requests with a wrong X-Api-Key from this client; try again in {wait} s.",
                           headers={"Retry-After": str(wait)}, retry_after=wait)
        principal = simulator.keys.verify(presented)
        if principal is None:
            simulator.auth_failures.failed(client)
            raise _unauthorized("invalid_api_key", "The X-Api-Key is not a valid API key (revoked, or mistyped).")
        g.caller = Caller(principal, has_admin_token(), keys_mode, heygen)
        return
    admin = has_admin_token()
    g.caller = Caller(None, admin, keys_mode, heygen)
    if _needs_key(heygen, keys_mode, admin):
        raise _unauthorized("missing_api_key", "This endpoint needs an API key: X-Api-Key: <key> "
                            "(an admin makes one with POST /api-keys).")


def _needs_key(heygen: bool, keys_mode: bool, admin: bool) -> bool:
    endpoint = request.endpoint
    view = current_app.view_functions.get(endpoint or "")
    if view is None or endpoint in KEY_EXEMPT or request.blueprint in KEY_EXEMPT_BLUEPRINTS:
        return False  # no such route (it answers 404/405), or one that needs no key
    if endpoint in SIGNED_LINK_ROUTES and signed_link_request():
        return False  # the view checks the link instead
    if heygen:
        return True
    if not keys_mode or getattr(view, "admin_only", False):
        return False
    return endpoint in SUBMISSIONS or not admin


def signed_link_request() -> bool:
    """Tell whether the request carries a signed link's query (expires, signature), genuine or not."""
    return any(name in request.args for name in LINK_PARAMETERS)


def _unauthorized(code: str, detail: str) -> ApiError:
    return ApiError(401, code, detail, headers={"WWW-Authenticate": 'ApiKey header="X-Api-Key"'})


def caller() -> Caller:
    """Return this request's caller (set by `authenticate`; an anonymous one outside a request's hooks)."""
    return g.get("caller") or Caller(None)


def init_app(app: Flask) -> None:
    """Authenticate every request; call before the limiter exists, so that its key function sees the caller."""
    app.before_request(authenticate)
