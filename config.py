"""Settings of the translation simulator: defaults, environment and `.env`, validation, runtime changes.

Every key of SPEC §4 is described once, in `KEYS`. Values come from, in rising order of precedence:
the defaults here, a `.env` file, and the real environment. `Settings` is an immutable snapshot;
`RuntimeConfig` holds the current one behind a lock and swaps it as one all-or-nothing update.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dotenv import dotenv_values


class ConfigError(ValueError):
    """One or more settings are invalid; `errors` maps each key to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.errors.items()))


@dataclass(frozen=True)
class Key:
    """How one setting is typed, bounded, documented and whether it may change at runtime."""

    name: str
    kind: type  # float, int or str
    default: Any
    runtime: bool
    doc: str
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # inclusive upper bound
    low_open: bool = False  # lower bound excluded
    high_open: bool = False  # upper bound excluded
    choices: tuple[str, ...] = ()
    secret: bool = False
    optional: bool = False  # None is allowed (unset)

    def allowed(self) -> str:
        """Describe the allowed values, for error messages and the README."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is str:
            return "a non-empty string"
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"{noun} in {left}{_num(self.low)}, {_num(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '≥'} {_num(self.low)}"
        return noun

    def check(self, value: Any) -> Any:
        """Return `value` as this key's type, or raise ValueError saying what is allowed."""
        if value is None and self.optional:
            return None
        if self.kind is str:
            if not isinstance(value, str) or not value or (self.choices and value not in self.choices):
                raise ValueError(f"must be {self.allowed()}, got {value!r}")
            return value
        # bool is an int in Python, but `true` is never a number of seconds.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {self.allowed()}, got {value!r}")
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"must be {self.allowed()}, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"must be {self.allowed()}, got {value!r}")
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise ValueError(f"must be {self.allowed()}, got {_num(value)}")
        return value

    def parse(self, text: str) -> Any:
        """Turn an environment string into this key's value, or raise ValueError."""
        text = text.strip()
        if self.optional and text == "":
            return None
        if self.kind is str:
            return self.check(text)
        try:
            number = int(text) if self.kind is int else float(text)
        except ValueError:
            raise ValueError(f"must be {self.allowed()}, got {text!r}") from None
        return self.check(number)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("TRANSLATION_DELAY", float, 15.0, True, "seconds one free attempt takes", low=0, high=86400),
        Key("PREMIUM_DELAY_FACTOR", float, 0.5, True, "premium attempt time as a fraction of free",
            low=0, high=1, low_open=True),
        Key("DELAY_JITTER", float, 0.2, True, "random spread of attempt times, as a fraction",
            low=0, high=1, high_open=True),
        Key("ERROR_RATE", float, 0.2, True, "probability that an attempt fails", low=0, high=1),
        Key("MAX_RETRIES", int, 3, True, "retries after the first failed attempt", low=0, high=100),
        Key("RATE_LIMIT", int, 5, True, "free-job submissions per user per hour (0: none allowed)",
            low=0, high=1_000_000),
        Key("WORKERS", int, 2, True, "translation slots running at once", low=1, high=10_000),
        Key("PROCESSING_MODE", str, "auto", True, "`auto` starts jobs when a slot frees; `manual` waits "
            "for POST /process_jobs", choices=("auto", "manual")),
        Key("MAX_WAIT", float, 25.0, True, "longest long-poll a status request may hold, seconds (0: off)",
            low=0, high=300),
        Key("MAX_LONG_POLLS", int, 400, True, "long-polls held at once; more are answered at once",
            low=0, high=100_000),
        Key("JOB_TTL", float, 3600.0, True, "seconds a finished job is kept before it is removed",
            low=0, high=31_536_000),
        Key("MAX_JOBS", int, 100_000, True, "jobs stored at once; more submissions get 503", low=1,
            high=10_000_000),
        Key("FAULT_RATE", float, 0.0, True, "probability that a non-admin request gets an injected fault",
            low=0, high=1),
        Key("FAULT_DELAY", float, 15.0, True, "seconds a `slow` injected fault holds its answer (past a typical "
            "client timeout)", low=0, high=300),
        Key("ADMIN_TOKEN", str, None, False, "Bearer token for admin endpoints; unset: a random one is "
            "printed at start-up", secret=True, optional=True),
        Key("RANDOM_SEED", int, None, False, "seed for reproducible runs (unset: random)", optional=True,
            low=0, high=2**63),
        Key("STATE_FILE", str, None, False, "JSON file the jobs are saved to on shutdown and loaded from at "
            "start-up (unset: jobs live in memory only)", optional=True),
        Key("HOST", str, "127.0.0.1", False, "address `python server.py` listens on"),
        Key("PORT", int, 4777, False, "port `python server.py` listens on (0: any free port)", low=0,
            high=65535),
        Key("THREADS", int, 512, False, "request threads of the server (each held long-poll uses one)",
            low=4, high=4096),
    )
}

RUNTIME_KEYS = tuple(name for name, key in KEYS.items() if key.runtime)


@dataclass(frozen=True)
class Settings:
    """One immutable snapshot of every setting."""

    TRANSLATION_DELAY: float = KEYS["TRANSLATION_DELAY"].default
    PREMIUM_DELAY_FACTOR: float = KEYS["PREMIUM_DELAY_FACTOR"].default
    DELAY_JITTER: float = KEYS["DELAY_JITTER"].default
    ERROR_RATE: float = KEYS["ERROR_RATE"].default
    MAX_RETRIES: int = KEYS["MAX_RETRIES"].default
    RATE_LIMIT: int = KEYS["RATE_LIMIT"].default
    WORKERS: int = KEYS["WORKERS"].default
    PROCESSING_MODE: str = KEYS["PROCESSING_MODE"].default
    MAX_WAIT: float = KEYS["MAX_WAIT"].default
    MAX_LONG_POLLS: int = KEYS["MAX_LONG_POLLS"].default
    JOB_TTL: float = KEYS["JOB_TTL"].default
    MAX_JOBS: int = KEYS["MAX_JOBS"].default
    FAULT_RATE: float = KEYS["FAULT_RATE"].default
    FAULT_DELAY: float = KEYS["FAULT_DELAY"].default
    ADMIN_TOKEN: str | None = None
    RANDOM_SEED: int | None = None
    STATE_FILE: str | None = None
    HOST: str = KEYS["HOST"].default
    PORT: int = KEYS["PORT"].default
    THREADS: int = KEYS["THREADS"].default
    #: True when ADMIN_TOKEN was not configured and `with_admin_token` generated one.
    admin_token_generated: bool = False

    def public(self) -> dict[str, Any]:
        """Return every setting except secrets, as `GET /config` shows them."""
        return {name: getattr(self, name) for name, key in KEYS.items() if not key.secret}

    def with_admin_token(self) -> Settings:
        """Return these settings with a random ADMIN_TOKEN when none was configured."""
        if self.ADMIN_TOKEN:
            return self
        return dataclasses.replace(self, ADMIN_TOKEN=secrets.token_urlsafe(24), admin_token_generated=True)

    def updated(self, changes: Mapping[str, Any]) -> Settings:
        """Return a copy with runtime `changes` (JSON values) applied, or raise ConfigError naming each bad key."""
        errors: dict[str, str] = {}
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            key = KEYS.get(name)
            if key is None:
                errors[name] = f"unknown setting; runtime settings are {', '.join(RUNTIME_KEYS)}"
            elif not key.runtime:
                errors[name] = "read-only: set it in the environment or .env before start-up"
            else:
                try:
                    clean[name] = key.check(value)
                except ValueError as e:
                    errors[name] = str(e)
        if errors:
            raise ConfigError(errors)
        return dataclasses.replace(self, **clean)


def from_mapping(values: Mapping[str, Any]) -> Settings:
    """Build settings from defaults and typed `values` (as tests and `create_app` pass them)."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, value in values.items():
        key = KEYS.get(name)
        if key is None:
            errors[name] = "unknown setting"
            continue
        try:
            clean[name] = key.parse(value) if isinstance(value, str) and key.kind is not str else key.check(value)
        except ValueError as e:
            errors[name] = str(e)
    if errors:
        raise ConfigError(errors)
    return Settings(**clean)


def load(environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read settings from `.env` and the environment (the environment wins) and validate them all."""
    environ = os.environ if environ is None else environ
    file_values = dotenv_values(dotenv_path) if dotenv_path and os.path.exists(dotenv_path) else {}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, key in KEYS.items():
        text = environ.get(name, file_values.get(name))
        if text is None:
            continue
        try:
            clean[name] = key.parse(text)
        except ValueError as e:
            errors[name] = str(e)
    if errors:
        raise ConfigError(errors)
    return Settings(**clean)


class RuntimeConfig:
    """The current settings behind a lock; `update` swaps them all at once."""

    def __init__(self, settings: Settings) -> None:
        self._lock = threading.Lock()
        self._current = settings

    @property
    def current(self) -> Settings:
        """Return the current snapshot (reading it needs no lock: it is replaced, never changed)."""
        return self._current

    def update(self, changes: Mapping[str, Any]) -> Settings:
        """Apply runtime `changes` all or nothing and return the new settings; raise ConfigError if any is bad."""
        with self._lock:
            self._current = self._current.updated(changes)
            return self._current
