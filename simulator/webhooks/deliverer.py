"""The deliverer: threads that send due deliveries from the outbox and log each try.

Started by `python server.py` (like the ticker), never by a request: a request thread never waits for a
webhook. Each of WEBHOOK_WORKERS threads claims the earliest due delivery (taking it off the due index, so
no other thread sends it), sends it (`Sender`: a timeout, no redirects, a bounded read), records what
happened, and claims the next; with nothing due it sleeps until the next delivery is due or the outbox
rings, and at most one second: on a shared store (Redis) that is how a delivery another process filed (whose
ring this process does not hear) is picked up, at its due time or within a second. The claim is atomic in the
store, so with several processes each delivery is still claimed by one thread of one process. What an attempt
gets:

- 2xx: `succeeded`.
- 410 Gone: `failed`; a registered endpoint is disabled (its other deliveries are given up when their turn
  comes); a job's own callback_url is simply not tried again.
- anything else (3xx, 4xx, 5xx, a timeout, a refused connection): tried again after the next delay of the
  Standard Webhooks schedule (`schedule`), at least the receiver's Retry-After on 429 and 503; after the
  eighth attempt `failed`.

A delivery is marked only after its attempt, so if the process dies mid-way it is sent again after a
restart (at least once; receivers dedupe by `webhook-id`). Finished deliveries are kept in the log for
JOB_TTL seconds. A delivery that a reset (`POST /admin/reset`) removed while its attempt was in flight is
not put back: its outcome is dropped with it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from simulator.clock import Clock, system_clock
from simulator.settings import RuntimeConfig
from simulator.store.records import Delivery
from simulator.webhooks.events import Doorbell
from simulator.webhooks.hosts import check_destination, parse_allowed_hosts
from simulator.webhooks.schedule import next_delay, parse_retry_after
from simulator.webhooks.sender import Outcome, Sender
from simulator.webhooks.signing import signed_headers

if TYPE_CHECKING:
    from simulator.store.base import Store

log = logging.getLogger("server.webhooks")

Send = Callable[[str, bytes, dict[str, str], float], Outcome]
PRUNE_EVERY = 60.0  # seconds between removals of old finished deliveries


class Deliverer:
    """Sends due deliveries on `workers` threads; `run_due` does one round synchronously (for tests)."""

    def __init__(
        self,
        store: Store,
        config: RuntimeConfig,
        *,
        callback_secret: str,
        doorbell: Doorbell | None = None,
        workers: int = 16,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        send: Send | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._callback_secret = callback_secret
        self.doorbell = doorbell or Doorbell()
        self._workers = workers
        self._clock = clock or system_clock()
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._rng_lock = threading.Lock()
        self._sender = Sender()
        self._send = send or self._sender.post
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_prune = float("-inf")

    # ---------------------------------------------------------------- the threads

    def start(self) -> Deliverer:
        """Start the worker threads; return self."""
        self._threads = [threading.Thread(target=self._work, name=f"webhook-worker-{n}", daemon=True)
                         for n in range(self._workers)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming deliveries and let the attempts in flight finish (up to `timeout` s in all)."""
        self._stop.set()
        self.doorbell.ring()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        """Claim, send and record deliveries one at a time; sleep while none is due."""
        try:
            self._work_until_stopped()
        finally:
            self._sender.close()  # this thread's kept-alive connections

    def _work_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self._claim(1)
                if claimed:
                    self._deliver_safely(claimed[0])
                    continue
                with self._store.transaction():
                    due = self._store.next_delivery_due()
                wait = 1.0 if due is None else min(1.0, max(0.0, due - self._clock()))
            except Exception:  # pragma: no cover - a worker must keep going whatever happens
                log.exception("webhook worker step failed")
                wait = 1.0
            self.doorbell.wait(wait)

    def _deliver_safely(self, delivery: Delivery) -> None:
        try:
            self.deliver(delivery)
        except Exception:  # pragma: no cover - a delivery must never be dropped by a bug
            log.exception("webhook delivery %s failed", delivery.delivery_id)
            with self._store.transaction():
                self._put_back(delivery)  # back on the due index, to be tried again

    # ---------------------------------------------------------------- one round, and one delivery

    def run_due(self) -> int:
        """Deliver every delivery due now, one after the other, in this thread; return how many were tried."""
        claimed = self._claim(1_000_000)
        for delivery in claimed:
            self.deliver(delivery)
        return len(claimed)

    def _claim(self, limit: int) -> list[Delivery]:
        """Take up to `limit` due deliveries off the due index (now and then, forget old finished ones)."""
        now = self._clock()
        with self._store.transaction():
            claimed = self._store.claim_due_deliveries(now, limit)
            if now - self._last_prune >= PRUNE_EVERY:
                self._last_prune = now
                self._store.prune_deliveries(now - self._config.current.JOB_TTL)
        return claimed

    def deliver(self, delivery: Delivery) -> None:
        """Make one attempt of a claimed delivery and record its outcome."""
        settings = self._config.current
        with self._store.transaction():
            endpoint = None if delivery.endpoint_id is None else self._store.endpoint(delivery.endpoint_id)
        if delivery.endpoint_id is not None and (endpoint is None or endpoint.status != "enabled"):
            state = "was deleted" if endpoint is None else "is disabled"
            return self._give_up(delivery, f"the endpoint {state}")
        why = check_destination(delivery.url, parse_allowed_hosts(settings.WEBHOOK_ALLOWED_HOSTS))
        if why is not None:
            return self._give_up(delivery, f"the URL {why}")
        secret = endpoint.secret if endpoint is not None else self._callback_secret
        body = delivery.payload.encode()
        headers = signed_headers(secret, delivery.delivery_id, self._wall_clock(), body)
        outcome = self._send(delivery.url, body, headers, settings.WEBHOOK_TIMEOUT)
        self.record(delivery, outcome)

    def record(self, delivery: Delivery, outcome: Outcome) -> None:
        """Write what an attempt got: succeeded, scheduled again, or given up (and a 410 endpoint disabled)."""
        now = self._clock()
        with self._store.transaction():  # the record is the store's own object: change it only while holding it
            delivery.attempts += 1
            delivery.last_attempt_at = now
            delivery.last_status_code = outcome.status
            delivery.last_error = outcome.error
            if outcome.delivered:
                self._finish(delivery, "succeeded", now)
            elif outcome.status == 410:
                self._finish(delivery, "failed", now)
                delivery.last_error = "410 Gone: the receiver asked not to be sent this again"
                if delivery.endpoint_id is not None:
                    self._disable(delivery.endpoint_id)
            else:
                retry_after = None
                if outcome.status in (429, 503):
                    retry_after = parse_retry_after(outcome.retry_after, self._wall_clock())
                with self._rng_lock:
                    delay = next_delay(delivery.attempts, self._config.current.WEBHOOK_RETRY_SCALE, self._rng,
                                       retry_after)
                if delay is None:
                    self._finish(delivery, "failed", now)
                else:
                    delivery.next_attempt_at = now + delay
            self._put_back(delivery)

    def _give_up(self, delivery: Delivery, reason: str) -> None:
        with self._store.transaction():
            delivery.last_error = f"not sent: {reason}"
            self._finish(delivery, "failed", self._clock())
            self._put_back(delivery)

    def _put_back(self, delivery: Delivery) -> None:
        """Store a claimed delivery's new state, unless a reset removed it meanwhile (in a transaction)."""
        if self._store.delivery(delivery.delivery_id) is not None:
            self._store.put_delivery(delivery)

    @staticmethod
    def _finish(delivery: Delivery, status: str, now: float) -> None:
        delivery.status, delivery.finished_at, delivery.next_attempt_at = status, now, None

    def _disable(self, endpoint_id: str) -> None:
        endpoint = self._store.endpoint(endpoint_id)
        if endpoint is not None and endpoint.status == "enabled":
            endpoint.status = "disabled"
            endpoint.disabled_reason = "the endpoint answered 410 Gone"
            self._store.put_endpoint(endpoint)
            log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint_id)
