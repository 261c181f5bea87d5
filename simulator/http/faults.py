"""Injected faults (FAULT_RATE): errors and slow answers before or after the work, for testing clients."""

from __future__ import annotations

import logging
import random
import threading
import time

from flask import Flask, Response, current_app, g, request

from simulator.http.errors import ApiError, problem

log = logging.getLogger("server")

FAULT_KINDS = ("error_before", "unavailable_before", "error_after", "slow_after")
#: Paths that are not the simulated backend: liveness and documentation never fail on purpose.
FAULT_FREE_PATHS = ("/healthz", "/openapi.yaml", "/docs", "/redoc")


class FaultInjector:
    """Draws injected faults from a generator of its own, so they never shift the simulation's."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._lock = threading.Lock()
        self.injected: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    def draw(self, rate: float) -> str | None:
        """Return the kind of fault to inject into this request, or None (probability 1 - rate)."""
        if rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= rate:
                return None
            kind = self._rng.choice(FAULT_KINDS)
            self.injected[kind] += 1
            return kind


def inject_before() -> None:
    """Fail the request before any work, or mark it to fail after (before_request hook)."""
    sim = current_app.extensions["simulator"]
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "admin_only", False) or request.path.startswith(FAULT_FREE_PATHS):
        return
    kind = sim.faults.draw(sim.engine.settings.FAULT_RATE)
    if kind is None:
        return
    log.warning("injected fault %s on %s %s", kind, request.method, request.path)
    if kind == "error_before":
        raise ApiError(500, "injected_fault", "Injected fault (FAULT_RATE): failed before doing anything.", fault=kind)
    if kind == "unavailable_before":
        raise ApiError(503, "injected_fault", "Injected fault (FAULT_RATE): unavailable; nothing was done.",
                       headers={"Retry-After": "1"}, retry_after=1, fault=kind)
    g.fault = kind  # strikes after the work: see inject_after


def inject_after(response: Response) -> Response:
    """Lose the answer of work done, or send it late (after_request hook)."""
    kind = g.pop("fault", None)
    if kind == "error_after":
        response.close()  # a file answer (a result download) lets go of its file
        detail = "Injected fault (FAULT_RATE): the work was done but this answer was lost."
        return problem(500, "injected_fault", detail, fault=kind)
    if kind == "slow_after":
        time.sleep(current_app.extensions["simulator"].engine.settings.FAULT_DELAY)  # the work is done; it comes late
    return response


def init_app(app: Flask) -> None:
    """Register the fault hooks; call before the limiter exists, so a fault before the work costs no limit hit."""
    app.before_request(inject_before)
