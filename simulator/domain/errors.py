"""The domain's errors: one root, each with a stable machine-readable `code`."""

from __future__ import annotations

from typing import Any


class JobError(Exception):
    """Root of the domain's errors; `code` is a stable machine-readable name, `extra` goes into the answer."""

    code = "job_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class JobNotFound(JobError):
    """No job has this id (never had, or it was removed)."""

    code = "job_not_found"


class TransitionRefused(JobError):
    """The job's current state does not allow this move (e.g. cancelling a completed job)."""

    code = "invalid_transition"


class InvalidArgument(JobError):
    """An argument is out of range or of the wrong kind."""

    code = "invalid_argument"


class IdempotencyMismatch(JobError):
    """An Idempotency-Key was reused with a different request body."""

    code = "idempotency_key_reused"


class CapacityExceeded(JobError):
    """The store holds MAX_JOBS jobs; `extra['retry_after']` says when room is expected."""

    code = "capacity_exceeded"


class StoreUnavailable(JobError):
    """The store could not make a change durable (disk full, database gone); nothing was acknowledged."""

    code = "store_unavailable"


class ClockNotManual(JobError):
    """Only a manual clock (CLOCK=manual) can be moved by hand."""

    code = "clock_not_manual"


class ScenariosDisabled(JobError):
    """A submission scripted its outcomes while SCENARIOS is off."""

    code = "scenarios_disabled"


class StoreConflict(Exception):
    """A shared store refused a transaction's commit: another process changed what it read. Run it again.

    Not a `JobError`: the engine retries the call, and gives up with StoreUnavailable only after many tries.
    """
