"""RESPONSE_DELAY: latency added to answers, drawn from a distribution per route, as WireMock's delays are.

The setting is one or more rules separated by `;`, each `DISTRIBUTION` or `PATTERNS=DISTRIBUTION`:

    fixed:MS                    always MS milliseconds
    uniform:LOW-HIGH            uniformly between LOW and HIGH milliseconds
    lognormal:MEDIAN:SIGMA      log-normal with that median (ms) and sigma, the long tail real latency has

PATTERNS is a comma-separated list of path patterns (`/status/*`, `/translate`, `/status/{job_id}`; see
`simulator.paths`). The first rule whose patterns match a request delays its answer; a rule without
patterns matches every API route except liveness and the documentation. Requests to `/admin/…` (the
testing controls) are never delayed. Examples:

    RESPONSE_DELAY=fixed:200
    RESPONSE_DELAY=/status/*=lognormal:90:0.4
    RESPONSE_DELAY=/translate=uniform:100-500; /status/*,/jobs=fixed:50

A drawn delay is capped at MAX_DELAY_MS. Delays are real time, whatever the CLOCK: they model the
network and server latency a client sees, not the simulation. Plain Python (the settings check the syntax).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulator.paths import check_pattern, path_matches

MAX_DELAY_MS = 300_000.0  # five minutes
MAX_SIGMA = 10.0
#: Paths a rule without patterns leaves alone: liveness, the documentation, the testing controls.
UNDELAYED_PATHS = ("/healthz", "/openapi.yaml", "/docs")
CONTROL_PREFIX = "/admin/"
SYNTAX = "fixed:MS, uniform:LOW-HIGH or lognormal:MEDIAN:SIGMA, optionally after PATTERNS= (e.g. /status/*=fixed:200)"


@dataclass(frozen=True)
class Distribution:
    """A delay distribution in milliseconds: fixed, uniform (low, high) or lognormal (median, sigma)."""

    kind: str
    first: float
    second: float = 0.0

    def sample_ms(self, rng: random.Random) -> float:
        """Draw one delay in milliseconds (capped at MAX_DELAY_MS)."""
        if self.kind == "fixed":
            return self.first
        if self.kind == "uniform":
            return rng.uniform(self.first, self.second)
        return min(MAX_DELAY_MS, rng.lognormvariate(math.log(self.first), self.second))


@dataclass(frozen=True)
class DelayRule:
    """A distribution, for the routes its patterns match (every API route when it has none)."""

    patterns: tuple[str, ...]
    distribution: Distribution

    def applies(self, path: str, template: str | None) -> bool:
        """Tell whether this rule delays the answer to a request of `path` (route `template`)."""
        if path.startswith(CONTROL_PREFIX):
            return False
        if not self.patterns:
            return not path.startswith(UNDELAYED_PATHS)
        return any(path_matches(pattern, path, template) for pattern in self.patterns)


def parse_response_delay(text: str) -> tuple[DelayRule, ...]:
    """Parse a RESPONSE_DELAY value into its rules; raise ValueError naming the rule that is wrong and why."""
    rules = []
    for number, rule in enumerate(text.split(";"), 1):
        rule = rule.strip()
        where = f"rule {number} ({rule!r})"
        patterns_text, _, distribution_text = rule.rpartition("=")
        try:
            patterns = tuple(check_pattern(p.strip()) for p in patterns_text.split(",")) if patterns_text else ()
            rules.append(DelayRule(patterns, _distribution(distribution_text.strip())))
        except ValueError as e:
            raise ValueError(f"{where}: {e}; a rule is {SYNTAX}") from None
    return tuple(rules)


def check_response_delay(text: str) -> None:
    """Raise ValueError if `text` is not a valid RESPONSE_DELAY (the settings' check)."""
    parse_response_delay(text)


def delay_seconds(rules: tuple[DelayRule, ...], path: str, template: str | None, rng: random.Random) -> float:
    """Return how long to hold the answer to a request of `path`: the first matching rule's draw, in seconds."""
    for rule in rules:
        if rule.applies(path, template):
            return rule.distribution.sample_ms(rng) / 1000
    return 0.0


def _ms(text: str, name: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value if positive else 0 <= value) or not value <= MAX_DELAY_MS:
        raise ValueError(f"{name} must be a number of milliseconds in {'(' if positive else '['}0, {MAX_DELAY_MS:g}], "
                         f"got {text!r}")
    return value


def _distribution(text: str) -> Distribution:
    kind, _, args = text.partition(":")
    kind = kind.strip().lower()
    if kind == "fixed":
        return Distribution("fixed", _ms(args.strip(), "the delay"))
    if kind == "uniform":
        low, dash, high = args.partition("-")
        if not dash:
            raise ValueError(f"uniform needs LOW-HIGH in milliseconds, got {args!r}")
        lower, upper = _ms(low.strip(), "LOW"), _ms(high.strip(), "HIGH")
        if lower > upper:
            raise ValueError(f"uniform needs LOW ≤ HIGH, got {args!r}")
        return Distribution("uniform", lower, upper)
    if kind == "lognormal":
        median, colon, sigma = args.partition(":")
        if not colon:
            raise ValueError(f"lognormal needs MEDIAN:SIGMA, got {args!r}")
        try:
            spread = float(sigma)
        except ValueError:
            spread = math.nan
        if not 0 <= spread <= MAX_SIGMA:
            raise ValueError(f"SIGMA must be a number in [0, {MAX_SIGMA:g}], got {sigma!r}")
        return Distribution("lognormal", _ms(median.strip(), "MEDIAN", positive=True), spread)
    raise ValueError(f"unknown distribution {kind!r}")
