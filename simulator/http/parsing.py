"""Request parsing: JSON bodies checked field by field, headers, query parameters, ids. Errors are 400/422."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from flask import g, request

from simulator.domain import Scenario, ScenarioError, Status
from simulator.http.errors import ApiError

MAX_ID_LENGTH = 64
MAX_USER_ID_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_PAGE = 10_000
MAX_OFFSET = 1_000_000_000

Validator = Callable[[Any], Any]


def choice(*allowed: str) -> Validator:
    """Accept one of `allowed`."""

    def check(value: Any) -> Any:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return value

    return check


def text(max_length: int) -> Validator:
    """Accept a non-blank string of at most `max_length` characters."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not value.strip() or len(value) > max_length:
            raise ValueError(f"must be a non-empty string of at most {max_length} characters, got {short(value)}")
        return value

    return check


def integer(low: int, high: int) -> Validator:
    """Accept an integer in [low, high] (not a boolean)."""

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer in [{low}, {high}], got {short(value)}")
        return value

    return check


def seconds(value: Any) -> Any:
    """Accept a finite number of seconds ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"must be a number of seconds ≥ 0, got {short(value)}")
    return float(value)


def finished_statuses(value: Any) -> Any:
    """Accept a non-empty list of terminal statuses."""
    finished = [s.value for s in Status if s.terminal]
    if not isinstance(value, list) or not value or any(v not in finished for v in value):
        raise ValueError(f"must be a non-empty list of finished statuses ({', '.join(finished)}), got {short(value)}")
    return [Status(v) for v in value]


def short(value: Any) -> str:
    """Show a value in an error message, cut to 60 characters."""
    shown = json.dumps(value) if not isinstance(value, str) else repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_type(value: Any) -> str:
    """Name a decoded JSON value's type as JSON does."""
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "a number"), (float, "a number"),
                       (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null"


def shown(text: str) -> str:
    """Return `text` as it can be shown in an answer: lone surrogates (not encodable as UTF-8) as `\\udXXX`."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unencodable_paths(value: Any) -> list[str]:
    """Return where `value` (decoded JSON) holds text that cannot be encoded as UTF-8: lone surrogates like \\ud800.

    JSON may escape them (`"\\ud800"`) and Python decodes them, but no answer, log or database can carry
    them: a field name or value that holds one is refused before anything is stored. Each path names the
    member (`video_url`, `statuses[1]`, or the name itself when the name is the bad text).
    """
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                found.append(path or "(body)")
        elif isinstance(item, dict):
            for key, member in item.items():
                name = shown(key)
                if not _encodable(key):
                    found.append(f"{path}.{name}" if path else name)
                stack.append((f"{path}.{name}" if path else name, member))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", member) for i, member in enumerate(item))
    return sorted(found)


def json_object() -> dict[str, Any]:
    """Return the request body as a JSON object ({} when empty), or raise a 400 (or 422) ApiError."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "malformed_json", f"The request body is not valid JSON: {e}.") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", f"The request body must be a JSON object, got {json_type(body)}.")
    bad = unencodable_paths(body)
    if bad:
        message = "holds a lone surrogate (such as \\ud800), which is not Unicode text and cannot be stored"
        errors = [{"field": path, "message": message} for path in bad]
        raise ApiError(422, "validation_error", f"The request body is invalid: {', '.join(bad)} {message}.",
                       errors=errors)
    return body


def parse_fields(fields: Mapping[str, Validator]) -> dict[str, Any]:
    """Parse the body as a JSON object whose members are all in `fields`; raise 422 listing every bad one."""
    body = json_object()
    errors = []
    clean = {}
    for name, value in body.items():
        check = fields.get(name)
        if check is None:
            errors.append({"field": name, "message": f"unknown field; allowed: {', '.join(fields) or 'none'}"})
            continue
        try:
            clean[name] = check(value)
        except ValueError as e:
            errors.append({"field": name, "message": str(e)})
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ApiError(422, "validation_error", f"The request body is invalid: {detail}.", errors=errors)
    return clean


def header_token(name: str, max_length: int, *, single: bool = False) -> str | None:
    """Return a header's value, or raise 400 when it is empty, too long or not printable ASCII (see `check_token`)."""
    value = request.headers.get(name)
    return None if value is None else check_token(name, value, max_length, single=single)


def check_token(name: str, value: str, max_length: int, *, single: bool = False) -> str:
    """Return a header's value, or raise 400 when it is empty, too long or not printable ASCII.

    `single`: the header names one thing and must be sent once. Every WSGI server joins a repeated
    header's values with commas before the app sees them, so a comma in it means it was repeated (or
    holds a comma, which is refused too): either way a 400, never a merged value such as "alice, bob".
    """
    if not value or len(value) > max_length or not value.isprintable() or not value.isascii():
        raise ApiError(400, "invalid_header", f"{name} must be 1–{max_length} printable ASCII characters.")
    if single and "," in value:
        raise ApiError(400, "invalid_header", f"{name} must be sent once, without commas (a repeated header "
                       "arrives joined by commas).")
    return value


def user_id() -> str:
    """Return who is asking: the API key's user, else X-User-Id, else the client address (the limiter's key too)."""
    caller = g.get("caller")
    if caller is not None and caller.principal is not None:
        return caller.principal.user_id
    return header_token("X-User-Id", MAX_USER_ID_LENGTH, single=True) or request.remote_addr or "anonymous"


def idempotency_key() -> str | None:
    """Return the Idempotency-Key header, if sent (400 when malformed)."""
    return header_token("Idempotency-Key", MAX_IDEMPOTENCY_KEY_LENGTH, single=True)


def query_number(name: str, *, integer: bool = False) -> float | None:
    """Return a query parameter as a number ≥ 0, or raise 400."""
    return parse_number(name, request.args.get(name), integer=integer)


def parse_number(name: str, raw: str | None, *, integer: bool = False) -> float | None:
    """Return query parameter `name`'s text `raw` as a number ≥ 0 (None when absent), or raise 400."""
    if raw is None:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not 0 <= value < math.inf:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, "invalid_parameter", f"Query parameter {name!r} must be {kind} ≥ 0, got {raw!r}.")
    return value


def requested_wait() -> float | None:
    """Return the long-poll wait asked for by `?wait=N` or `Prefer: wait=N` (the query wins)."""
    return parse_wait(request.args.get("wait"), request.headers.get("Prefer", ""))


def parse_wait(query_wait: str | None, prefer: str) -> float | None:
    """Return the wait of `?wait=` (its text) or else of a `Prefer` header's `wait=N`; raise 400 when malformed."""
    wait = parse_number("wait", query_wait)
    if wait is not None:
        return wait
    for preference in prefer.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                number = float(value.strip().strip('"'))
            except ValueError:
                raise ApiError(400, "invalid_header", f"Prefer: wait must be a number ≥ 0, got {value!r}.") from None
            if not 0 <= number < math.inf:
                raise ApiError(400, "invalid_header", f"Prefer: wait must be a number ≥ 0, got {value!r}.")
            return number
    return None


def page_args() -> tuple[int, int | None]:
    """Return (offset, limit) from `?offset=&limit=`; no limit means everything from the offset on."""
    offset = int(query_number("offset", integer=True) or 0)
    if offset > MAX_OFFSET:
        raise ApiError(400, "invalid_parameter", f"Query parameter 'offset' must be an integer in [0, {MAX_OFFSET}].")
    limit = query_number("limit", integer=True)
    if limit is not None and not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "invalid_parameter", f"Query parameter 'limit' must be an integer in [1, {MAX_PAGE}].")
    return offset, None if limit is None else int(limit)


def job_id_arg(job_id: str) -> str:
    """Refuse ids that no job could have before they reach the engine."""
    if len(job_id) > MAX_ID_LENGTH:
        raise ApiError(404, "job_not_found", f"No job with id {job_id[:MAX_ID_LENGTH]!r}… (ids are UUIDs).")
    return job_id


def simulate_header() -> Scenario | None:
    """Return the script of the X-Simulate header (a `simulate` object as JSON), if sent; 400 when it is bad."""
    raw = request.headers.get("X-Simulate")
    if raw is None:
        return None
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_header", "X-Simulate must be a JSON object, the same as the body's simulate "
                       'member, e.g. {"outcomes": ["fail", "succeed"]}.') from None
    try:
        return Scenario.parse(value)
    except ScenarioError as e:
        raise ApiError(400, "invalid_header", f"X-Simulate is invalid: {e}.") from None
