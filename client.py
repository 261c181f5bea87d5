"""The client library and its command line, as before: `from client import TranslationClient`, `python client.py`.

The code lives in the package `simulator.client` (sync and async clients, pacing, the CLI); this module
re-exports it so that scripts and the design card's file names keep working. `python client.py --help`
for the command line (installed, it is also `translation-client`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from simulator.client import (
    DEFAULT_URL,
    TERMINAL_STATUSES,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Job,
    JobFailedError,
    NotFoundError,
    Pacing,
    ProtocolError,
    RateLimitError,
    ReceivedEvent,
    ServerError,
    ServerUnreachableError,
    TranslationClient,
    TranslationError,
    TransportError,
    Upload,
    WaitTimeoutError,
    WebhookReceiver,
    WebhookVerificationError,
    backoff_delay,
    floor_delay,
    hint_delay,
    retry_delay,
    verify_webhook,
)
from simulator.client.cli import (
    EXIT_API_ERROR,
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)

if TYPE_CHECKING:
    from simulator.client.aio import AsyncTranslationClient

__all__ = [
    "DEFAULT_URL",
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_JOB_FAILED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "TERMINAL_STATUSES",
    "APIError",
    "AsyncTranslationClient",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "Job",
    "JobFailedError",
    "NotFoundError",
    "Pacing",
    "ProtocolError",
    "RateLimitError",
    "ReceivedEvent",
    "ServerError",
    "ServerUnreachableError",
    "TranslationClient",
    "TranslationError",
    "TransportError",
    "Upload",
    "WaitTimeoutError",
    "WebhookReceiver",
    "WebhookVerificationError",
    "backoff_delay",
    "floor_delay",
    "hint_delay",
    "main",
    "retry_delay",
    "verify_webhook",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use (it imports httpx), as in simulator.client.
    if name == "AsyncTranslationClient":
        from simulator.client.aio import AsyncTranslationClient

        return AsyncTranslationClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
