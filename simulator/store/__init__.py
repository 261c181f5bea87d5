"""Stores: where jobs live. `open_store(url)` picks one by the STORE setting.

- `memory` — dicts and lanes in this process (the default; lost when it exits).
- `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (SQLAlchemy's convention: the path
  follows the third slash), optionally `?synchronous=full` — durable, one process per file.
- `redis://host:port/db` or `rediss://…` (TLS), optionally `?prefix=name` — shared by several processes.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from simulator.store.base import Store, StoreError
from simulator.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store", "StoreError", "open_store"]


def open_store(url: str) -> Store:
    """Open the store named by `url`, or raise StoreError saying what is wrong with it."""
    if url == "memory":
        return MemoryStore()
    if url.startswith("sqlite:///"):
        from simulator.store.sqlite import SqliteStore

        parts = urlsplit(url)
        path = url[len("sqlite:///") :].split("?", 1)[0]
        if not path:
            raise StoreError(f"STORE {url!r} names no file: use sqlite:///path/to/jobs.db")
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise StoreError(f"STORE {url!r}: unknown option {', '.join(sorted(unknown))}; allowed: synchronous")
        return SqliteStore(path, synchronous=options.get("synchronous", "normal").lower())
    if url.startswith(("redis://", "rediss://")):
        from simulator.store.redis_store import RedisStore

        return RedisStore(url)
    raise StoreError(f"STORE must be 'memory', 'sqlite:///path/to/jobs.db' or 'redis://host:port/db', got {url!r}")
