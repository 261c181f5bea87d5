"""The ticker: a background thread that drives the simulation clock, so jobs finish when nobody asks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

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
