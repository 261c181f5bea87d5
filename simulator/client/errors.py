"""Every error the client raises: one hierarchy under TranslationError."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.client.job import Job
    from simulator.client.protocol import Answer


class TranslationError(Exception):
    """Root of every error this client raises."""


class TransportError(TranslationError):
    """The request got no HTTP answer (connection refused or reset, timeout, DNS): worth retrying later."""


class ProtocolError(TranslationError):
    """The answer is not this API's (wrong content type, not JSON, no job or problem shape): fatal, not retried.

    Most likely another web server listens at the URL. Not a TransportError: retrying will not help.
    """


class APIError(TranslationError):
    """The server answered with an HTTP error; carries the problem+json members.

    `response` is the HTTP library's own response object (requests or httpx), for the curious.
    """

    def __init__(self, answer: Answer, problem: Mapping[str, Any]) -> None:
        self.answer = answer
        self.response = answer.raw
        self.problem = dict(problem)
        self.status: int = answer.status
        self.code: str = str(problem.get("code", ""))
        self.title: str = str(problem.get("title", answer.reason))
        self.detail: str = str(problem.get("detail", ""))
        self.type: str = str(problem.get("type", "about:blank"))
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    @property
    def retry_after(self) -> float | None:
        """Return the server's Retry-After in seconds, if it gave one."""
        return retry_after(self.answer.headers, self.problem)


class BadRequestError(APIError):
    """400/413/422: the request was malformed or invalid."""


class AuthenticationError(APIError):
    """401/403: the admin token is missing or wrong."""


class NotFoundError(APIError):
    """404: no such job (or endpoint)."""


class ConflictError(APIError):
    """409: the job's state does not allow this (e.g. cancelling a completed job)."""


class RateLimitError(APIError):
    """429: too many free submissions; `retry_after` says how many seconds until one is allowed."""


class ServerError(APIError):
    """5xx: the server failed or is overloaded (503 carries `retry_after`)."""


class WaitTimeoutError(TranslationError, TimeoutError):
    """The call's deadline passed; `job` is the last state seen (None if never seen), `last_error` what failed last."""

    def __init__(self, message: str, job: Job | None, last_error: TranslationError | None = None) -> None:
        super().__init__(message)
        self.job = job
        self.last_error = last_error


class ServerUnreachableError(WaitTimeoutError, TransportError):
    """Gave up: the server gave no HTTP answer (refused, reset, silent) until the deadline, or for too long.

    Both a WaitTimeoutError (the call ran out of time) and a TransportError (the reason is the server).
    """


class JobFailedError(TranslationError):
    """The job ended without completing (permanently failed or cancelled); `job` is its final state."""

    def __init__(self, job: Job) -> None:
        reason = job.error.get("message") if job.error else job.cancel_reason
        super().__init__(f"Job {job.job_id} ended {job.status}" + (f": {reason}" if reason else ""))
        self.job = job


#: The class of an HTTP error status; other 4xx are APIError, other 5xx ServerError.
ERROR_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    405: BadRequestError,
    409: ConflictError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_class(status: int) -> type[APIError]:
    """Return the APIError subclass for an HTTP error status."""
    return ERROR_CLASSES.get(status, ServerError if status >= 500 else APIError)


def retry_after(headers: Mapping[str, str], problem: Mapping[str, Any] | None = None) -> float | None:
    """Return the seconds a server asked to wait (problem `retry_after`, else the Retry-After header), or None."""
    value = (problem or {}).get("retry_after", headers.get("Retry-After"))
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def is_transient(error: TranslationError) -> bool:
    """Tell whether sending the same request later may succeed (no answer, 5xx, 429); a foreign answer never."""
    return isinstance(error, (TransportError, ServerError, RateLimitError))
