"""Admin authentication: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import request

from simulator.http.context import sim
from simulator.http.errors import ApiError


def bearer_token(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer <token>` header value ('' without one)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def holds_token(authorization: str | None, expected: bytes) -> bool:
    """Tell whether an `Authorization` header value is `Bearer <expected>` (compared in constant time)."""
    token = bearer_token(authorization)
    return bool(token) and hmac.compare_digest(token.encode(), expected)


def _bearer_token() -> str:
    return bearer_token(request.headers.get("Authorization"))


def require_bearer(expected: bytes, realm: str, missing: str, wrong: str) -> None:
    """Raise 401 unless the request carries `Authorization: Bearer <expected>` (compared in constant time)."""
    token = _bearer_token()
    if not token:
        raise ApiError(401, "missing_token", missing, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})
    if not hmac.compare_digest(token.encode(), expected):
        raise ApiError(401, "invalid_token", wrong,
                       headers={"WWW-Authenticate": f'Bearer realm="{realm}", error="invalid_token"'})


def has_admin_token() -> bool:
    """Tell whether the request carries the admin token (compared in constant time)."""
    return holds_token(request.headers.get("Authorization"), sim().admin_token)


def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let the view run only for a request carrying the admin token (401 otherwise)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        require_bearer(sim().admin_token, "admin",
                       "This endpoint needs an admin token: Authorization: Bearer <ADMIN_TOKEN>.",
                       "The admin token is wrong.")
        return view(*args, **kwargs)

    guarded.admin_only = True  # type: ignore[attr-defined]  # faults are never injected here
    return guarded
