"""The access log: one INFO line per answer on the "server" logger, secrets in the query string redacted."""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

log = logging.getLogger("server")

#: Query parameters whose values never reach the log (the admin token, should a client send it there; the signature
#: of a result link, which opens the file to whoever holds it).
SECRET_PARAMETERS = frozenset({"token", "access_token", "api_key", "signature"})


def redacted_query(query: bytes | str) -> str:
    """Return a raw query string with the values of SECRET_PARAMETERS (any case, any encoding) as REDACTED."""
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    lowered = text.lower()
    if ("token" not in lowered and "api_key" not in lowered and "signature" not in lowered and "%" not in text
            and "+" not in text):
        return text  # the usual case: nothing to redact, nothing to decode
    parts = []
    for part in text.split("&"):
        name = part.partition("=")[0]
        if unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            part = f"{name}=REDACTED"
        parts.append(part)
    return "&".join(parts)


def log_access(client: str | None, method: str, path: str, query: bytes | str, status: int, seconds: float) -> None:
    """Write the access line of one answer: client, method, path?query (redacted), status, time taken."""
    target = f"{path}?{redacted_query(query)}" if query else path
    log.info('%s "%s %s" %s %.1fms', client, method, target, status, seconds * 1000)
