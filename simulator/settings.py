"""Every setting, declared once: its environment key, type, bounds, default, whether it changes at runtime, its doc.

A setting is one field of one of three frozen dataclasses, declared with `setting(...)`:

- `Simulation` — how the simulated backend behaves (the domain reads only these); runtime.
- `Service` — how the HTTP service behaves around it (limits, long-polls, faults); runtime.
- `Process` — how this process starts (address, store, token, seed); start-up only.

`Settings` is all three in one immutable snapshot; `KEYS` is derived from the fields, so the README
table, validation, `GET /config` and `POST /config` all read the same declaration. Values come from,
in rising order of precedence: the defaults, a `.env` file and the real environment. `RuntimeConfig`
holds the current snapshot and swaps it as one all-or-nothing update.

This module does not import python-dotenv until `load()` reads a `.env` file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from simulator.latency import check_response_delay
from simulator.webhooks.hosts import DEFAULT_ALLOWED_HOSTS, check_allowed_hosts


class ConfigError(ValueError):
    """One or more settings are invalid; `errors` maps each key to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.errors.items()))


@dataclass(frozen=True)
class Key:
    """How one setting is typed, bounded and documented, and which group it belongs to."""

    name: str
    kind: type  # float, int or str
    default: Any
    group: str  # "simulation", "service" or "process"
    doc: str
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # inclusive upper bound
    low_open: bool = False  # lower bound excluded
    high_open: bool = False  # upper bound excluded
    choices: tuple[str, ...] = ()
    secret: bool = False
    optional: bool = False  # None is allowed (unset)
    validate: Callable[[str], object] | None = None  # checks a string's syntax; raises ValueError saying why

    @property
    def runtime(self) -> bool:
        """Tell whether `POST /config` may change this setting."""
        return self.group != "process"

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
            if self.validate is not None:
                self.validate(value)
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


def check_public_url(value: str) -> None:
    """Accept an http(s) URL with a host and no query or fragment (a trailing / is dropped where it is used)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"must be an http(s):// base URL such as http://127.0.0.1:4777, got {value!r}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_origins(text: str) -> frozenset[str]:
    """Return the origins of a CORS_ORIGINS value (`*`, or `scheme://host[:port]` separated by commas); ValueError."""
    origins = frozenset(part.strip().rstrip("/").lower() for part in text.split(","))
    for origin in origins:
        scheme, sep, host = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not sep or not host or "/" in host
                              or any(c.isspace() for c in host)):
            raise ValueError(f"must be * or origins such as https://app.example.com:8080 separated by commas, "
                             f"got {origin!r}")
    return origins


def setting(default: Any, doc: str, **bounds: Any) -> Any:
    """Declare a setting: its default, one doc line, and its bounds or choices (see `Key`)."""
    return field(default=default, metadata={"doc": doc, **bounds})


@dataclass(frozen=True)
class Simulation:
    """How the simulated translation backend behaves; the domain reads only these. All change at runtime."""

    TRANSLATION_DELAY: float = setting(15.0, "seconds one free attempt takes", low=0, high=86400)
    PREMIUM_DELAY_FACTOR: float = setting(0.5, "premium attempt time as a fraction of free",
                                          low=0, high=1, low_open=True)
    DELAY_JITTER: float = setting(0.2, "random spread of attempt times, as a fraction", low=0, high=1, high_open=True)
    ERROR_RATE: float = setting(0.2, "probability that an attempt fails", low=0, high=1)
    MAX_RETRIES: int = setting(3, "retries after the first failed attempt", low=0, high=100)
    WORKERS: int = setting(2, "translation slots running at once", low=1, high=10_000)
    PROCESSING_MODE: str = setting("auto", "`auto` starts jobs when a slot frees; `manual` waits for "
                                   "POST /process_jobs", choices=("auto", "manual"))
    JOB_TTL: float = setting(3600.0, "seconds a finished job is kept before it is removed", low=0, high=31_536_000)
    MAX_JOBS: int = setting(100_000, "jobs stored at once; more submissions get 503", low=1, high=10_000_000)
    SCENARIOS: str = setting("on", "`on`: a submission may script its outcomes (`simulate`, `X-Simulate`); "
                             "`off`: such submissions are refused (403)", choices=("on", "off"))
    DELAY_PER_MEDIA_SECOND: float = setting(0.0, "seconds a free attempt takes per second of an uploaded video, "
                                            "instead of TRANSLATION_DELAY (0: off; jobs without an upload always "
                                            "take TRANSLATION_DELAY)", low=0, high=3600)


@dataclass(frozen=True)
class Service:
    """How the HTTP service behaves around the simulation: limits, long-polls, injected faults. Runtime."""

    RATE_LIMIT: int = setting(5, "free-job submissions per user per hour (0: none allowed)", low=0, high=1_000_000)
    MAX_WAIT: float = setting(25.0, "longest long-poll a status request may hold, seconds (0: off)", low=0, high=300)
    MAX_LONG_POLLS: int = setting(10_000, "long-polls held at once; more are answered at once", low=0,
                                  high=100_000)
    MAX_EVENT_STREAMS: int = setting(10_000, "`GET /events` streams open at once (in the event loop under python "
                                     "server.py; a thread each under another WSGI server); more get 503", low=0,
                                     high=100_000)
    FAULT_RATE: float = setting(0.0, "probability that a non-admin request gets an injected fault", low=0, high=1)
    FAULT_DELAY: float = setting(15.0, "seconds a `slow` injected fault holds its answer (past a typical client "
                                 "timeout)", low=0, high=300)
    JOURNAL_SIZE: int = setting(1000, "requests the journal keeps for GET /admin/requests, the oldest dropped "
                                "first (0: none)", low=0, high=100_000)
    RESPONSE_DELAY: str | None = setting(None, "latency added to answers: `fixed:MS`, `uniform:LOW-HIGH` or "
                                         "`lognormal:MEDIAN:SIGMA` (ms), optionally per route as "
                                         "`/status/*=fixed:200`, rules separated by `;` (see Latency)",
                                         optional=True, validate=check_response_delay)
    CORS_ORIGINS: str | None = setting(None, "browser origins allowed to call the API (CORS), separated by commas, or "
                                       "`*` for any; unset: CORS off", optional=True, validate=parse_origins)
    MAX_UPLOAD_BYTES: int = setting(1 << 30, "largest video `POST /uploads` takes, bytes (1 GiB); larger ones get "
                                    "413", low=1, high=1 << 40)
    MAX_MEDIA_SECONDS: float = setting(3 * 3600.0, "longest video `POST /uploads` takes, seconds; longer ones get "
                                       "422", low=0, high=86400, low_open=True)
    MAX_DATA_BYTES: int = setting(10 << 30, "bytes of uploads and results kept in DATA_DIR (10 GiB); the oldest "
                                  "results are evicted first, then uploads get 507", low=1 << 20, high=1 << 50)
    AUTH_MODE: str = setting("open", "`open`: X-User-Id and a declared role are trusted (an X-Api-Key, when sent, "
                             "wins); `keys`: every non-admin route needs X-Api-Key", choices=("open", "keys"))
    AUTH_FAILURE_LIMIT: int = setting(20, "requests with a wrong X-Api-Key one client may send per minute; more "
                                      "get 429", low=1, high=1_000_000)
    WEBHOOK_ALLOWED_HOSTS: str = setting(DEFAULT_ALLOWED_HOSTS, "where webhooks may go: host names, `*.domain`, IP "
                                         "addresses or networks, comma-separated, or `*` (default: loopback only)",
                                         validate=check_allowed_hosts)
    WEBHOOK_TIMEOUT: float = setting(10.0, "seconds one webhook delivery may take, connecting and answering",
                                     low=0, high=60, low_open=True)
    WEBHOOK_RETRY_SCALE: float = setting(0.1, "factor on the Standard Webhooks retry schedule (5 s, 5 min, 30 min, "
                                         "2 h, 5 h, 10 h, 10 h; 1: as written)", low=0, high=1)


@dataclass(frozen=True)
class Process:
    """How this process starts: where it listens, where jobs are stored, its token and seed. Start-up only."""

    ADMIN_TOKEN: str | None = setting(None, "Bearer token for admin endpoints; unset: a random one is printed at "
                                      "start-up", secret=True, optional=True)
    METRICS_TOKEN: str | None = setting(None, "Bearer token `GET /metrics` requires; unset: /metrics is open, like "
                                        "/healthz", secret=True, optional=True)
    RANDOM_SEED: int | None = setting(None, "seed for reproducible runs from an empty store (unset: random)",
                                      optional=True, low=0, high=2**63)
    STORE: str = setting("memory", "where jobs live: `memory` (lost on exit), `sqlite:///path/to/jobs.db` "
                         "(durable) or `redis://host:port/db` (shared by several processes; see Storage)")
    CLOCK: str = setting("system", "`system`: real time; `manual`: simulated time stands still until POST "
                         "/admin/clock/advance moves it", choices=("system", "manual"))
    DATA_DIR: str | None = setting(None, "folder for uploaded videos and results (kept across restarts); unset: a "
                                   "private folder of this run in the user's cache folder, deleted at exit (see "
                                   "Videos)", optional=True)
    HOST: str = setting("127.0.0.1", "address `python server.py` listens on")
    PORT: int = setting(4777, "port `python server.py` listens on (0: any free port)", low=0, high=65535)
    THREADS: int = setting(8, "threads that run the Flask app in `python server.py` (held long-polls use none)",
                           low=1, high=256)
    PROCESSES: int = setting(1, "server processes `python server.py` runs on the port (`--workers`); more than 1 "
                             "needs STORE=redis://…", low=1, high=64)
    API_KEYS_FILE: str | None = setting(None, "JSON file of API keys to create at start-up: "
                                        '`[{"api_key", "user_id", "role"}]`', optional=True)
    WEBHOOK_SECRET: str | None = setting(None, "secret that signs deliveries to a job's `callback_url`; unset: one is "
                                         "made, kept in the store and printed at start-up", secret=True, optional=True)
    WEBHOOK_WORKERS: int = setting(16, "webhook deliveries sent at once (threads of the deliverer)", low=1, high=256)
    PUBLIC_URL: str | None = setting(None, "base URL of this server in webhook payloads (unset: the URL the job was "
                                     "submitted to)", optional=True, validate=check_public_url)


_GROUPS = {Simulation: "simulation", Service: "service", Process: "process"}
_KINDS = {"float": float, "int": int, "str": str}


def _key(owner: type, f: dataclasses.Field[Any]) -> Key:
    annotation = str(f.type)
    kind = _KINDS[annotation.split("|")[0].strip()]
    bounds = {k: v for k, v in f.metadata.items() if k != "doc"}
    return Key(f.name, kind, f.default, _GROUPS[owner], f.metadata["doc"], **bounds)


KEYS: dict[str, Key] = {f.name: _key(owner, f) for owner in _GROUPS for f in dataclasses.fields(owner)}
RUNTIME_KEYS = tuple(name for name, key in KEYS.items() if key.runtime)
#: Settings that existed once and what replaced them: set at start-up, they stop the server with this message.
RETIRED = {
    "STATE_FILE": "retired: jobs are kept durably by the SQLite store; set STORE=sqlite:///path/to/jobs.db instead",
}


@dataclass(frozen=True)
class Settings(Simulation, Service, Process):
    """One immutable snapshot of every setting."""

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
    """Build settings from defaults and `values` (typed, or text as the environment gives it), all checked."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name, value in values.items():
        key = KEYS.get(name)
        if key is None:
            errors[name] = RETIRED.get(name, "unknown setting")
            continue
        try:
            # Text is read as the environment's: stripped, and empty for an optional key means unset.
            clean[name] = key.parse(value) if isinstance(value, str) else key.check(value)
        except ValueError as e:
            errors[name] = str(e)
    if errors:
        raise ConfigError(errors)
    return Settings(**clean)


def load(environ: Mapping[str, str] | None = None, dotenv_path: str | os.PathLike[str] | None = ".env") -> Settings:
    """Read settings from `.env` and the environment (the environment wins) and validate them all."""
    environ = os.environ if environ is None else environ
    file_values: Mapping[str, str | None] = {}
    if dotenv_path and os.path.exists(dotenv_path):
        from dotenv import dotenv_values  # only the process entry point needs it

        file_values = dotenv_values(dotenv_path)
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for name in (*KEYS, *RETIRED):
        text = environ.get(name, file_values.get(name))
        if text is None:
            continue
        if name in RETIRED:
            errors[name] = RETIRED[name]
            continue
        try:
            clean[name] = KEYS[name].parse(text)
        except ValueError as e:
            errors[name] = str(e)
    if errors:
        raise ConfigError(errors)
    return Settings(**clean)


def markdown_table() -> str:
    """Return the README's table of every setting, made from the declarations."""

    def default(key: Key) -> str:
        if key.default is None:
            return "unset"
        if key.kind is str:
            return f"`{key.default}`"
        return _num(key.default)

    rows = ["| key | default | runtime | allowed | meaning |", "|---|---|---|---|---|"]
    for key in KEYS.values():
        allowed = "a string" if key.kind is str and not key.choices else key.allowed()
        rows.append(f"| `{key.name}` | {default(key)} | {'yes' if key.runtime else 'no'} | {allowed} | {key.doc} |")
    return "\n".join(rows)


class RuntimeConfig:
    """The current settings behind a lock; `update` swaps them all at once."""

    def __init__(self, settings: Settings) -> None:
        self._lock = threading.Lock()
        self._current = settings
        self.initial = settings

    @property
    def current(self) -> Settings:
        """Return the current snapshot (reading it needs no lock: it is replaced, never changed)."""
        return self._current

    def update(self, changes: Mapping[str, Any]) -> Settings:
        """Apply runtime `changes` all or nothing and return the new settings; raise ConfigError if any is bad."""
        with self._lock:
            self._current = self._current.updated(changes)
            return self._current

    def restore(self) -> Settings:
        """Put the start-up settings back in force and return them."""
        with self._lock:
            self._current = self.initial
            return self._current
