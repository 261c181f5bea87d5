"""API keys (admin): POST /api-keys issues one (its secret shown once), GET lists them, DELETE revokes one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from simulator.auth.keys import MAX_USER_ID_LENGTH, check_user_id
from simulator.domain.job import iso
from simulator.http.auth import admin_only
from simulator.http.context import sim
from simulator.http.encoding import json_response
from simulator.http.errors import ApiError
from simulator.http.parsing import choice, parse_fields
from simulator.store.records import ApiKey

bp = Blueprint("apikeys", __name__)


def _user_id(value: Any) -> str:
    try:
        return check_user_id(value)
    except ValueError as e:
        raise ValueError(f"{e}, got {value!r}"[:200]) from None


KEY_FIELDS = {"user_id": _user_id, "role": choice("free", "premium")}


def key_view(key: ApiKey) -> dict[str, Any]:
    """Return a key as the API shows it (never its secret, nor its hash)."""
    return {"key_id": key.key_id, "user_id": key.user_id, "role": key.role, "created_at": iso(key.created_at),
            "source": key.source}


@bp.post("/api-keys")
@admin_only
def issue() -> Response:
    """Issue a key for a user and role; answer 201 with the key itself, shown this once."""
    fields = parse_fields(KEY_FIELDS)
    if "user_id" not in fields:
        errors = [{"field": "user_id", "message": f"required: 1–{MAX_USER_ID_LENGTH} printable ASCII characters"}]
        raise ApiError(422, "validation_error", "The request body is invalid: user_id is required.", errors=errors)
    record, api_key = sim().keys.issue(fields["user_id"], fields.get("role", "free"))
    body = {"key_id": record.key_id, "api_key": api_key, "user_id": record.user_id, "role": record.role,
            "created_at": iso(record.created_at)}
    return json_response(body, 201, {"Location": f"/api-keys/{record.key_id}"})


@bp.get("/api-keys")
@admin_only
def list_keys() -> Response:
    """List every key, oldest first, without secrets."""
    keys = [key_view(key) for key in sim().keys.keys()]
    return json_response({"keys": keys, "count": len(keys)})


@bp.delete("/api-keys/<key_id>")
@admin_only
def revoke(key_id: str) -> Response:
    """Revoke a key: from now on it is refused (401)."""
    record = sim().keys.revoke(key_id[:100])
    if record is None:
        raise ApiError(404, "key_not_found", f"No API key with id {key_id[:100]!r}.")
    return json_response({"revoked": key_view(record)})
