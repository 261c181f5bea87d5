"""Several server processes on one Redis store: the change stream follower and the ticker's leader lease.

- `RedisFollower` reads the store's stream of committed changes (XREAD BLOCK) and publishes those of
  other processes on this process's `ChangeFeed`, so that a long-poll held here wakes when another
  process moves its job; it applies runtime settings that another process changed (`POST /config`),
  and wakes this process's ticker when another process changed the schedule. After a lost connection
  it marks a gap on the feed (every waiter re-reads its job: the version is the source of truth) and
  reloads the settings.
- `LeaderLease` holds `{prefix}:leader` with `SET NX PX`, renewed well within its time to live; the
  process that holds it runs the ticker, so simulated time is advanced once, not once per process.
  When the holder dies, another process takes the lease within `ttl + every` seconds (1.75 s). Any
  process still advances due events when it serves a request: the commit's version checks make that
  idempotent (an attempt's end is applied once, whoever gets there first).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import orjson
import redis

from simulator.domain.errors import StoreUnavailable
from simulator.settings import RUNTIME_KEYS, ConfigError
from simulator.store import redis_lua

if TYPE_CHECKING:
    from simulator.domain import JobEngine
    from simulator.store.redis_store import RedisStore

log = logging.getLogger("server")
#: Kinds of change after which the ticker should look at the schedule again.
SCHEDULE_KINDS = frozenset({"started", "retried", "failed", "completed", "permanently_failed", "cancelled"})


def apply_stored_settings(engine: JobEngine, stored: dict[str, Any]) -> None:
    """Apply runtime settings stored by any process; ignore (and log) those this version does not accept."""
    changes = {name: value for name, value in stored.items() if name in RUNTIME_KEYS}
    if not changes:
        return
    current = engine.settings
    if all(getattr(current, name) == value for name, value in changes.items()):
        return
    try:
        engine.config.update(changes)
    except ConfigError as e:
        log.warning("ignoring stored runtime settings: %s", e)
        return
    engine.wake()  # WORKERS or the mode may have changed what is due


class RedisFollower:
    """A thread that feeds this process's change feed and settings from the store's stream."""

    def __init__(self, store: RedisStore, engine: JobEngine, *, block_ms: int = 500) -> None:
        self._store = store
        self._engine = engine
        self._block_ms = block_ms
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-stream", daemon=True)
        self._redis: redis.Redis | None = None

    def start(self, timeout: float = 5.0) -> RedisFollower:
        """Start following; return once the stream is read from its current end (changes after that are seen)."""
        self._thread.start()
        self._connected.wait(timeout)
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one blocking read)."""
        self._stop.set()
        self._thread.join(timeout=self._block_ms / 1000 + 2)

    def _connect(self) -> tuple[redis.Redis, str]:
        connection = redis.Redis.from_url(self._store.url, decode_responses=True, socket_connect_timeout=5,
                                          socket_timeout=self._block_ms / 1000 + 5)
        last = connection.xrevrange(self._store.key("changes"), count=1)
        apply_stored_settings(self._engine, self._store.stored_settings())
        return connection, last[0][0] if last else "0-0"

    def _run(self) -> None:
        key = self._store.key("changes")
        failures = 0
        connection: redis.Redis | None = None
        last = "0-0"
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection, last = self._connect()
                    if failures:
                        log.info("change stream: reconnected")
                        self._engine.feed.resync()  # what was missed while away is re-read, not waited for
                    failures = 0
                    self._connected.set()
                answer = connection.xread({key: last}, count=1000, block=self._block_ms)
            except (redis.exceptions.RedisError, StoreUnavailable) as e:
                if connection is not None:
                    connection.close()
                connection = None
                failures += 1
                if failures == 1:
                    log.warning("change stream: %s; reconnecting", e)
                self._stop.wait(min(2.0, 0.05 * 2**failures))
                continue
            for _, entries in answer or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if fields.get("o") != self._store.origin:
                        self._deliver(fields)
        if connection is not None:
            connection.close()

    def _deliver(self, fields: dict[str, str]) -> None:
        """Publish another process's changes here, apply its settings, and wake the ticker if the schedule moved.

        After a reset (`r`), this process's start-up settings come back before any setting in the same entry.
        """
        wake = False
        if fields.get("r"):
            self._engine.config.restore()
            wake = True
        if fields.get("c"):
            for kind, job_id, user_id, version, at in orjson.loads(fields["c"]):
                self._engine.feed.publish(kind, job_id, user_id, version, at)
                wake = wake or kind in SCHEDULE_KINDS
        if fields.get("s"):
            stored = {name: orjson.loads(value) for name, value in orjson.loads(fields["s"]).items()}
            apply_stored_settings(self._engine, stored)
        if wake:
            self._engine.wake()


class LeaderLease:
    """`SET key holder NX PX ttl`, renewed every `every` s by its holder; `held` tells whether this process has it."""

    def __init__(self, store: RedisStore, *, ttl: float = 1.5, every: float = 0.25, on_gain: Any = None) -> None:
        self._store = store
        self._key = store.key("leader")
        self.holder = f"{os.getpid()}:{store.origin}"
        self._ttl_ms = int(ttl * 1000)
        self._every = every
        self._on_gain = on_gain
        self._renew = store.redis.register_script(redis_lua.RENEW)
        self._release = store.redis.register_script(redis_lua.RELEASE)
        self.held = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-lease", daemon=True)

    def start(self) -> LeaderLease:
        """Try to take the lease now, then keep trying (or renewing) in a thread."""
        self.step()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and give the lease up, so another process takes over at once."""
        self._stop.set()
        self._thread.join(timeout=2)
        if self.held:
            try:
                self._release(keys=[self._key], args=[self.holder])
            except redis.exceptions.RedisError:
                pass  # it expires by itself
            self.held = False

    def step(self) -> bool:
        """Renew the lease if held, else try to take it; return whether this process holds it now."""
        try:
            if self.held:
                self.held = bool(self._renew(keys=[self._key], args=[self.holder, self._ttl_ms]))
                if not self.held:
                    log.warning("lost the ticker lease")
            else:
                gained = bool(self._store.redis.set(self._key, self.holder, nx=True, px=self._ttl_ms))
                if gained:
                    self.held = True
                    log.info("this process now advances simulated time (ticker lease taken)")
                    if self._on_gain is not None:
                        self._on_gain()
        except redis.exceptions.RedisError as e:
            if self.held:
                log.warning("cannot renew the ticker lease: %s", e)
            self.held = False
        return self.held

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.step()
