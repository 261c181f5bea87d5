"""Scripted outcomes for one job — the `simulate` object of a submission — so a test gets the exact case it needs.

    {"outcomes": ["fail", "fail", "succeed"],   # attempt by attempt; the last entry repeats
     "attempt_seconds": [1, 1, 2],               # how long each attempt takes; the last entry repeats
     "fail_code": "timeout",                     # the error code of this job's failures
     "fail_message": "GPU node lost",            # and their message
     "status_faults": [{"status": 503, "retry_after": 1, "times": 2}]}   # its next status reads fail

Every member is optional, but at least one must be given. What the script does not say is drawn as
configured (ERROR_RATE, TRANSLATION_DELAY with DELAY_JITTER, a random error code). A scripted failure
happens when the attempt's time is up; a random one at a random moment of it, as always. Retries stay
bounded by MAX_RETRIES: a job scripted to fail more often than that ends `permanently_failed`.

`status_faults` script the HTTP answers of the job's status reads (GET /status/<id>, and GET /status when it
answers this job): the first `times` reads answer the first entry's status, the next ones the next entry's,
and once the list is used up reads answer normally. Which reads were used is counted in memory by the
engine: a server restarted on a durable store scripts them again from the first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OUTCOMES = ("succeed", "fail")
#: The error codes a failure may carry (the same as random failures').
FAIL_CODES = ("timeout", "internal_error", "unknown")
#: The HTTP statuses a scripted status read may answer: a rate limit, server errors, and what proxies answer.
FAULT_STATUSES = (429, 500, 502, 503, 504)
MEMBERS = ("outcomes", "attempt_seconds", "fail_code", "fail_message", "status_faults")
FAULT_MEMBERS = ("status", "retry_after", "times")
MAX_ENTRIES = 100  # entries of `outcomes`, `attempt_seconds` and `status_faults`
MAX_ATTEMPT_SECONDS = 86_400.0
MAX_RETRY_AFTER = 3_600
MAX_TIMES = 1_000
MAX_MESSAGE = 500


class ScenarioError(ValueError):
    """A `simulate` object is not valid; the message names the member and what it allows."""


@dataclass(frozen=True)
class ReadFault:
    """What one scripted status read answers instead of the job: an HTTP status and an optional Retry-After."""

    status: int
    retry_after: int | None


@dataclass(frozen=True)
class Scenario:
    """One job's script, checked; `to_json` is what the job shows as `simulate`."""

    outcomes: tuple[str, ...] = ()
    attempt_seconds: tuple[float, ...] = ()
    fail_code: str | None = None
    fail_message: str | None = None
    status_faults: tuple[tuple[ReadFault, int], ...] = ()  # (fault, times)

    @classmethod
    def parse(cls, value: Any) -> Scenario:
        """Check a `simulate` object (decoded JSON) and return its script; raise ScenarioError naming what is wrong."""
        if not isinstance(value, Mapping):
            raise ScenarioError(f"must be an object with one or more of {', '.join(MEMBERS)}, got {_show(value)}")
        unknown = [name for name in value if name not in MEMBERS]
        if unknown:
            raise ScenarioError(f"unknown member {unknown[0]!r}; allowed: {', '.join(MEMBERS)}")
        if not value:
            raise ScenarioError(f"must script something: one or more of {', '.join(MEMBERS)}")
        return cls(
            outcomes=tuple(_entries(value, "outcomes", _outcome)),
            attempt_seconds=tuple(_entries(value, "attempt_seconds", _seconds)),
            fail_code=_optional(value, "fail_code", _fail_code),
            fail_message=_optional(value, "fail_message", _message),
            status_faults=tuple(_entries(value, "status_faults", _fault)),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the script as JSON, with only the members it has (what the job shows as `simulate`)."""
        shown: dict[str, Any] = {}
        if self.outcomes:
            shown["outcomes"] = list(self.outcomes)
        if self.attempt_seconds:
            shown["attempt_seconds"] = list(self.attempt_seconds)
        if self.fail_code is not None:
            shown["fail_code"] = self.fail_code
        if self.fail_message is not None:
            shown["fail_message"] = self.fail_message
        if self.status_faults:
            shown["status_faults"] = [
                {"status": fault.status, "retry_after": fault.retry_after, "times": times}
                for fault, times in self.status_faults
            ]
        return shown

    def outcome(self, attempt: int) -> str | None:
        """Return `succeed` or `fail` for 1-based `attempt` (the last entry repeats), or None when unscripted."""
        return _nth(self.outcomes, attempt)

    def seconds(self, attempt: int) -> float | None:
        """Return how long 1-based `attempt` takes (the last entry repeats), or None when unscripted."""
        return _nth(self.attempt_seconds, attempt)

    def read_fault(self, read: int) -> ReadFault | None:
        """Return what the 0-based `read`-th status read of the job answers instead of the job, if scripted."""
        for fault, times in self.status_faults:
            if read < times:
                return fault
            read -= times
        return None


def _nth(entries: tuple[Any, ...], attempt: int) -> Any:
    if not entries:
        return None
    return entries[min(attempt, len(entries)) - 1]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _entries(value: Mapping[str, Any], name: str, check: Any) -> list[Any]:
    if name not in value:
        return []
    entries = value[name]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENTRIES:
        raise ScenarioError(f"{name} must be a list of 1–{MAX_ENTRIES} entries, got {_show(entries)}")
    return [check(entry, f"{name}[{i}]") for i, entry in enumerate(entries)]


def _optional(value: Mapping[str, Any], name: str, check: Any) -> Any:
    return check(value[name], name) if name in value else None


def _outcome(entry: Any, where: str) -> str:
    if entry not in OUTCOMES:
        raise ScenarioError(f"{where} must be 'succeed' or 'fail', got {_show(entry)}")
    return entry  # type: ignore[no-any-return]


def _number(entry: Any, where: str, low: float, high: float, *, integer: bool = False) -> float:
    kind = "an integer" if integer else "a number"
    bad = isinstance(entry, bool) or not isinstance(entry, (int, float)) or not math.isfinite(entry)
    if bad or (integer and not float(entry).is_integer()) or not low <= entry <= high:
        raise ScenarioError(f"{where} must be {kind} in [{low:g}, {high:g}], got {_show(entry)}")
    return entry  # type: ignore[no-any-return]


def _seconds(entry: Any, where: str) -> float:
    return float(_number(entry, where, 0, MAX_ATTEMPT_SECONDS))


def _fail_code(entry: Any, where: str) -> str:
    if entry not in FAIL_CODES:
        raise ScenarioError(f"{where} must be one of {', '.join(FAIL_CODES)}, got {_show(entry)}")
    return entry  # type: ignore[no-any-return]


def _message(entry: Any, where: str) -> str:
    if not isinstance(entry, str) or not entry.strip() or len(entry) > MAX_MESSAGE:
        raise ScenarioError(f"{where} must be a non-empty string of at most {MAX_MESSAGE} characters, "
                            f"got {_show(entry)}")
    return entry


def _fault(entry: Any, where: str) -> tuple[ReadFault, int]:
    if not isinstance(entry, Mapping) or "status" not in entry:
        raise ScenarioError(f"{where} must be an object with a status and optionally retry_after and times, "
                            f"got {_show(entry)}")
    unknown = [name for name in entry if name not in FAULT_MEMBERS]
    if unknown:
        raise ScenarioError(f"{where} has an unknown member {unknown[0]!r}; allowed: {', '.join(FAULT_MEMBERS)}")
    status = entry["status"]
    if isinstance(status, bool) or status not in FAULT_STATUSES:
        raise ScenarioError(f"{where}.status must be one of {', '.join(map(str, FAULT_STATUSES))}, "
                            f"got {_show(status)}")
    retry_after = entry.get("retry_after")
    if retry_after is not None:
        retry_after = int(_number(retry_after, f"{where}.retry_after", 1, MAX_RETRY_AFTER, integer=True))
    times = int(_number(entry.get("times", 1), f"{where}.times", 1, MAX_TIMES, integer=True))
    return ReadFault(int(status), retry_after), times
