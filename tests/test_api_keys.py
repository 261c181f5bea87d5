"""API keys: issuing, hashing, revoking, seeding from a file, and the rules of AUTH_MODE on the native routes."""

from __future__ import annotations

import json

import pytest

import config
from server import create_app
from simulator.auth.access import AccessDenied, Caller
from simulator.auth.keys import KeyRing, Principal, load_keys_file
from simulator.auth.throttle import FailureThrottle
from tests.conftest import FAST, make_store

ADMIN = {"Authorization": "Bearer test-admin-token"}


def issue(client, user: str = "alice", role: str = "free") -> str:
    """Issue a key through POST /api-keys and return the key itself."""
    response = client.post("/api-keys", json={"user_id": user, "role": role}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["api_key"]


def key(api_key: str) -> dict[str, str]:
    """Return the header that presents `api_key`."""
    return {"X-Api-Key": api_key}


@pytest.fixture
def keys_client(clock):
    """A test client of an app in AUTH_MODE=keys."""
    return create_app({**FAST, "AUTH_MODE": "keys"}, clock=clock).test_client()


# ------------------------------------------------------------------------------------ the key ring


@pytest.mark.usefixtures("each_store")
def test_an_issued_key_verifies_and_is_stored_only_as_a_keyed_hash(clock):
    """The key authenticates its user and role; the store holds its HMAC, never the key."""
    store = make_store()
    ring = KeyRing(store, clock)
    record, api_key = ring.issue("alice", "premium")
    assert api_key.startswith("sk_sim_") and len(api_key) > 40
    assert ring.verify(api_key) == Principal("alice", "premium", record.key_id)
    with store.transaction():
        (stored,) = store.api_keys()
    assert api_key not in stored.digest and stored.digest == ring.digest(api_key)
    assert ring.verify(api_key[:-1] + ("A" if api_key[-1] != "A" else "B")) is None


@pytest.mark.usefixtures("each_store")
def test_a_revoked_key_no_longer_verifies(clock):
    """After revoking, the key is refused and no longer listed."""
    ring = KeyRing(make_store(), clock)
    record, api_key = ring.issue("alice", "free")
    assert ring.revoke(record.key_id).user_id == "alice"
    assert ring.verify(api_key) is None
    assert ring.keys() == []
    assert ring.revoke(record.key_id) is None


def test_the_hash_is_keyed_by_the_stores_secret(clock):
    """The same key hashes differently in another store (a leaked key table cannot be tested offline)."""
    assert KeyRing(make_store(), clock).digest("sk_sim_same-key-123456") != \
        KeyRing(make_store(), clock).digest("sk_sim_same-key-123456")


@pytest.mark.parametrize("presented", ["", "short", "x" * 300, "has space in it 123", "non-ascii-ключ-123456"])
def test_malformed_keys_are_refused_without_lookup(clock, presented):
    """Keys that cannot be keys (length, spaces, non-ASCII) are simply not valid."""
    assert KeyRing(make_store(), clock).verify(presented) is None


@pytest.mark.usefixtures("each_store")
def test_seeding_from_a_file_is_idempotent(clock, tmp_path):
    """API_KEYS_FILE's keys work as given; seeding again changes nothing."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"api_key": "alice-secret-key-0001", "user_id": "alice", "role": "premium"},
                                {"api_key": "bob-secret-key-000002", "user_id": "bob"}]))
    ring = KeyRing(make_store(), clock)
    assert ring.seed(load_keys_file(path)) == 2
    first = [(k.key_id, k.created_at) for k in ring.keys()]
    clock.advance(5)
    ring.seed(load_keys_file(path))
    assert [(k.key_id, k.created_at) for k in ring.keys()] == first
    assert ring.verify("alice-secret-key-0001").role == "premium"
    assert ring.verify("bob-secret-key-000002").role == "free"


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not valid JSON"),
    ('{"api_key": "x"}', "JSON list"),
    ('["key"]', "entry 0 must be an object"),
    ('[{"api_key": "short", "user_id": "a"}]', "api_key must be"),
    ('[{"api_key": "long-enough-key-0001", "user_id": ""}]', "user_id must be"),
    ('[{"api_key": "long-enough-key-0001", "user_id": "a", "role": "gold"}]', "role must be one of"),
    ('[{"api_key": "long-enough-key-0001", "user_id": "a", "extra": 1}]', "unknown field extra"),
    ('[{"api_key": "long-enough-key-0001", "user_id": "a"}, {"api_key": "long-enough-key-0001", "user_id": "b"}]',
     "listed twice"),
])
def test_a_bad_keys_file_is_refused_with_a_reason(tmp_path, content, message):
    """A keys file that cannot be used is refused, saying which entry and what is wrong."""
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_keys_file(path)


def test_a_bad_keys_file_stops_the_app_with_a_config_error(tmp_path):
    """create_app refuses a keys file that cannot be read, naming API_KEYS_FILE."""
    with pytest.raises(config.ConfigError) as caught:
        create_app({**FAST, "API_KEYS_FILE": str(tmp_path / "missing.json")})
    assert "API_KEYS_FILE" in caught.value.errors


# ------------------------------------------------------------------------------------ the throttle


def test_the_throttle_refuses_a_client_after_the_limit_for_the_rest_of_the_minute(clock):
    """After `limit` failures in a minute a client must wait until the oldest is a minute old; others may go on."""
    throttle = FailureThrottle(clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1", 3) is None
        throttle.failed("10.0.0.1")
        clock.advance(10)
    assert throttle.retry_after("10.0.0.1", 3) == 30
    assert throttle.retry_after("10.0.0.2", 3) is None
    clock.advance(30)
    assert throttle.retry_after("10.0.0.1", 3) is None


# ------------------------------------------------------------------------------------ the access rules


def test_a_key_decides_the_user_and_role_of_a_submission():
    """With a key, the key's user and role are used; a declared role below the key's is allowed."""
    caller = Caller(Principal("alice", "premium", "k"))
    assert caller.submitter(None, None, "10.0.0.1") == ("alice", "premium")
    assert caller.submitter("alice", "free", "10.0.0.1") == ("alice", "free")
    assert Caller(None).submitter(None, None, "10.0.0.1") == ("10.0.0.1", "free")


@pytest.mark.parametrize(("declared_user", "declared_role", "code"), [
    ("mallory", None, "user_mismatch"),
    (None, "premium", "premium_not_allowed"),
])
def test_a_declaration_that_disagrees_with_the_key_is_refused(declared_user, declared_role, code):
    """Another user's X-User-Id, or premium with a free key, is refused with its own code."""
    with pytest.raises(AccessDenied) as caught:
        Caller(Principal("alice", "free", "k")).submitter(declared_user, declared_role, "10.0.0.1")
    assert caught.value.code == code


def test_who_sees_what():
    """Keys mode scopes a key to its user, the admin sees all, open mode sees all, HeyGen routes always scope."""
    alice = Principal("alice", "free", "k")
    assert Caller(alice, keys_mode=True).scope == "alice"
    assert Caller(alice, admin=True, keys_mode=True).scope is None
    assert Caller(alice).scope is None
    assert Caller(alice, heygen=True).scope == "alice"
    assert Caller(None, admin=True, keys_mode=True).scope is None


# ------------------------------------------------------------------------------------ HTTP: /api-keys


def test_post_api_keys_shows_the_key_once_and_get_lists_it_without_secrets(client):
    """POST answers 201 with the key; GET lists key_id, user, role and date, never the key or its hash."""
    response = client.post("/api-keys", json={"user_id": "alice", "role": "premium"}, headers=ADMIN)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"key_id", "api_key", "user_id", "role", "created_at"}
    assert response.headers["Location"] == f"/api-keys/{body['key_id']}"
    listed = client.get("/api-keys", headers=ADMIN).get_json()
    assert listed["count"] == 1
    assert listed["keys"][0] == {"key_id": body["key_id"], "user_id": "alice", "role": "premium",
                                 "created_at": body["created_at"], "source": "issued"}
    assert body["api_key"] not in json.dumps(listed)


def test_delete_api_key_revokes_it(client):
    """A revoked key gets 401 invalid_api_key; revoking an unknown key is 404."""
    api_key = issue(client)
    key_id = client.get("/api-keys", headers=ADMIN).get_json()["keys"][0]["key_id"]
    assert client.delete(f"/api-keys/{key_id}", headers=ADMIN).status_code == 200
    response = client.get("/jobs", headers=key(api_key))
    assert response.status_code == 401 and response.get_json()["code"] == "invalid_api_key"
    assert client.delete(f"/api-keys/{key_id}", headers=ADMIN).get_json()["code"] == "key_not_found"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "user_id"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "alice", "role": "gold"}, "role"),
    ({"user_id": "alice", "extra": 1}, "extra"),
])
def test_post_api_keys_refuses_bad_bodies(client, body, field):
    """A key needs a user id and a known role; the 422 names the field."""
    response = client.post("/api-keys", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == field


def test_api_keys_are_admin_only(client):
    """Without the admin token, /api-keys is 401."""
    assert client.get("/api-keys").status_code == 401
    assert client.post("/api-keys", json={"user_id": "a"}).status_code == 401


# ------------------------------------------------------------------------------------ HTTP: open mode


def test_open_mode_without_a_key_is_as_before(client):
    """In open mode X-User-Id and a declared role are trusted, with no key at all."""
    response = client.post("/translate", json={"role": "premium"}, headers={"X-User-Id": "bob"})
    assert response.status_code == 202
    assert (response.get_json()["user_id"], response.get_json()["role"]) == ("bob", "premium")


def test_in_open_mode_a_key_decides_user_and_role(client):
    """A key works in open mode too: its user and role, whatever X-User-Id would have said."""
    api_key = issue(client, "alice", "premium")
    job = client.post("/translate", headers=key(api_key)).get_json()
    assert (job["user_id"], job["role"]) == ("alice", "premium")


def test_a_wrong_key_is_refused_even_in_open_mode(client):
    """A key that is sent must be valid: 401 problem+json naming the problem."""
    response = client.post("/translate", headers=key("sk_sim_not-a-real-key-at-all"))
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "invalid_api_key"
    assert "X-Api-Key" in response.headers["WWW-Authenticate"]


def test_a_free_key_asking_for_premium_gets_403(client):
    """role premium with a free key is refused, and no job is made."""
    api_key = issue(client, "alice", "free")
    response = client.post("/translate", json={"role": "premium"}, headers=key(api_key))
    assert response.status_code == 403 and response.get_json()["code"] == "premium_not_allowed"
    assert client.get("/healthz").get_json()["jobs"] == 0


def test_another_users_x_user_id_with_a_key_gets_403(client):
    """X-User-Id naming someone else than the key's user is refused."""
    api_key = issue(client, "alice")
    response = client.post("/translate", headers={**key(api_key), "X-User-Id": "mallory"})
    assert response.status_code == 403 and response.get_json()["code"] == "user_mismatch"


def test_the_hourly_limit_follows_the_keys_user_not_x_user_id(client):
    """Changing X-User-Id no longer dodges the limit: with a key, the key's user is counted."""
    api_key = issue(client, "alice")
    for _ in range(5):
        assert client.post("/translate", headers=key(api_key)).status_code == 202
    assert client.post("/translate", headers=key(api_key)).status_code == 429
    # Without the key, in open mode, "alice" declared by header is the same user: also limited.
    assert client.post("/translate", headers={"X-User-Id": "alice"}).status_code == 429


def test_repeated_wrong_keys_from_one_client_get_429(clock):
    """After AUTH_FAILURE_LIMIT wrong keys in a minute the client gets 429 with Retry-After, even with a good key."""
    client = create_app({**FAST, "AUTH_FAILURE_LIMIT": 3}, clock=clock).test_client()
    good = issue(client)
    for _ in range(3):
        assert client.get("/jobs", headers=key("sk_sim_wrong-key-0000000000")).status_code == 401
    refused = client.get("/jobs", headers=key(good))
    assert refused.status_code == 429 and refused.get_json()["code"] == "too_many_auth_failures"
    assert int(refused.headers["Retry-After"]) == 60
    assert client.get("/jobs").status_code == 200  # a request without a key is not throttled
    clock.advance(60)
    assert client.get("/jobs", headers=key(good)).status_code == 200


# ------------------------------------------------------------------------------------ HTTP: keys mode


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/translate"), ("get", "/status/00000000-0000-4000-8000-000000000000"), ("get", "/status"),
    ("get", "/jobs"), ("get", "/queue"), ("get", "/config"),
])
def test_keys_mode_needs_a_key_on_every_non_admin_route(keys_client, method, path):
    """Without X-Api-Key, every job route is 401 missing_api_key in keys mode."""
    response = getattr(keys_client, method)(path)
    assert response.status_code == 401
    assert response.get_json()["code"] == "missing_api_key"


@pytest.mark.parametrize("path", ["/healthz", "/openapi.yaml", "/docs"])
def test_liveness_and_docs_need_no_key(keys_client, path):
    """Liveness and the documentation answer without a key in keys mode."""
    assert keys_client.get(path).status_code == 200


def test_in_keys_mode_a_user_sees_only_their_own_jobs(keys_client):
    """Another user's job is 404; listings, the newest job and the queue show only the caller's jobs."""
    alice, bob = issue(keys_client, "alice"), issue(keys_client, "bob")
    mine = keys_client.post("/translate", headers=key(alice)).get_json()["job_id"]
    theirs = keys_client.post("/translate", headers=key(bob)).get_json()["job_id"]
    assert keys_client.get(f"/status/{mine}", headers=key(alice)).status_code == 200
    hidden = keys_client.get(f"/status/{theirs}", headers=key(alice))
    assert hidden.status_code == 404 and hidden.get_json()["code"] == "job_not_found"
    assert keys_client.get(f"/status/{theirs}?wait=5", headers=key(alice)).status_code == 404
    listed = keys_client.get("/jobs", headers=key(alice)).get_json()
    ids = [j for roles in listed.values() for jobs in roles.values() for j in jobs]
    assert ids == [mine]
    assert keys_client.get("/status", headers=key(alice)).get_json()["job_id"] == mine
    queue = keys_client.get("/queue", headers=key(alice)).get_json()
    assert [j["job_id"] for j in queue["queued"] + queue["running"]] == [mine]
    assert keys_client.get("/jobs?user_id=bob", headers=key(alice)).status_code == 403


def test_in_keys_mode_the_admin_sees_all_but_submits_only_with_a_key(keys_client):
    """The admin token reads every job without a key; a submission still needs a key (a user to run as)."""
    alice, bob = issue(keys_client, "alice"), issue(keys_client, "bob")
    keys_client.post("/translate", headers=key(alice))
    theirs = keys_client.post("/translate", headers=key(bob)).get_json()["job_id"]
    assert keys_client.get(f"/status/{theirs}", headers=ADMIN).status_code == 200
    assert keys_client.get("/jobs", headers=ADMIN).headers["X-Total-Count"] == "2"
    assert keys_client.post("/translate", headers=ADMIN).status_code == 401


def test_auth_mode_changes_at_runtime(client):
    """POST /config switches AUTH_MODE; keys issued before keep working."""
    api_key = issue(client)
    assert client.post("/config", json={"AUTH_MODE": "keys"}, headers=ADMIN).status_code == 200
    assert client.get("/jobs").status_code == 401
    assert client.get("/jobs", headers=key(api_key)).status_code == 200
