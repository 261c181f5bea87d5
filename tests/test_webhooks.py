"""Webhooks without sockets: the retry schedule, signatures, the outbox and the deliverer on a fake clock.

The deliverer's transport is its `send` seam (url, body, headers, timeout → Outcome): these tests answer as a
receiver would. Real sockets are in tests/test_webhooks_e2e.py.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import pytest

import config
from client import WebhookVerificationError, verify_webhook
from server import create_app
from simulator.settings import RuntimeConfig
from simulator.store.records import Endpoint
from simulator.webhooks.deliverer import Deliverer
from simulator.webhooks.events import Doorbell, Outbox
from simulator.webhooks.schedule import MAX_ATTEMPTS, RETRY_DELAYS, next_delay, parse_retry_after
from simulator.webhooks.sender import Outcome
from simulator.webhooks.service import WebhookService
from simulator.webhooks.signing import heygen_signature, new_secret, signed_headers
from tests.conftest import FAST, make_engine

SECRET = new_secret()
CALLBACK_SECRET = new_secret()
HOOK = "http://127.0.0.1:9/hook"
ADMIN = {"Authorization": "Bearer test-admin-token"}


# ------------------------------------------------------------------------------------ the schedule


@pytest.mark.parametrize("attempts", range(1, MAX_ATTEMPTS))
def test_each_retry_waits_the_standard_webhooks_delay_scaled_with_jitter(attempts):
    """After n failed attempts the wait is the n-th Standard Webhooks delay × scale, within ±20 %."""
    delay = next_delay(attempts, 0.1, random.Random(attempts))
    expected = RETRY_DELAYS[attempts - 1] * 0.1
    assert 0.8 * expected <= delay <= 1.2 * expected


def test_the_schedule_gives_up_after_eight_attempts():
    """Seven retries after the first attempt, then no more."""
    assert MAX_ATTEMPTS == 8
    assert next_delay(MAX_ATTEMPTS, 1.0, random.Random(0)) is None


def test_retry_after_is_honoured_and_capped():
    """A Retry-After longer than the schedule's delay wins, up to a day."""
    assert next_delay(1, 1.0, random.Random(0), retry_after=120) == 120
    assert next_delay(1, 1.0, random.Random(0), retry_after=10**9) == 86400
    assert next_delay(2, 1.0, random.Random(0), retry_after=1) >= 240


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), ("Fri, 15 Jan 2027 08:01:00 GMT", 60.0), ("soon", None), (None, None),
    ("Fri, 15 Jan 2027 07:00:00 GMT", 0.0),
])
def test_retry_after_is_read_as_seconds_or_a_date(value, seconds):
    """Retry-After may be seconds or an HTTP date (in the past: now); anything else is ignored."""
    assert parse_retry_after(value, 1_800_000_000.0) == seconds


# ------------------------------------------------------------------------------------ signatures


@pytest.mark.parametrize("secret", [SECRET, "my own plain secret"])
def test_a_signed_delivery_verifies_both_ways(secret):
    """Standard Webhooks headers and HeyGen's hex Signature both verify with the secret."""
    body = b'{"event_type":"video_translate.success","event_data":{"video_translate_id":"j1"}}'
    headers = signed_headers(secret, "msg_1", time.time(), body)
    assert verify_webhook(body, headers, secret)["event_data"]["video_translate_id"] == "j1"
    assert headers["Signature"] == heygen_signature(secret, body)
    assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize("tamper", ["body", "secret", "old", "no-headers", "heygen-only-wrong"])
def test_a_tampered_or_stale_delivery_is_refused(tamper):
    """A changed body, another secret, a timestamp older than five minutes or no signature is refused."""
    body = b'{"type":"job.completed"}'
    headers = signed_headers(SECRET, "msg_1", time.time() - (600 if tamper == "old" else 0), body)
    secret = new_secret() if tamper == "secret" else SECRET
    if tamper == "body":
        body = b'{"type":"job.cancelled"}'
    if tamper == "no-headers":
        headers = {}
    if tamper == "heygen-only-wrong":
        headers = {"Signature": "0" * 64}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, secret)


def test_heygens_signature_alone_is_enough():
    """A receiver written from HeyGen's docs checks only `Signature`; verify_webhook accepts that too."""
    body = b"{}"
    assert verify_webhook(body, {"Signature": heygen_signature(SECRET, body)}, SECRET) == {}


# ------------------------------------------------------------------------------------ the outbox


class Receiver:
    """A fake receiver for the deliverer's `send` seam: answers from a script, records what it got."""

    def __init__(self, *answers: Outcome) -> None:
        self.answers = list(answers)
        self.got: list[dict[str, Any]] = []
        self.arrived = threading.Event()  # set at the first delivery (for the tests of the deliverer's threads)

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
        self.got.append({"url": url, "body": json.loads(body), "headers": headers, "raw": body, "timeout": timeout})
        self.arrived.set()
        return self.answers.pop(0) if self.answers else Outcome(200)


def wire(clock, receiver=None, **settings: Any):
    """Return (engine, deliverer, webhook service): an engine whose outbox feeds a deliverer on the fake clock."""
    engine = make_engine(clock, **{"WEBHOOK_RETRY_SCALE": 1.0, **settings})
    doorbell = Doorbell()
    engine.observe_in_transaction(Outbox(engine.store, lambda job: f"http://sim.test/results/{job.job_id}", doorbell))
    deliverer = Deliverer(engine.store, engine.config, callback_secret=CALLBACK_SECRET, doorbell=doorbell,
                          clock=clock, rng=random.Random(1), send=receiver or Receiver())
    return engine, deliverer, WebhookService(engine.store, engine.config, clock, doorbell)


def endpoint(engine, user="alice", events=None, url=HOOK, endpoint_id="ep_1") -> Endpoint:
    """Register an endpoint directly in the store."""
    record = Endpoint(endpoint_id, user, url, SECRET, events, 0.0)
    with engine.store.transaction():
        engine.store.put_endpoint(record)
    return record


def deliveries(engine):
    """Return every delivery in the store."""
    with engine.store.transaction():
        return list(engine.store.deliveries())


@pytest.mark.usefixtures("each_store")
def test_a_finished_job_puts_its_deliveries_with_the_final_transition(clock):
    """A v2 job with a callback_url and an endpoint for all events makes three deliveries, due at the end."""
    engine, _, _ = wire(clock)
    endpoint(engine)
    meta = {"api": "v2", "callback_url": "http://127.0.0.1:9/cb", "callback_id": "c-1", "base_url": "http://x"}
    job, _ = engine.submit("premium", "alice", target_language="German", meta=meta)
    assert deliveries(engine) == []  # nothing until it ends
    clock.advance(10)
    engine.advance()
    made = {(d.endpoint_id, d.event_type): d for d in deliveries(engine)}
    assert set(made) == {(None, "video_translate.success"), ("ep_1", "video_translate.success"),
                         ("ep_1", "job.completed")}
    heygen = json.loads(made[(None, "video_translate.success")].payload)
    assert heygen == {"event_type": "video_translate.success",
                      "event_data": {"video_translate_id": job["job_id"], "url": heygen["event_data"]["url"],
                                     "callback_id": "c-1", "output_language": "German"}}
    native = json.loads(made[("ep_1", "job.completed")].payload)
    assert native["type"] == "job.completed" and native["data"]["status"] == "completed"
    assert all(d.next_attempt_at == clock.now - 5 and d.status == "pending" for d in made.values())


@pytest.mark.usefixtures("each_store")
def test_native_callbacks_get_the_native_event_and_failures_get_fail_events(clock):
    """A POST /translate callback gets job.permanently_failed; HeyGen's fail event carries the message."""
    engine, _, _ = wire(clock, ERROR_RATE=1.0, MAX_RETRIES=0)
    endpoint(engine, events=["video_translate.fail"])
    engine.submit("free", "alice", meta={"api": "native", "callback_url": "http://127.0.0.1:9/cb"})
    clock.advance(20)
    engine.advance()
    made = {(d.endpoint_id, d.event_type): json.loads(d.payload) for d in deliveries(engine)}
    assert set(made) == {(None, "job.permanently_failed"), ("ep_1", "video_translate.fail")}
    assert "gave up after 1 attempts" in made[("ep_1", "video_translate.fail")]["event_data"]["message"]


@pytest.mark.usefixtures("each_store")
def test_other_users_and_disabled_endpoints_get_nothing(clock):
    """Only the job's user's enabled endpoints receive its events."""
    engine, _, _ = wire(clock)
    endpoint(engine, user="bob", endpoint_id="ep_bob")
    disabled = endpoint(engine, endpoint_id="ep_off")
    disabled.status = "disabled"
    with engine.store.transaction():
        engine.store.put_endpoint(disabled)
    job, _ = engine.submit("free", "alice")
    engine.cancel(job["job_id"], "not needed")
    assert deliveries(engine) == []


# ------------------------------------------------------------------------------------ the deliverer


def finish_a_job(engine, clock) -> None:
    """Submit a premium job for alice and let it complete."""
    engine.submit("premium", "alice")
    clock.advance(10)
    engine.advance()


@pytest.mark.usefixtures("each_store")
def test_a_delivery_is_sent_signed_and_marked_succeeded(clock):
    """The receiver gets the payload with valid signatures and the same webhook-id as the log; it succeeds."""
    receiver = Receiver()
    engine, deliverer, _ = wire(clock, receiver)
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    assert deliverer.run_due() == 1
    (got,) = receiver.got
    assert verify_webhook(got["raw"], got["headers"], SECRET)["type"] == "job.completed"
    (done,) = deliveries(engine)
    assert (done.status, done.attempts, done.last_status_code) == ("succeeded", 1, 200)
    assert got["headers"]["webhook-id"] == done.delivery_id
    assert got["timeout"] == engine.settings.WEBHOOK_TIMEOUT


@pytest.mark.usefixtures("each_store")
def test_a_delivery_removed_by_a_reset_during_its_attempt_is_not_put_back(clock):
    """A reset while a delivery is being sent removes it for good: its outcome does not bring it back."""
    resets: list[Any] = []

    def send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
        resets[0]()  # POST /admin/reset arrives while the receiver is answering
        return Outcome(500, "HTTP 500")

    engine, deliverer, _ = wire(clock, send)
    resets.append(engine.reset)
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    assert deliverer.run_due() == 1
    assert deliveries(engine) == []
    assert deliverer.run_due() == 0


@pytest.mark.usefixtures("each_store")
def test_a_failed_delivery_is_retried_on_the_schedule_then_given_up(clock):
    """Failures are retried after the scheduled delays (not before); after the eighth attempt it is failed."""
    receiver = Receiver(*[Outcome(500, "HTTP 500")] * 8)
    engine, deliverer, _ = wire(clock, receiver, JOB_TTL=10**7)
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    for attempt in range(1, 9):
        assert deliverer.run_due() == 1, attempt
        (d,) = deliveries(engine)
        assert d.attempts == attempt
        if attempt < 8:
            wait = d.next_attempt_at - clock.now
            assert 0.8 * RETRY_DELAYS[attempt - 1] <= wait <= 1.2 * RETRY_DELAYS[attempt - 1]
            clock.advance(wait - 0.001)
            assert deliverer.run_due() == 0
            clock.advance(0.001)
    (d,) = deliveries(engine)
    assert (d.status, d.last_error) == ("failed", "HTTP 500")


@pytest.mark.usefixtures("each_store")
def test_a_retry_after_on_429_or_503_is_honoured(clock):
    """A 429 with Retry-After: 600 is not tried again for 600 s, though the schedule says 5 s."""
    engine, deliverer, _ = wire(clock, Receiver(Outcome(429, "HTTP 429", "600")))
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    deliverer.run_due()
    (d,) = deliveries(engine)
    assert d.next_attempt_at - clock.now == 600


@pytest.mark.usefixtures("each_store")
def test_a_410_disables_the_endpoint_and_its_other_deliveries_are_given_up(clock):
    """410 Gone fails the delivery without retry, disables the endpoint, and its next delivery is not sent."""
    receiver = Receiver(Outcome(410, "HTTP 410"))
    engine, deliverer, _ = wire(clock, receiver)
    endpoint(engine)  # all events: two deliveries per job
    finish_a_job(engine, clock)
    deliverer.run_due()
    assert len(receiver.got) == 1
    assert {d.status for d in deliveries(engine)} == {"failed"}
    with engine.store.transaction():
        assert engine.store.endpoint("ep_1").status == "disabled"
    assert any("endpoint is disabled" in (d.last_error or "") for d in deliveries(engine))


@pytest.mark.usefixtures("each_store")
def test_a_callback_answering_410_is_not_tried_again(clock):
    """A job's own callback_url that answers 410 is given up at once."""
    engine, deliverer, _ = wire(clock, Receiver(Outcome(410, "HTTP 410")))
    engine.submit("premium", "alice", meta={"api": "native", "callback_url": "http://127.0.0.1:9/cb"})
    clock.advance(10)
    engine.advance()
    deliverer.run_due()
    (d,) = deliveries(engine)
    assert (d.status, d.attempts) == ("failed", 1)


@pytest.mark.usefixtures("each_store")
def test_a_destination_no_longer_allowed_is_not_sent(clock):
    """If WEBHOOK_ALLOWED_HOSTS changed since, the delivery fails without being sent."""
    receiver = Receiver()
    engine, deliverer, _ = wire(clock, receiver)
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    engine.configure({"WEBHOOK_ALLOWED_HOSTS": "hooks.example.com"})
    deliverer.run_due()
    assert receiver.got == []
    (d,) = deliveries(engine)
    assert d.status == "failed" and "WEBHOOK_ALLOWED_HOSTS" in d.last_error


@pytest.mark.usefixtures("each_store")
def test_a_failed_delivery_can_be_retried_by_hand(clock):
    """An admin's retry makes a given-up delivery pending and due now; it is then delivered."""
    receiver = Receiver(*[Outcome(None, "ConnectionRefusedError")] * 8)
    engine, deliverer, service = wire(clock, receiver, WEBHOOK_RETRY_SCALE=0.0, JOB_TTL=10**7)
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    while deliverer.run_due():
        pass
    (d,) = deliveries(engine)
    assert d.status == "failed" and d.attempts == 8
    service.retry(d.delivery_id)
    assert deliverer.run_due() == 1
    (d,) = deliveries(engine)
    assert (d.status, d.attempts) == ("succeeded", 1)


@pytest.mark.usefixtures("each_store")
def test_finished_deliveries_leave_the_log_after_job_ttl(clock):
    """The log keeps a finished delivery for JOB_TTL seconds."""
    engine, deliverer, _ = wire(clock, JOB_TTL=100)
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    deliverer.run_due()
    clock.advance(101)
    deliverer.run_due()
    assert deliveries(engine) == []


def test_the_deliverer_thread_delivers_without_being_asked(clock):
    """Started, the deliverer sends a delivery as soon as the outbox rings, on its own threads."""
    receiver = Receiver()
    engine, deliverer, _ = wire(clock, receiver)
    endpoint(engine, events=["job.completed"])
    deliverer.start()
    try:
        finish_a_job(engine, clock)
        assert receiver.arrived.wait(5), "the deliverer's threads sent nothing"
    finally:
        deliverer.stop()
    assert len(receiver.got) == 1


# ------------------------------------------------------------------------------------ HTTP


@pytest.fixture
def app(clock):
    return create_app(FAST, clock=clock)


def key_for(client, user: str = "alice") -> dict[str, str]:
    """Issue a key and return the header presenting it."""
    response = client.post("/api-keys", json={"user_id": user, "role": "premium"}, headers=ADMIN)
    return {"X-Api-Key": response.get_json()["api_key"]}


def test_endpoint_add_answers_heygens_v1_shape_with_the_secret_once(client):
    """endpoint.add answers {code: 100, data: endpoint with secret}; endpoint.list shows it without the secret."""
    alice = key_for(client)
    added = client.post("/v1/webhook/endpoint.add", json={"url": HOOK, "events": ["video_translate.success"]},
                        headers=alice).get_json()
    assert (added["code"], added["msg"], added["message"]) == (100, None, None)
    data = added["data"]
    assert data["secret"].startswith("whsec_") and data["status"] == "enabled" and data["username"] == "alice"
    listed = client.get("/v1/webhook/endpoint.list", headers=alice).get_json()["data"]
    assert listed == [{**data, "secret": None}]
    assert client.get("/v1/webhook/endpoint.list", headers=key_for(client, "bob")).get_json()["data"] == []


def test_endpoint_delete_removes_only_the_callers_endpoint(client):
    """Another user cannot delete an endpoint (404); its owner can."""
    alice, bob = key_for(client), key_for(client, "bob")
    endpoint_id = client.post("/v1/webhook/endpoint.add", json={"url": HOOK}, headers=alice).get_json()["data"][
        "endpoint_id"]
    refused = client.delete(f"/v1/webhook/endpoint.delete?endpoint_id={endpoint_id}", headers=bob)
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "not_found"
    assert client.delete(f"/v1/webhook/endpoint.delete?endpoint_id={endpoint_id}", headers=alice).status_code == 200
    assert client.get("/v1/webhook/endpoint.list", headers=alice).get_json()["data"] == []


def test_webhook_list_names_the_event_types(client):
    """webhook.list lists HeyGen's and the native event types."""
    types = client.get("/v1/webhook/webhook.list", headers=key_for(client)).get_json()["data"]
    assert types == ["video_translate.success", "video_translate.fail", "job.completed", "job.permanently_failed",
                     "job.cancelled"]


@pytest.mark.parametrize(("body", "param"), [
    ({}, "url"),
    ({"url": "https://example.com/hook"}, "url"),
    ({"url": "ftp://127.0.0.1/hook"}, "url"),
    ({"url": HOOK, "events": ["avatar_video.success"]}, "events"),
    ({"url": HOOK, "events": "video_translate.success"}, "events"),
    ({"url": HOOK, "secret": "mine"}, "secret"),
])
def test_endpoint_add_refuses_bad_bodies_in_heygens_envelope(client, body, param):
    """A URL that is not allowed, an unknown event or field is HeyGen's 400 invalid_parameter naming it."""
    response = client.post("/v1/webhook/endpoint.add", json=body, headers=key_for(client))
    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == param and response.get_json()["data"] is None


def test_endpoint_routes_need_a_key(client):
    """Without X-Api-Key the endpoint routes are HeyGen's 401."""
    response = client.get("/v1/webhook/endpoint.list")
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_post_translate_takes_a_callback_url_only_to_allowed_hosts(client):
    """callback_url outside WEBHOOK_ALLOWED_HOSTS is a 422 naming the setting; a loopback one is accepted."""
    refused = client.post("/translate", json={"callback_url": "https://example.com/hook"})
    assert refused.status_code == 422 and "WEBHOOK_ALLOWED_HOSTS" in refused.get_json()["detail"]
    assert client.post("/translate", json={"callback_url": HOOK}).status_code == 202


def test_the_delivery_log_filters_and_retries(app, clock):
    """GET /webhooks/deliveries filters by job, endpoint and outcome; POST …/retry makes one pending again."""
    client = app.test_client()
    alice = key_for(client)
    client.post("/v1/webhook/endpoint.add", json={"url": HOOK, "events": ["job.completed"]}, headers=alice)
    first = client.post("/translate", headers=alice).get_json()["job_id"]
    client.post("/translate", json={"callback_url": HOOK}, headers=alice)
    clock.advance(30)
    log = client.get("/webhooks/deliveries", headers=ADMIN).get_json()
    assert log["total"] == 3 and {d["status"] for d in log["deliveries"]} == {"pending"}
    mine = client.get(f"/webhooks/deliveries?job_id={first}", headers=ADMIN).get_json()["deliveries"]
    assert len(mine) == 1 and mine[0]["event_type"] == "job.completed"
    assert client.get("/webhooks/deliveries?outcome=succeeded", headers=ADMIN).get_json()["total"] == 0
    assert client.get("/webhooks/deliveries?outcome=lost", headers=ADMIN).status_code == 400
    retried = client.post(f"/webhooks/deliveries/{mine[0]['delivery_id']}/retry", headers=ADMIN).get_json()
    assert retried["delivery"]["status"] == "pending" and retried["delivery"]["webhook_id"] == mine[0]["webhook_id"]
    assert client.post("/webhooks/deliveries/msg_nope/retry", headers=ADMIN).status_code == 404
    assert client.get("/webhooks/deliveries").status_code == 401


def test_a_deleted_endpoints_delivery_cannot_be_retried(app, clock):
    """Retrying a delivery whose endpoint is gone is 409 endpoint_unavailable."""
    client = app.test_client()
    alice = key_for(client)
    endpoint_id = client.post("/v1/webhook/endpoint.add", json={"url": HOOK}, headers=alice).get_json()["data"][
        "endpoint_id"]
    client.post("/translate", headers=alice)
    clock.advance(30)
    client.get("/healthz")
    delivery_id = client.get("/webhooks/deliveries", headers=ADMIN).get_json()["deliveries"][0]["delivery_id"]
    client.delete(f"/v1/webhook/endpoint.delete?endpoint_id={endpoint_id}", headers=alice)
    response = client.post(f"/webhooks/deliveries/{delivery_id}/retry", headers=ADMIN)
    assert response.status_code == 409 and response.get_json()["code"] == "endpoint_unavailable"


def test_the_callback_secret_is_kept_in_the_store_unless_configured(tmp_path):
    """Unset, WEBHOOK_SECRET is derived from a store secret (the same after a restart); set, it is used."""
    store_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    first = create_app({**FAST, "STORE": store_url}).extensions["simulator"]
    secret = first.webhooks.callback_secret
    first.engine.store.close()
    again = create_app({**FAST, "STORE": store_url}).extensions["simulator"]
    assert again.webhooks.callback_secret == secret and again.webhooks.callback_secret_generated
    again.engine.store.close()
    chosen = create_app({**FAST, "WEBHOOK_SECRET": "whsec_Y2hvc2Vu"}).extensions["simulator"]
    assert chosen.webhooks.callback_secret == "whsec_Y2hvc2Vu" and not chosen.webhooks.callback_secret_generated


def test_settings_reach_the_deliverer_at_runtime(clock):
    """A POST /config change of WEBHOOK_TIMEOUT is used by the next attempt."""
    receiver = Receiver()
    engine, deliverer, _ = wire(clock, receiver)
    endpoint(engine, events=["job.completed"])
    finish_a_job(engine, clock)
    engine.configure({"WEBHOOK_TIMEOUT": 2.5})
    deliverer.run_due()
    assert receiver.got[0]["timeout"] == 2.5


def test_runtime_config_is_shared_not_copied():
    """The deliverer reads the engine's RuntimeConfig, so nothing needs to be told about a change."""
    runtime = RuntimeConfig(config.from_mapping(FAST))
    deliverer = Deliverer(None, runtime, callback_secret=CALLBACK_SECRET)  # type: ignore[arg-type]
    runtime.update({"WEBHOOK_RETRY_SCALE": 0.5})
    assert deliverer._config.current.WEBHOOK_RETRY_SCALE == 0.5
