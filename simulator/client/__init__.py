"""The translation simulator's client library: TranslationClient (requests) and AsyncTranslationClient (httpx).

    from simulator.client import TranslationClient      # or, as before: from client import TranslationClient
    with TranslationClient("http://127.0.0.1:4777", user_id="alice") as tc:
        job = tc.translate(role="premium", timeout=60)

Waiting is the point: long-poll when the server holds requests, else sleep on its hints, else back off;
never spin (a floor between requests, growing with failures), never overrun the caller's deadline, and
never retry an answer that is not this API's. The modules: errors, job, protocol (what to send and what
answers mean), pacing and waiting (when to send, shared by both clients), cutoff (a total budget per
request for requests), sync, aio, progress and cli.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulator.client.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobFailedError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    TranslationError,
    TransportError,
    WaitTimeoutError,
)
from simulator.client.job import TERMINAL_STATUSES, Job
from simulator.client.pacing import Pacing, backoff_delay, floor_delay, hint_delay, retry_delay
from simulator.client.sync import DEFAULT_URL, TranslationClient
from simulator.client.transfer import Upload
from simulator.client.webhooks import ReceivedEvent, WebhookReceiver, WebhookVerificationError, verify_webhook

if TYPE_CHECKING:
    from simulator.client.aio import AsyncTranslationClient

__all__ = [
    "DEFAULT_URL",
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
    "retry_delay",
    "verify_webhook",
]


def __getattr__(name: str) -> Any:
    # The async client is imported on first use, so that the sync client and the CLI do not load httpx.
    if name == "AsyncTranslationClient":
        from simulator.client.aio import AsyncTranslationClient

        return AsyncTranslationClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
