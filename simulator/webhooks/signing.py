"""Every delivery is signed twice: Standard Webhooks headers and HeyGen's hex HMAC of the raw body.

- `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` — made by the `standardwebhooks`
  package (HMAC-SHA256 of `id.timestamp.body`); `webhook-id` stays the same on every retry, so receivers
  dedupe by it.
- `Signature: <hex>` — HMAC-SHA256 of the raw body keyed with the secret's text, as HeyGen's guide to
  processing webhook events verifies it.

Secrets: a secret that starts with `whsec_` is base64 after the prefix (Standard Webhooks' convention,
what this server makes); any other text (a WEBHOOK_SECRET you chose) keys the Standard Webhooks
signature with its UTF-8 bytes. `simulator.client.verify_webhook` reads secrets the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix Standard Webhooks secrets carry, not a secret


def new_secret() -> str:
    """Return a new signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def derived_secret(seed: str) -> str:
    """Return a `whsec_` secret derived from a stored random text (the same text gives the same secret)."""
    return SECRET_PREFIX + base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


@lru_cache(maxsize=1024)
def standard_webhook(secret: str) -> Webhook:
    """Return the `standardwebhooks` signer of a secret (cached: decoding it is per secret, not per delivery)."""
    return Webhook(secret if secret.startswith(SECRET_PREFIX) else secret.encode())


def heygen_signature(secret: str, body: bytes) -> str:
    """Return HeyGen's signature of a body: hex HMAC-SHA256 keyed with the secret's text."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, webhook_id: str, timestamp: float, body: bytes) -> dict[str, str]:
    """Return the headers of one delivery attempt: content type, both signatures, id and timestamp (epoch s)."""
    moment = datetime.fromtimestamp(int(timestamp), UTC)
    return {
        "Content-Type": "application/json",
        "User-Agent": "translation-simulator-webhooks/1",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": standard_webhook(secret).sign(webhook_id, moment, body.decode()),
        "Signature": heygen_signature(secret, body),
    }
