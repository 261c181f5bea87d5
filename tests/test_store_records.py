"""The store contract for the records beside jobs: API keys, webhook endpoints, the outbox, replays and secrets.

Every test runs on each store (`each_store`: memory, SQLite and Redis); on SQLite the database is read back
afterwards and must hold exactly what memory held, on Redis a second store on the same keys must read the same
records (tests/conftest.py).
"""

from __future__ import annotations

import sqlite3

import pytest

from simulator.store.records import ApiKey, Delivery, Endpoint, Replay
from simulator.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.conftest import make_store

pytestmark = pytest.mark.usefixtures("each_store")


def delivery(n: int, due: float | None = 100.0, **fields) -> Delivery:
    """Return a pending delivery numbered `n`, due at `due`."""
    return Delivery(delivery_id=f"msg_{n}", seq=n, event_type="job.completed", job_id=f"job-{n}", user_id="alice",
                    endpoint_id=None, url="http://127.0.0.1:9/hook", payload=f'{{"n": {n}}}', created_at=50.0,
                    next_attempt_at=due, **fields)


def test_a_secret_is_made_once_and_kept():
    """The same name gives the same secret every time; another name gives another."""
    store = make_store()
    with store.transaction():
        first = store.secret("urls")
        assert store.secret("urls") == first
        assert store.secret("keys") != first
        assert len(first) >= 32


def test_api_keys_are_found_by_id_and_by_digest_and_removed():
    """A key is found by its id and by its digest; a replaced key loses its old digest; a removed one is gone."""
    store = make_store()
    with store.transaction():
        store.put_api_key(ApiKey("k1", "d1", "alice", "free", 1.0))
        store.put_api_key(ApiKey("k2", "d2", "bob", "premium", 2.0))
        assert store.api_key("k1").user_id == "alice"
        assert store.api_key_by_digest("d2").key_id == "k2"
        store.put_api_key(ApiKey("k1", "d1b", "alice", "premium", 1.0))
        assert store.api_key_by_digest("d1") is None
        assert store.api_key_by_digest("d1b").role == "premium"
        store.remove_api_key("k2")
        store.remove_api_key("unknown")
        assert [k.key_id for k in store.api_keys()] == ["k1"]
        assert store.api_key_by_digest("d2") is None


def test_endpoints_are_listed_per_user_in_creation_order():
    """Endpoints are listed oldest first, optionally one user's; a removed one is gone."""
    store = make_store()
    with store.transaction():
        store.put_endpoint(Endpoint("e1", "alice", "http://127.0.0.1:1/a", "whsec_x", None, 1.0))
        store.put_endpoint(Endpoint("e2", "bob", "http://127.0.0.1:1/b", "whsec_y", ["video_translate.success"], 2.0))
        store.put_endpoint(Endpoint("e3", "alice", "http://127.0.0.1:1/c", "whsec_z", [], 3.0))
        assert [e.endpoint_id for e in store.endpoints()] == ["e1", "e2", "e3"]
        assert [e.endpoint_id for e in store.endpoints("alice")] == ["e1", "e3"]
        store.remove_endpoint("e1")
        assert store.endpoint("e1") is None
        assert store.endpoint("e2").events == ["video_translate.success"]


def test_due_deliveries_are_claimed_earliest_first_and_only_once():
    """Claiming takes due pending deliveries earliest first, up to the limit; claimed ones are not claimed again."""
    store = make_store()
    with store.transaction():
        for n, due in ((1, 30.0), (2, 10.0), (3, 20.0), (4, 99.0)):
            store.put_delivery(delivery(n, due))
        assert store.next_delivery_due() == 10.0
        assert [d.delivery_id for d in store.claim_due_deliveries(25.0, 10)] == ["msg_2", "msg_3"]
        assert store.claim_due_deliveries(25.0, 10) == []
        assert [d.delivery_id for d in store.claim_due_deliveries(50.0, 10)] == ["msg_1"]
        assert store.next_delivery_due() == 99.0
        for claimed in ("msg_1", "msg_2", "msg_3"):
            store.put_delivery(store.delivery(claimed))  # back on the index, as the deliverer does


def test_a_claimed_delivery_put_back_pending_is_due_again_at_its_new_time():
    """A delivery put back pending with a later attempt time is claimed at that time, not before."""
    store = make_store()
    with store.transaction():
        store.put_delivery(delivery(1, 10.0))
        (claimed,) = store.claim_due_deliveries(10.0, 5)
        claimed.attempts, claimed.next_attempt_at = 1, 40.0
        store.put_delivery(claimed)
        assert store.claim_due_deliveries(39.0, 5) == []
        assert [d.attempts for d in store.claim_due_deliveries(40.0, 5)] == [1]
        store.put_delivery(claimed)


def test_claiming_respects_the_limit():
    """No more than `limit` deliveries are claimed at once; the rest stay due."""
    store = make_store()
    with store.transaction():
        for n in range(5):
            store.put_delivery(delivery(n, float(n)))
        assert len(store.claim_due_deliveries(100.0, 2)) == 2
        assert store.next_delivery_due() == 2.0
        for d in store.deliveries():
            store.put_delivery(d)


def test_finished_deliveries_leave_the_due_index_and_are_pruned_by_age():
    """A finished delivery is never due; pruning forgets finished ones older than the cut, pending ones never."""
    store = make_store()
    with store.transaction():
        for n in range(4):
            store.put_delivery(delivery(n, 10.0))
        for n, at in ((0, 100.0), (2, 300.0)):
            done = store.delivery(f"msg_{n}")
            done.status, done.finished_at, done.next_attempt_at = "succeeded", at, None
            store.put_delivery(done)
        assert {d.delivery_id for d in store.claim_due_deliveries(10.0, 10)} == {"msg_1", "msg_3"}
        for n in (1, 3):
            store.put_delivery(store.delivery(f"msg_{n}"))
        assert store.prune_deliveries(200.0) == 1
        assert [d.delivery_id for d in store.deliveries()] == ["msg_1", "msg_2", "msg_3"]


def test_a_delivery_retried_after_finishing_is_due_again():
    """Putting a finished delivery back as pending files it as due again."""
    store = make_store()
    with store.transaction():
        d = delivery(1, 10.0)
        d.status, d.finished_at, d.next_attempt_at = "failed", 20.0, None
        store.put_delivery(d)
        assert store.next_delivery_due() is None
        d.status, d.finished_at, d.next_attempt_at = "pending", None, 30.0
        store.put_delivery(d)
        assert store.next_delivery_due() == 30.0
        assert store.prune_deliveries(1000.0) == 0


def test_replays_are_found_until_they_expire():
    """A stored answer is found by its key and forgotten once it expired."""
    store = make_store()
    with store.transaction():
        store.put_replay(Replay("alice|v3|k1", '{"data": 1}', 200, 0.0, 100.0))
        store.put_replay(Replay("alice|v3|k2", '{"data": 2}', 200, 50.0, 150.0))
        assert store.replay("alice|v3|k1").body == '{"data": 1}'
        assert store.prune_replays(120.0) == 1
        assert store.replay("alice|v3|k1") is None
        assert store.replay("alice|v3|k2").status == 200


def test_a_schema_1_database_is_upgraded_when_opened(tmp_path):
    """A jobs-only database of schema 1 gains the meta column and the record tables, and keeps its rows."""
    path = str(tmp_path / "old.db")
    store = SqliteStore(path)
    store.close()
    db = sqlite3.connect(path)
    for table in ("api_keys", "endpoints", "deliveries", "replays"):
        db.execute(f"DROP TABLE {table}")
    db.execute("ALTER TABLE jobs DROP COLUMN meta")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    reopened = SqliteStore(path)
    try:
        with reopened.transaction():
            reopened.put_endpoint(Endpoint("e1", "alice", "http://127.0.0.1:1/a", "whsec_x", None, 1.0))
    finally:
        reopened.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT endpoint_id FROM endpoints").fetchall() == [("e1",)]
    db.close()


def test_a_secret_is_32_random_bytes_in_url_safe_text():
    """A made secret is 32 random bytes, URL-safe base64 without padding: 43 characters."""
    store = make_store()
    with store.transaction():
        made = store.secret("urls")
    assert len(made) == 43
    assert set(made) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_api_keys_are_listed_by_creation_time_then_id():
    """Keys come oldest first, and keys made at the same instant by id, whatever order they were stored in."""
    store = make_store()
    with store.transaction():
        for key_id, created in (("k1", 2.0), ("k2", 1.0), ("k0", 1.0)):
            store.put_api_key(ApiKey(key_id, f"d-{key_id}", "alice", "free", created))
        assert [k.key_id for k in store.api_keys()] == ["k0", "k2", "k1"]


def test_removing_an_unknown_endpoint_delivery_or_replay_changes_nothing():
    """Removing what is not stored is not an error and leaves the rest as it was."""
    store = make_store()
    with store.transaction():
        store.put_delivery(delivery(1, 10.0))
        store.remove_endpoint("e-unknown")
        store.remove_delivery("msg_unknown")
        store.remove_replay("alice|v3|unknown")
        assert [d.delivery_id for d in store.deliveries()] == ["msg_1"]
        assert store.next_delivery_due() == 10.0
        store.remove_delivery("msg_1")
        assert store.delivery("msg_1") is None and store.next_delivery_due() is None


def test_a_pending_delivery_without_an_attempt_time_is_due_at_once():
    """A pending delivery with no next attempt time is due from time 0: the first claim takes it."""
    store = make_store()
    with store.transaction():
        store.put_delivery(delivery(1, None))
        assert store.next_delivery_due() == 0.0
        assert [d.delivery_id for d in store.claim_due_deliveries(0.0, 5)] == ["msg_1"]
        store.put_delivery(store.delivery("msg_1"))


def test_pruning_keeps_a_delivery_finished_at_the_cut_and_can_run_again():
    """Only deliveries finished strictly before the cut go; a later pruning takes the next ones."""
    store = make_store()
    with store.transaction():
        for n, at in ((1, 100.0), (2, 200.0), (3, 300.0)):
            done = delivery(n, None)
            done.status, done.finished_at = "succeeded", at
            store.put_delivery(done)
        assert store.prune_deliveries(100.0) == 0
        assert store.prune_deliveries(200.0) == 1
        assert store.prune_deliveries(300.5) == 2
        assert list(store.deliveries()) == []


def test_a_replay_expires_at_its_instant_and_a_stored_again_one_is_the_newest():
    """An answer whose expiry is now is gone; storing a key again moves it behind the others, with its new expiry."""
    store = make_store()
    with store.transaction():
        store.put_replay(Replay("alice|v3|a", '{"data": 1}', 200, 0.0, 100.0))
        store.put_replay(Replay("alice|v3|b", '{"data": 2}', 200, 10.0, 150.0))
        store.put_replay(Replay("alice|v3|a", '{"data": 3}', 200, 20.0, 200.0))
        assert store.prune_replays(160.0) == 1  # b: a, stored again, expires at 200
        assert store.replay("alice|v3|b") is None and store.replay("alice|v3|a").body == '{"data": 3}'
        assert store.prune_replays(200.0) == 1
        assert store.replay("alice|v3|a") is None
