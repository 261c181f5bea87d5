"""Admin authentication: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import request

from simulator.http.context import sim
from simulator.http.errors import ApiError


def has_admin_token() -> bool:
    """Tell whether the request carries the admin token (compared in constant time)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip()) and hmac.compare_digest(token.strip().encode(),
                                                                                      sim().admin_token)


def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let the view run only for a request carrying the admin token (401 otherwise)."""

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
        if not hmac.compare_digest(token.strip().encode(), sim().admin_token):
            raise ApiError(
                401,
                "invalid_token",
                "The admin token is wrong.",
                headers={"WWW-Authenticate": 'Bearer realm="admin", error="invalid_token"'},
            )
        return view(*args, **kwargs)

    guarded.admin_only = True  # type: ignore[attr-defined]  # faults are never injected here
    return guarded
