"""Receiving the simulator's webhooks: `verify_webhook`, and a small `WebhookReceiver` for tests and the CLI.

Every delivery carries two signatures over the raw body, checked here against the endpoint's secret:

- Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), verified with the
  `standardwebhooks` package, which also refuses a timestamp more than five minutes off;
- HeyGen's `Signature`: the hex HMAC-SHA256 of the body keyed with the secret's text.

A secret that starts with `whsec_` is base64 after the prefix (Standard Webhooks' convention, what the
server makes); any other text (a WEBHOOK_SECRET you chose) keys the Standard Webhooks signature with its
UTF-8 bytes, as the server signs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as _StandardError

from simulator.client.errors import TranslationError

MAX_BODY_BYTES = 1024 * 1024
_PREFIX = "whsec_"


class WebhookVerificationError(TranslationError):
    """A webhook's signatures are missing, wrong or too old: do not trust its body."""


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """Check a webhook's signatures against `secret` and return its event; raise WebhookVerificationError.

    Every signature present must be valid, and at least one must be: the Standard Webhooks headers, HeyGen's
    `Signature`, or (as the simulator sends) both.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lower = {name.lower(): value for name, value in headers.items()}
    checked = False
    if any(name in lower for name in ("webhook-id", "webhook-timestamp", "webhook-signature")):
        try:
            Webhook(secret if secret.startswith(_PREFIX) else secret.encode()).verify(raw.decode(), lower,
                                                                                      json_parse=False)
        except (_StandardError, ValueError, UnicodeDecodeError) as e:
            raise WebhookVerificationError(f"Standard Webhooks signature refused: {e}") from None
        checked = True
    if "signature" in lower:
        expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), lower["signature"].strip().encode("utf-8", "replace")):
            raise WebhookVerificationError("Signature (HeyGen's HMAC of the body) does not match")
        checked = True
    if not checked:
        raise WebhookVerificationError("the request carries no webhook signature")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise WebhookVerificationError(f"the body is not JSON: {e}") from None


@dataclass(frozen=True)
class ReceivedEvent:
    """One verified event: its webhook-id, type, payload and when it arrived (epoch s)."""

    webhook_id: str | None
    event_type: str | None
    event: dict[str, Any]
    received_at: float
    headers: dict[str, str] = field(repr=False)


def event_type_of(event: Mapping[str, Any]) -> str | None:
    """Return an event's type: HeyGen's `event_type` or Standard Webhooks' `type`."""
    return event.get("event_type") or event.get("type")


class WebhookReceiver:
    """An HTTP server that verifies, dedupes (by webhook-id) and keeps the webhooks it receives.

        with WebhookReceiver(secret) as receiver:              # listens on 127.0.0.1, a free port
            ... register receiver.url, let jobs finish ...
            events = receiver.wait_for(2, timeout=10)

    It answers 200 to a verified event (a duplicate too: at-least-once delivery repeats), 401 to a bad
    signature, and 200 to OPTIONS (HeyGen checks an endpoint that way). `on_event(event)` is called once
    per new event, from the server's threads.
    """

    def __init__(
        self,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: Callable[[ReceivedEvent], None] | None = None,
    ) -> None:
        self.secret = secret
        self.on_event = on_event
        self.events: list[ReceivedEvent] = []
        self.duplicates = 0
        self.rejected = 0
        self._seen: set[str] = set()
        self._condition = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the port it listens on."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Return the URL to register (`http://host:port/webhooks`)."""
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}/webhooks"

    def start(self) -> WebhookReceiver:
        """Start serving in a background thread; return self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (if it was started) and close the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float) -> list[ReceivedEvent]:
        """Wait until `count` distinct events arrived (or `timeout` seconds passed); return those received."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.events) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._condition.wait(left)
            return list(self.events)

    def _accept(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            event = verify_webhook(body, headers, self.secret)
        except WebhookVerificationError:
            with self._condition:
                self.rejected += 1
            return 401
        webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id")
        received = ReceivedEvent(webhook_id, event_type_of(event), event, time.time(), headers)
        with self._condition:
            if webhook_id is not None and webhook_id in self._seen:
                self.duplicates += 1
                return 200
            if webhook_id is not None:
                self._seen.add(webhook_id)
            self.events.append(received)
            self._condition.notify_all()
        if self.on_event is not None:
            self.on_event(received)
        return 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep connections alive: the deliverer reuses them

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._answer(413)
                    self.close_connection = True
                    return
                body = self.rfile.read(length)
                self._answer(receiver._accept(body, dict(self.headers.items())))

            def do_OPTIONS(self) -> None:
                self._answer(200)

            def _answer(self, status: int) -> None:
                payload = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
