"""Path patterns, as the request journal's `path` filter and RESPONSE_DELAY's routes take them.

A pattern matches a request whose path or route template equals it (`/status/3f2c…`, `/status/{job_id}`);
a pattern ending in `*` matches every path or template that starts with what comes before it
(`/status/*`, `/admin/*`). Plain Python: the settings check patterns without loading the HTTP layer.
"""

from __future__ import annotations

from functools import lru_cache

MAX_PATTERN = 2048


def check_pattern(pattern: str) -> str:
    """Return `pattern` if it is a path pattern (`/…`, optionally ending in `*`); raise ValueError saying why not."""
    if not pattern.startswith("/") or len(pattern) > MAX_PATTERN or "*" in pattern[:-1] or any(
        c.isspace() for c in pattern
    ):
        raise ValueError(f"a path pattern starts with / and may end in *, e.g. /status/*; got {pattern!r}")
    return pattern


def path_matches(pattern: str, path: str, template: str | None = None) -> bool:
    """Tell whether `pattern` matches a request's `path` or its route `template`."""
    candidates = (path,) if template is None else (path, template)
    if pattern.endswith("*"):
        return any(c.startswith(pattern[:-1]) for c in candidates)
    return pattern in candidates


@lru_cache(maxsize=256)
def openapi_template(rule: str) -> str:
    """Return a Flask route rule as OpenAPI writes it: `/status/<job_id>` → `/status/{job_id}`."""
    parts = []
    for segment in rule.split("/"):
        if segment.startswith("<") and segment.endswith(">"):
            segment = "{" + segment[1:-1].split(":")[-1] + "}"
        parts.append(segment)
    return "/".join(parts)
