"""Injected faults (FAULT_RATE): errors and slow answers before or after the work, for testing clients."""

from __future__ import annotations

import logging
import random
import threading
import time

from flask import Flask, Response, after_this_request, current_app, request

from simulator.http.errors import ApiError, handle_error

log = logging.getLogger("server")

FAULT_KINDS = ("error_before", "unavailable_before", "error_after", "slow_after")
#: Paths that are not the simulated backend: liveness, documentation and observation never fail on purpose.
FAULT_FREE_PATHS = ("/healthz", "/openapi.yaml", "/docs", "/redoc", "/metrics", "/events", "/dashboard")


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


#: What each injected fault answers: status, detail, headers and extra members (all with code injected_fault).
FAULT_ANSWERS: dict[str, tuple[int, str, dict[str, str], dict[str, int]]] = {
    "error_before": (500, "Injected fault (FAULT_RATE): failed before doing anything.", {}, {}),
    "unavailable_before": (503, "Injected fault (FAULT_RATE): unavailable; nothing was done.",
                           {"Retry-After": "1"}, {"retry_after": 1}),
    "error_after": (500, "Injected fault (FAULT_RATE): the work was done but this answer was lost.", {}, {}),
}


def fault_error(kind: str) -> ApiError:
    """Return the error an injected fault of `kind` answers (not for slow_after, which answers late instead)."""
    status, detail, headers, extra = FAULT_ANSWERS[kind]
    return ApiError(status, "injected_fault", detail, headers=headers, **extra, fault=kind)


def inject_before() -> None:
    """Fail the request before any work, or mark it to fail after (before_request hook)."""
    sim = current_app.extensions["simulator"]
    rate = sim.engine.settings.FAULT_RATE
    if rate <= 0:
        return  # the usual case, decided first: every request passes here
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "admin_only", False) or request.path.startswith(FAULT_FREE_PATHS):
        return
    kind = sim.faults.draw(rate)
    if kind is None:
        return
    log.warning("injected fault %s on %s %s", kind, request.method, request.path)
    if kind in ("error_before", "unavailable_before"):
        raise fault_error(kind)
    # Strikes after the work; only this request pays for an after-hook.
    after_this_request(lambda response: inject_after(response, kind))


def inject_after(response: Response, kind: str) -> Response:
    """Lose the answer of work done, or send it late."""
    if kind == "error_after":
        response.close()  # a file answer (a result download) lets go of its file
        return handle_error(fault_error(kind))  # problem+json, or HeyGen's envelope on HeyGen's routes
    if kind == "slow_after":
        time.sleep(current_app.extensions["simulator"].engine.settings.FAULT_DELAY)  # the work is done; it comes late
    return response


def init_app(app: Flask) -> None:
    """Register the fault hook (a fault before the work strikes before the view, so it costs no limit hit)."""
    app.before_request(inject_before)
