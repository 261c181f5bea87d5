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

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    per new event, from the receiver's thread. It is a small HTTP/1.1 server on asyncio (keep-alive,
    Content-Length bodies up to 1 MiB) in a thread of its own: several thousand events a second on one
    core, so that a benchmark measures the sender, not the receiver.
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
        self._socket = socket.create_server((host, port))  # bound now: the port is known, a clash raises here
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    @property
    def port(self) -> int:
        """Return the port it listens on."""
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        """Return the URL to register (`http://host:port/webhooks`)."""
        host = self._socket.getsockname()[0]
        return f"http://{host}:{self.port}/webhooks"

    def start(self) -> WebhookReceiver:
        """Start serving in a background thread; return self."""
        self._thread = threading.Thread(target=self._run, name="webhook-receiver", daemon=True)
        self._thread.start()
        self._started.wait(5)
        return self

    def stop(self) -> None:
        """Stop serving (if it was started) and close the port."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._thread = None
        self._socket.close()

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
        webhook_id = headers.get("webhook-id")
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

    # ---------------------------------------------------------------- the server

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(asyncio.start_server(self._serve, sock=self._socket,
                                                                  limit=MAX_HEAD_BYTES))
            self._started.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
            self._started.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the requests of one connection, keeping it open between them."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request = _parse_head(head)
                if request is None:
                    return await _respond(writer, 400, close=True)
                method, version, headers = request
                length = headers.get("content-length", "0")
                if "transfer-encoding" in headers:
                    return await _respond(writer, 411, close=True)  # webhooks come with a Content-Length
                if not length.isdigit():
                    return await _respond(writer, 400, close=True)
                if int(length) > MAX_BODY_BYTES:
                    return await _respond(writer, 413, close=True)
                body = await reader.readexactly(int(length)) if int(length) else b""
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                if method == "POST":
                    status = self._accept(body, headers)
                elif method == "OPTIONS":
                    status = 200
                else:
                    status = 405
                await _respond(writer, status, close=close)
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


MAX_HEAD_BYTES = 64 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed", 411: "Length Required",
            413: "Content Too Large"}


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """Return (method, HTTP version, headers with lower-case names) of a request head, or None if malformed."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, _, version = lines[0].split(" ")
    except ValueError:
        return None
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            return None
        headers[name.strip().lower()] = value.strip()
    return method, version, headers


async def _respond(writer: asyncio.StreamWriter, status: int, *, close: bool = False) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", "Content-Type: application/json", "Content-Length: 2"]
    if close:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n{}").encode())
    await writer.drain()
