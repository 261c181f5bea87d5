"""Injected latency (RESPONSE_DELAY): answers held for a drawn delay before they are sent.

Separate from FAULT_RATE: every answer of a matching route is delayed, and nothing else about it changes.
The rules and their syntax are in `simulator.latency`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from functools import lru_cache

from flask import Flask, Response, current_app, request

from simulator.latency import DelayRule, delay_seconds, parse_response_delay
from simulator.paths import openapi_template

log = logging.getLogger("server")


class ResponseDelayer:
    """Draws delays from a generator of its own, so they never shift the simulation's draws."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._lock = threading.Lock()

    def seconds(self, setting: str, path: str, template: str | None) -> float:
        """Return how long to hold the answer to a request of `path` under the RESPONSE_DELAY `setting`."""
        with self._lock:
            return delay_seconds(_rules(setting), path, template, self._rng)


@lru_cache(maxsize=16)
def _rules(setting: str) -> tuple[DelayRule, ...]:
    return parse_response_delay(setting)  # checked when it was set: it parses


def delay_answer(response: Response) -> Response:
    """Hold the answer for the delay RESPONSE_DELAY draws for this route (after_request hook)."""
    simulator = current_app.extensions["simulator"]
    setting = simulator.engine.settings.RESPONSE_DELAY
    if not setting:
        return response
    rule = request.url_rule
    seconds = simulator.delays.seconds(setting, request.path, None if rule is None else openapi_template(rule.rule))
    if seconds > 0:
        log.debug("delaying the answer to %s %s by %.0f ms", request.method, request.path, seconds * 1000)
        time.sleep(seconds)  # real time: latency is what the client sees, whatever the simulation's clock
    return response


def init_app(app: Flask) -> None:
    """Register the delay; after `_finish` is registered, so the access log's duration includes it."""
    app.after_request(delay_answer)
