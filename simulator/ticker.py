"""The ticker: a background thread that drives the simulation clock, so jobs finish when nobody asks; and
`Clockwork`, what a serving process starts to drive its engine (the ticker, and on a shared store the stream
follower and the ticker's lease)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from simulator.domain import JobEngine

log = logging.getLogger("server")


class Ticker:
    """Advances the engine at every due event (at least once a second) until stopped.

    With `leader` (several processes on one store), it advances only while `leader()` is true and
    otherwise checks again every `idle` seconds: one process drives simulated time.
    """

    def __init__(self, engine: JobEngine, *, leader: Callable[[], bool] | None = None, idle: float = 0.05) -> None:
        self._engine = engine
        self._leader = leader
        self._idle = idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulation-clock", daemon=True)

    def start(self) -> Ticker:
        """Start the thread; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        self._engine.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._leader is not None and not self._leader():
                self._stop.wait(self._idle)
                continue
            try:
                self._engine.wait_for_next_event(max_seconds=1.0)
            except Exception:  # pragma: no cover - the clock must keep running whatever happens
                log.exception("simulation clock step failed")
                time.sleep(0.1)


class Clockwork:
    """What drives one process's engine: the ticker and, on a store shared by several processes, the follower of
    the store's change stream and the ticker's lease (`simulator.cluster`), the ticker running only while this
    process holds the lease. With a manual clock there is no ticker: only `advance_clock` moves time."""

    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine
        self.follower: Any = None
        self.lease: Any = None
        self.ticker: Ticker | None = None

    def start(self) -> Clockwork:
        """Start the threads; return self."""
        engine = self.engine
        store = engine.store
        if store.shared:
            from simulator.cluster import LeaderLease, RedisFollower

            self.follower = RedisFollower(store, engine).start()  # type: ignore[arg-type]
            if not engine.manual_clock:
                self.lease = LeaderLease(store, on_gain=engine.wake).start()  # type: ignore[arg-type]
        if not engine.manual_clock:
            lease = self.lease
            self.ticker = Ticker(engine, leader=None if lease is None else (lambda: lease.held)).start()
        return self

    def stop(self) -> None:
        """Stop the ticker, give the lease up (another process takes it at once) and stop following the stream."""
        if self.ticker is not None:
            self.ticker.stop()
        if self.lease is not None:
            self.lease.stop()
        if self.follower is not None:
            self.follower.stop()
