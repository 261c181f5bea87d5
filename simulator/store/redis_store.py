"""The Redis store: jobs and their indexes in Redis, shared by several server processes.

The structures are rq's registries and BullMQ's keys (see `redis_lua`): one sorted set per priority
lane scored by queueing order, running attempts in a sorted set scored by when they end, finished jobs
scored by when they finished, a hash per job, a sorted set per user, a hash of idempotency keys per
user, the runtime settings, a stream of changes and the ticker's lease.

Transactions are optimistic, so that no process ever holds a lock in Redis:

- The first read of a transaction runs one script (`LOAD`) that returns, atomically, the counters, the
  whole running set (ids, ends and start order: at most WORKERS entries in auto mode), the head of
  each lane and of the finished set, and whatever the engine said it reads first (`prefetch`: a job
  with its place in its lane, an idempotency key, a newest job), with their records. A status read is
  that one round trip; anything else the transaction reads is loaded on demand, a page at a time.
- Changes stay in the transaction. Leaving it runs `COMMIT`, which checks that every job it read is
  at the version it read, that the running set has not changed (its revision), that no premium job
  arrived if it took a free one, and that every idempotency key it looked up is as it was; then it
  writes every change, maps the provisional counter values to real ones (so queueing order is commit
  order), and appends the changes to the stream. If a check fails nothing is written and leaving the
  transaction raises `StoreConflict`: the engine runs the call again on fresh reads. A submission is
  therefore two round trips: the load and the commit.
- What a transaction reads only to describe a job (`queue_position`, `running_ends`) and how many
  jobs are stored (`count`, for MAX_JOBS) are not checked: a concurrent submission in another
  process never makes this one conflict. MAX_JOBS may be exceeded by one job per process at most.

Transactions are per thread and hold no lock in this process either; `lock` only serves the
engine's condition for its ticker.

The records beside jobs (API keys, webhook endpoints, deliveries, stored replays) are read from Redis when
asked for (not by `LOAD`, and never guarded: they are not what a job change is decided on) and put into the
transaction, whose reads see them; `COMMIT` writes them after the job changes, so a delivery the outbox puts
with a job's final transition is written with it, or, when the commit conflicts, not at all (the rerun puts
its own). Two things happen at once instead, for every process: a secret is made once (`HSETNX`, kept in this
process once read), and claiming due deliveries is one script (`CLAIM`) that takes them off the due set, so no
two processes or threads ever claim the same delivery.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import orjson
import redis

from simulator.domain.errors import StoreConflict, StoreUnavailable
from simulator.domain.job import RECORD_FIELDS, Job, from_record, to_record
from simulator.domain.status import Stage
from simulator.store import redis_lua
from simulator.store.base import StoreError
from simulator.store.records import ApiKey, Delivery, Endpoint, Replay, as_dict

PROVISIONAL = redis_lua.PROVISIONAL
#: The fields kept as their own hash fields (the counters, mapped by the commit); the rest is one JSON text.
_SEQ_FIELDS = ("submitted_seq", "enqueued_seq", "started_seq")
_JSON_FIELDS = tuple(name for name in RECORD_FIELDS if name not in _SEQ_FIELDS)
PAGE_SIZE = 500
#: Seconds a claimed delivery may stay out before it is filed as due again (its process died mid-attempt).
CLAIM_LEASE = 600.0
DEFAULT_PREFIX = "tsim"
#: Redis unreachable, or refusing (out of memory, read-only replica): the request answers 503, nothing changed.
_ERRORS = (redis.exceptions.RedisError,)


def parse_url(url: str) -> tuple[str, str]:
    """Split a STORE URL into the Redis URL (for redis-py and flask-limiter) and the key prefix; check it."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise StoreError(f"STORE {url!r} is not a redis:// or rediss:// URL")
    if not parts.hostname:
        raise StoreError(f"STORE {url!r} names no host: use redis://host:port/db")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise StoreError(f"STORE {url!r} has a port that is not a number") from None
    database = parts.path.strip("/") or "0"
    if not database.isdigit():
        raise StoreError(f"STORE {url!r}: the database after the host must be a number, got {database!r}")
    options = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    prefix = options.pop("prefix", DEFAULT_PREFIX)
    if not prefix or not all(c.isalnum() or c in "-_." for c in prefix):
        raise StoreError(f"STORE {url!r}: prefix must be letters, digits, '-', '_' or '.'")
    if options:
        raise StoreError(f"STORE {url!r}: unknown option {', '.join(sorted(options))}; allowed: prefix")
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", "")), prefix


def _encode(job: Job) -> tuple[str, int, int, int]:
    record = to_record(job)
    data = orjson.dumps({name: record[name] for name in _JSON_FIELDS}).decode()
    return data, job.submitted_seq, job.enqueued_seq, job.started_seq


def _decode(row: list[Any]) -> Job | None:
    """Return the job of a record {id, v, d, s, q, t} as the scripts return it (None: no such job)."""
    if len(row) < 6:
        return None
    record = orjson.loads(row[2])
    record["submitted_seq"], record["enqueued_seq"], record["started_seq"] = int(row[3]), int(row[4]), int(row[5])
    return from_record(record)


class _Index:
    """One sorted set as a transaction sees it: a prefix loaded from Redis, page by page, plus local changes.

    `known` is the loaded prefix in Redis's order; members removed in this transaction stay in it
    and are skipped. Members added in this transaction go to `tail` (their scores are provisional
    or later than anything loaded, so they come after everything in Redis).
    """

    def __init__(self, store: RedisStore, key: str, size: int | None = None) -> None:
        self.store = store
        self.key = key
        self.size = size  # members in Redis when loaded (None: unknown)
        self.known: list[tuple[float, str]] = []
        self.exhausted = False
        self.removed: set[str] = set()  # members of Redis removed here
        self.removed_scores: list[float] = []
        self.tail: dict[str, float] = {}
        self.ranks: dict[str, int] = {}  # 0-based rank in Redis as loaded
        self.head = 0  # members of `known` before it are all removed: taking jobs from the front stays O(1)

    def __len__(self) -> int:
        return (self.size or 0) - len(self.removed) + len(self.tail)

    def add(self, member: str, score: float) -> None:
        self.tail[member] = score

    def discard(self, member: str, score: float) -> None:
        if member in self.tail:
            del self.tail[member]
        else:
            self.removed.add(member)
            self.removed_scores.append(score)

    def __iter__(self) -> Iterator[str]:
        for i in itertools.count(self.head):
            if i == len(self.known):
                if self.exhausted or not self._load_page():
                    if self.size is not None and len(self.known) != self.size:
                        # Another process queued or took jobs after this transaction's first read: what it
                        # read of this index no longer adds up, so the call runs again on a fresh load.
                        raise StoreConflict(f"{self.key} changed after this transaction's first read")
                    break
            member = self.known[i][1]
            if member not in self.removed:
                yield member
            elif i == self.head:
                self.head += 1
        yield from list(self.tail)

    def rank(self, member: str, score: float) -> int:
        """Return the 0-based place of a member in the index as this transaction sees it."""
        if member in self.tail:
            return len(self) - len(self.tail) + list(self.tail).index(member)
        if member not in self.ranks:
            self.store._load_jobs([member])
        ahead = sum(1 for s in self.removed_scores if s < score)
        # Not in the lane in Redis: another process started or cancelled it after this transaction's load.
        return self.ranks.get(member, len(self) - 1 + ahead) - ahead

    def _load_page(self) -> bool:
        after = self.known[-1] if self.known else None
        entries, records = self.store._page(self.key, after)
        base = len(self.known)
        for i in range(0, len(entries), 2):
            member = entries[i]
            self.known.append((float(entries[i + 1]), member))
            self.ranks.setdefault(member, base + i // 2)
        self.store._keep_records(records)
        if len(entries) < 2 * PAGE_SIZE:
            self.exhausted = True
        return bool(entries)


class _Transaction:
    """What one thread's open transaction has read and changed."""

    def __init__(self, store: RedisStore) -> None:
        self.depth = 0
        self.loaded = False
        self.hints: dict[str, Any] = {}
        self.jobs: dict[str, Job | None] = {}  # the identity map: one object per job per transaction
        self.rows: dict[str, list[Any]] = {}  # records loaded but not read yet (decoded when first read)
        self.versions: dict[str, int] = {}  # of the jobs read (0: absent), checked by the commit
        self.written: dict[str, Job] = {}
        self.added: set[str] = set()
        self.removed: dict[str, Job] = {}
        self.idempotency: dict[tuple[str, str], str] = {}  # as read ('' none), checked by the commit
        self.new_keys: dict[tuple[str, str], str] = {}
        self.changes: list[list[Any]] = []
        self.settings: dict[str, str] = {}
        self.restore = False  # the stored settings are dropped and every process restores its start-up ones
        self.cleared: int | None = None  # every job is removed by the commit, provided this many are stored
        self.loaded_count = 0  # how many jobs Redis held at the first read
        self.seq = 0  # the counter as loaded
        self.seq_used = 0
        self.rev = -1
        self.premium_size: int | None = None  # lane 1's size as loaded, checked when a free job was taken
        self.premium_checked = False
        self.lanes_checked = False  # both lanes' sizes checked: the call decided on how many jobs wait
        self.job_count = 0
        self.running: dict[str, tuple[float, int]] = {}
        self.lanes = {1: _Index(store, "lane:1"), 0: _Index(store, "lane:0")}
        self.finished = _Index(store, "finished")
        self.newest: dict[str | None, str] = {}
        # The records beside jobs: written by the commit, in the order they were put (None: removed).
        self.records: dict[tuple[str, str], Any] = {}
        self.unfiled: set[str] = set()  # deliveries put here and claimed since: written pending but not due
        self.seen: set[str] = set()  # deliveries read from Redis: put back only if still stored (not reset)


def _dumps(record: Any) -> str:
    return orjson.dumps(as_dict(record)).decode()


def _delivery(data: str, seq: Any) -> Delivery:
    fields = orjson.loads(data)
    fields["seq"] = int(float(seq))
    return Delivery(**fields)


def _due(delivery: Delivery) -> float:
    return delivery.next_attempt_at if delivery.next_attempt_at is not None else 0.0


class RedisStore:
    """Jobs in Redis, shared by every server process that names the same server and prefix."""

    shared = True

    def __init__(self, url: str, *, connection_class: type[redis.Connection] | None = None) -> None:
        self.url, self.prefix = parse_url(url)
        self.key_prefix = "{" + self.prefix + "}"
        self.lock = threading.RLock()
        self.origin = uuid.uuid4().hex  # this store's name in the change stream (its own changes are skipped)
        options: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": 5, "socket_timeout": 30,
                                   "health_check_interval": 30}
        if connection_class is not None:
            options["connection_class"] = connection_class
        try:
            pool = redis.ConnectionPool.from_url(self.url, **options)
        except ValueError as e:
            raise StoreError(f"STORE {url!r}: {e}") from None
        self.redis = redis.Redis(connection_pool=pool)
        try:
            self.redis.ping()
        except redis.exceptions.RedisError as e:
            pool.disconnect()
            raise StoreError(f"cannot reach Redis at {self.url}: {e}") from None
        self._load = self.redis.register_script(redis_lua.LOAD)
        self._page_script = self.redis.register_script(redis_lua.PAGE)
        self._jobs_script = self.redis.register_script(redis_lua.JOBS)
        self._commit = self.redis.register_script(redis_lua.COMMIT)
        self._take_read = self.redis.register_script(redis_lua.TAKE_READ)
        self._secret_script = self.redis.register_script(redis_lua.MAKE_SECRET)
        self._key_by_digest = self.redis.register_script(redis_lua.KEY_BY_DIGEST)
        self._endpoints_of = self.redis.register_script(redis_lua.ENDPOINTS_OF)
        self._deliveries_script = self.redis.register_script(redis_lua.DELIVERIES)
        self._claim = self.redis.register_script(redis_lua.CLAIM)
        scripts = (self._load, self._page_script, self._jobs_script, self._commit, self._take_read,
                   self._secret_script, self._key_by_digest, self._endpoints_of, self._deliveries_script, self._claim)
        try:  # loaded now, so that no request pays for a NOSCRIPT retry
            for script in scripts:
                self.redis.script_load(script.script)
        except redis.exceptions.RedisError as e:
            pool.disconnect()
            raise StoreError(f"cannot use Redis at {self.url}: {e}") from None
        self._local = threading.local()
        self._secrets: dict[str, str] = {}  # made once for every process, never changed: kept once read

    def key(self, name: str) -> str:
        """Return the full Redis key of `name` (e.g. 'changes', 'leader')."""
        return f"{self.key_prefix}:{name}"

    # ---------------------------------------------------------------- transactions

    def transaction(self) -> _Scope:
        """Open this thread's transaction (or join it); leaving the outermost one commits or raises StoreConflict."""
        return _Scope(self)

    @property
    def _tx(self) -> _Transaction:
        tx = getattr(self._local, "tx", None)
        if tx is None:
            raise RuntimeError("the Redis store is read or changed outside a transaction")
        return tx

    def close(self) -> None:
        """Close the connections."""
        self.redis.connection_pool.disconnect()

    def clear(self) -> None:
        """Remove every job, index entry, idempotency key, read count, webhook delivery and stored replay when the
        transaction commits (API keys, webhook endpoints and secrets stay, as in the other stores).

        For every process: the commit deletes what Redis holds, provided it holds as many jobs as this
        transaction first read (else another process added one meanwhile, and the call runs again).
        The counter is kept, as a durable store keeps it: it also seeds the generator of job ids.
        """
        tx = self._ensure_loaded()
        tx.cleared = tx.loaded_count
        tx.written.clear()
        tx.added.clear()
        tx.removed.clear()
        tx.new_keys.clear()
        tx.rows.clear()
        tx.jobs = dict.fromkeys(tx.jobs)
        tx.job_count = 0
        tx.running = {}
        tx.newest = {}
        tx.lanes = {1: _Index(self, "lane:1", 0), 0: _Index(self, "lane:0", 0)}
        tx.finished = _Index(self, "finished", 0)
        for index in (*tx.lanes.values(), tx.finished):
            index.exhausted = True
        tx.records = {k: v for k, v in tx.records.items() if k[0] in ("k", "e")}  # set-up stays; the rest goes
        tx.unfiled.clear()

    def prefetch(
        self,
        *,
        job_id: str | None = None,
        idempotency: tuple[str, str] | None = None,
        newest: bool = False,
        user_id: str | None = None,
    ) -> None:
        """Remember what the transaction reads first: its first read loads it in the same round trip."""
        self._tx.hints = {"job_id": job_id, "idempotency": idempotency, "newest": newest, "user_id": user_id}

    def _call(self, script: Any, args: list[Any]) -> Any:
        try:
            return script(args=args)
        except _ERRORS as e:
            raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e

    def _ensure_loaded(self) -> _Transaction:
        tx = self._tx
        if tx.loaded:
            return tx
        hints = tx.hints
        idem_user, idem_key = hints.get("idempotency") or ("", "")
        newest = ""
        if hints.get("newest"):
            newest = "all" if hints.get("user_id") is None else "user"
        answer = self._call(self._load, [self.key_prefix, hints.get("job_id") or "", idem_user, idem_key, newest,
                                         hints.get("user_id") or ""])
        seq, rev, job_count, lane1, lane0, running, heads, ranks, idem, newest_id, records = answer
        tx.loaded = True
        tx.seq, tx.rev, tx.job_count = int(seq), int(rev), int(job_count)
        tx.loaded_count = tx.job_count
        tx.premium_size = int(lane1)
        tx.running = {running[i]: (float(running[i + 1]), int(running[i + 2])) for i in range(0, len(running), 3)}
        tx.lanes[1].size, tx.lanes[0].size = int(lane1), int(lane0)
        self._keep_records(records)
        for index, (head, score) in zip((tx.lanes[1], tx.lanes[0], tx.finished), heads, strict=True):
            if head:
                index.known.append((float(score), head))
                index.ranks[head] = 0
            else:
                index.exhausted = True
        for job_id, lane, rank in ranks:
            tx.lanes[int(lane)].ranks[job_id] = int(rank)
        if idem_key:
            tx.idempotency[(idem_user, idem_key)] = idem
        if newest:
            tx.newest[hints.get("user_id")] = newest_id
        return tx

    def _keep_records(self, records: Iterable[list[Any]]) -> None:
        """Keep loaded records for when they are read (a job already read keeps its object and its changes)."""
        tx = self._tx
        for row in records:
            if row[0] not in tx.jobs:
                tx.rows[row[0]] = row

    def _cached(self, tx: _Transaction, job_id: str) -> Job | bool | None:
        """Return the job as this transaction knows it (None: absent), decoding a loaded record; False: not loaded."""
        if job_id in tx.jobs:
            return tx.jobs[job_id]
        row = tx.rows.pop(job_id, None)
        if row is None:
            return False
        job = tx.jobs[job_id] = _decode(row)
        tx.versions[job_id] = 0 if job is None else job.version
        return job

    def _load_jobs(self, ids: list[str]) -> None:
        """Load jobs not yet in the identity map (and their places in their lanes), in one round trip."""
        tx = self._ensure_loaded()
        missing = [i for i in ids if (i not in tx.jobs and i not in tx.rows)
                   or (i not in tx.lanes[0].ranks and i not in tx.lanes[1].ranks)]
        if not missing:
            return
        for row, rank in self._call(self._jobs_script, [self.key_prefix, *missing]):
            self._keep_records([row])
            if rank:
                tx.lanes[int(rank[0])].ranks.setdefault(row[0], int(rank[1]))

    def _page(self, key: str, after: tuple[float, str] | None) -> tuple[list[Any], list[Any]]:
        score, member = ("", "") if after is None else (repr(after[0]), after[1])
        entries, records = self._call(self._page_script, [self.key_prefix, key, score, member, PAGE_SIZE])
        return entries, records

    def _finish(self, tx: _Transaction) -> None:
        """Commit what the transaction changed (nothing to do for a read)."""
        if not (tx.written or tx.removed or tx.changes or tx.settings or tx.seq_used or tx.restore
                or tx.cleared is not None or tx.records):
            return
        lanes = tx.lanes_checked and tx.loaded
        args: list[Any] = [self.key_prefix, tx.seq_used, tx.rev if tx.loaded else -1,
                           tx.premium_size if tx.premium_checked or lanes else -1,
                           tx.lanes[0].size if lanes else -1, self.origin,
                           orjson.dumps(tx.changes).decode() if tx.changes else "",
                           orjson.dumps(tx.settings).decode() if tx.settings else "",
                           "" if tx.cleared is None else tx.cleared, "1" if tx.restore else "",
                           self._record_writes(tx)]
        guards = [(i, v) for i, v in tx.versions.items()]
        guards += [(i, 0) for i in tx.added if i not in tx.versions]
        args.append(len(guards))
        for job_id, version in guards:
            args += [job_id, str(version)]
        args.append(len(tx.idempotency))
        for (user, key), job_id in tx.idempotency.items():
            args += [user, key, job_id]
        for job_id, job in tx.written.items():
            data, s, q, t = _encode(job)
            if job.stage is Stage.QUEUED:
                index, score = str(job.priority), 0.0
            elif job.stage is Stage.TRANSLATING:
                index, score = "r", job.attempt_ends_at
            else:
                index, score = "f", job.finished_at or 0.0
            args += ["n" if job_id in tx.added else "u", job_id, job.version, data, s, q, t, index, repr(score),
                     job.user_id, job.idempotency_key or ""]
        for job_id, job in tx.removed.items():
            args += ["x", job_id, job.user_id, job.idempotency_key or ""]
        ok, detail = self._call(self._commit, args)
        if not ok:
            raise StoreConflict(f"another process changed the {detail} this transaction read")

    # ---------------------------------------------------------------- jobs

    def get(self, job_id: str) -> Job | None:
        """Return the job with this id, or None."""
        tx = self._ensure_loaded()
        job = self._cached(tx, job_id)
        if job is False and tx.cleared is not None:
            return None  # everything in Redis is deleted by this transaction
        if job is False:
            self._load_jobs([job_id])
            job = self._cached(tx, job_id)
        return job or None

    def add(self, job: Job) -> None:
        """Keep a new queued job; it is written when the transaction commits."""
        tx = self._ensure_loaded()
        tx.jobs[job.job_id] = job
        tx.added.add(job.job_id)
        tx.written[job.job_id] = job
        tx.job_count += 1
        tx.newest[None] = tx.newest[job.user_id] = job.job_id
        if job.idempotency_key is not None:
            tx.new_keys[(job.user_id, job.idempotency_key)] = job.job_id
        self._file(tx, job)

    def moved(self, job: Job, source: Stage) -> None:
        """Re-file a job that left `source`; it is written when the transaction commits."""
        tx = self._ensure_loaded()
        if source is Stage.QUEUED:
            tx.lanes[job.priority].discard(job.job_id, float(job.enqueued_seq))
        elif source is Stage.TRANSLATING:
            del tx.running[job.job_id]
        self._file(tx, job)
        tx.written[job.job_id] = job

    def remove(self, job: Job) -> None:
        """Forget a finished job and its idempotency key when the transaction commits."""
        tx = self._ensure_loaded()
        tx.finished.discard(job.job_id, job.finished_at or 0.0)
        tx.jobs[job.job_id] = None
        tx.written.pop(job.job_id, None)
        tx.job_count -= 1
        if job.job_id in tx.added:
            tx.added.discard(job.job_id)
        else:
            tx.removed[job.job_id] = job
        if job.idempotency_key is not None:
            tx.new_keys.pop((job.user_id, job.idempotency_key), None)
        for user in (None, job.user_id):
            if tx.newest.get(user) == job.job_id:
                del tx.newest[user]

    def count(self, user_id: str | None = None) -> int:
        """Return how many jobs are stored (of one user, if given); never checked by the commit."""
        tx = self._ensure_loaded()
        if user_id is None:
            return tx.job_count
        if tx.cleared is not None:
            return sum(1 for i in tx.added if tx.written[i].user_id == user_id)
        try:
            stored = int(self.redis.zcard(self.key(f"user:{user_id}")))
        except _ERRORS as e:
            raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e
        added = sum(1 for i in tx.added if tx.written[i].user_id == user_id)
        removed = sum(1 for job in tx.removed.values() if job.user_id == user_id)
        return stored + added - removed

    def jobs(self, user_id: str | None = None) -> Iterator[Job]:
        """Yield the stored jobs (of one user, if given) in submission order, a page at a time."""
        tx = self._ensure_loaded()
        index = _Index(self, "jobs" if user_id is None else f"user:{user_id}")
        if tx.cleared is not None:
            index.size, index.exhausted = 0, True
        for job_id in index:
            job = self._cached(tx, job_id)
            if job:
                yield job
        for job_id in sorted(tx.added, key=lambda i: tx.written[i].submitted_seq):
            job = tx.jobs.get(job_id)
            if job is not None and (user_id is None or job.user_id == user_id):
                yield job

    def newest(self, user_id: str | None = None) -> Job | None:
        """Return the newest job (of one user, if given), or None."""
        tx = self._ensure_loaded()
        if user_id not in tx.newest and tx.cleared is not None:
            return None
        if user_id not in tx.newest:
            key = self.key("jobs" if user_id is None else f"user:{user_id}")
            try:
                found = self.redis.zrange(key, -1, -1)
            except _ERRORS as e:
                raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e
            tx.newest[user_id] = found[0] if found else ""
        job_id = tx.newest[user_id]
        return self.get(job_id) if job_id else None

    def find_idempotent(self, user_id: str, key: str) -> Job | None:
        """Return the job `user_id` submitted under Idempotency-Key `key`, or None (checked by the commit)."""
        tx = self._ensure_loaded()
        if (user_id, key) in tx.new_keys:
            return tx.jobs[tx.new_keys[(user_id, key)]]
        if tx.cleared is not None:
            return None
        if (user_id, key) not in tx.idempotency:
            try:
                tx.idempotency[(user_id, key)] = self.redis.hget(self.key(f"idem:{user_id}"), key) or ""
            except _ERRORS as e:
                raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e
        job_id = tx.idempotency[(user_id, key)]
        return self.get(job_id) if job_id else None

    def next_seq(self) -> int:
        """Return the next counter value: reserved at once before the first read, else provisional until commit."""
        tx = self._tx
        if not tx.loaded:
            try:
                return int(self.redis.incr(self.key("seq"))) - 1
            except _ERRORS as e:
                raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e
        tx.seq_used += 1
        return PROVISIONAL + tx.seq_used - 1

    def id_taken(self, job_id: str) -> bool:
        """Tell whether this transaction knows a job with this id; a clash in Redis fails the commit instead."""
        return self._tx.jobs.get(job_id) is not None

    def record_change(self, kind: str, job: Job, at: float) -> None:
        """Send the change to the other processes with the commit."""
        self._tx.changes.append([kind, job.job_id, job.user_id, job.version, at])

    def record_settings(self, changes: dict[str, object], *, restore: bool = False) -> None:
        """Store the changed runtime settings with the commit; the other processes apply them.

        `restore`: the stored settings are dropped first and every process goes back to its start-up ones.
        """
        tx = self._tx
        if restore:
            tx.restore = True
            tx.settings.clear()
        tx.settings.update({name: orjson.dumps(value).decode() for name, value in changes.items()})

    def take_read(self, job_id: str, limit: int) -> int | None:
        """Count one scripted status read of a stored job while fewer than `limit` were (in Redis, at once)."""
        read = int(self._call(self._take_read, [self.key_prefix, job_id, limit]))
        return None if read < 0 else read

    def reads_counted(self, job_id: str) -> int:
        """Return how many scripted status reads of a job are counted (in Redis, every process's)."""
        try:
            return int(self.redis.hget(self.key("reads"), job_id) or 0)
        except _ERRORS as e:
            raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e

    def stored_settings(self) -> dict[str, Any]:
        """Return the runtime settings changed at runtime by any process (empty when none were)."""
        try:
            stored = self.redis.hgetall(self.key("settings"))
        except _ERRORS as e:
            raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e
        return {name: orjson.loads(value) for name, value in stored.items()}

    # ---------------------------------------------------------------- indexes

    def queued(self) -> Iterator[Job]:
        """Yield queued jobs in start order: the premium lane, then the free one."""
        tx = self._ensure_loaded()
        for priority in (1, 0):
            for job_id in tx.lanes[priority]:
                job = self.get(job_id)
                if job is None or job.stage is not Stage.QUEUED:
                    raise StoreConflict(f"job {job_id} left the queue after this transaction's first read")
                if priority == 0:
                    tx.premium_checked = True  # a free job is taken only while no premium one waits
                yield job

    def queued_count(self, priority: int | None = None) -> int:
        """Return how many jobs are queued (checked by the commit); of one priority: for estimates, never checked.

        The check closes a write skew: a call that frees a slot and finds no queued job must not commit
        if another process queued one meanwhile (that one saw no free slot, and the job would wait).
        """
        tx = self._ensure_loaded()
        if priority is not None:
            return len(tx.lanes[priority])
        tx.lanes_checked = True
        return len(tx.lanes[1]) + len(tx.lanes[0])

    def queue_position(self, job: Job) -> int:
        """Return the 1-based place of a queued job in start order (for the view: never checked)."""
        tx = self._ensure_loaded()
        place = tx.lanes[job.priority].rank(job.job_id, float(job.enqueued_seq)) + 1
        return place if job.priority == 1 else place + len(tx.lanes[1])

    def running(self) -> Iterable[Job]:
        """Return the jobs being translated, in the order they started."""
        tx = self._ensure_loaded()
        order = sorted(tx.running, key=lambda i: tx.running[i][1])
        self._load_jobs([i for i in order if i not in tx.jobs and i not in tx.rows])
        return [job for i in order if (job := self._cached(tx, i))]

    def running_count(self) -> int:
        """Return how many jobs are being translated."""
        return len(self._ensure_loaded().running)

    def running_ends(self) -> list[float]:
        """Return when each running attempt ends."""
        return [ends for ends, _ in self._ensure_loaded().running.values()]

    def next_attempt_end(self, until: float | None = None) -> Job | None:
        """Return the running job whose attempt ends first (ties: the one started first; by `until`, if given)."""
        tx = self._ensure_loaded()
        if not tx.running:
            return None
        job_id = min(tx.running, key=lambda i: tx.running[i])
        if until is not None and tx.running[job_id][0] > until:
            return None  # nothing due: its record is not even needed
        job = self.get(job_id)
        if job is None or job.stage is not Stage.TRANSLATING or job.attempt_ends_at != tx.running[job_id][0]:
            raise StoreConflict(f"the attempt of job {job_id} ended after this transaction's first read")
        return job

    def finished(self) -> Iterator[Job]:
        """Yield finished jobs in the order they finished."""
        tx = self._ensure_loaded()
        for job_id in tx.finished:
            job = self.get(job_id)
            if job is None:
                continue  # removed by another process after this transaction's first read: nothing to do with it
            yield job

    # ---------------------------------------------------------------- secrets

    def secret(self, name: str) -> str:
        """Return the named secret: made once for every process (the first to ask keeps its own), kept from then on."""
        value = self._secrets.get(name)
        if value is None:
            value = self._secrets[name] = self._call(self._secret_script,
                                                      [self.key_prefix, name, secrets.token_urlsafe(32)])
        return value

    # ---------------------------------------------------------------- the records: reads see this transaction's puts

    def _buffered(self, kind: str, record_id: str) -> tuple[bool, Any]:
        """Return (True, the record or None) when this transaction put or removed it, else (False, None)."""
        records = self._tx.records
        key = (kind, record_id)
        return (True, records[key]) if key in records else (False, None)

    def _put(self, kind: str, record_id: str, record: Any) -> None:
        records = self._tx.records
        records.pop((kind, record_id), None)  # written in the order of the last put
        records[(kind, record_id)] = record

    def _redis(self, command: str, *args: Any, **options: Any) -> Any:
        try:
            return getattr(self.redis, command)(*args, **options)
        except _ERRORS as e:
            raise StoreUnavailable(f"The job store (Redis) cannot be reached: {e}", retry_after=1) from e

    def _mine(self, kind: str) -> dict[str, Any]:
        """Return what this transaction put or removed of one kind of record, by id."""
        return {record_id: record for (k, record_id), record in self._tx.records.items() if k == kind}

    def _record_writes(self, tx: _Transaction) -> str:
        """Return the commit's record writes (JSON; '' for none)."""
        ops: list[list[str]] = []
        for (kind, record_id), record in tx.records.items():
            if record is None:
                ops.append([kind.upper(), record_id])
            elif kind == "k":
                ops.append(["k", record_id, _dumps(record), record.digest])
            elif kind == "e":
                ops.append(["e", record_id, _dumps(record), record.user_id])
            elif kind == "d":
                due = repr(_due(record)) if record.pending and record_id not in tx.unfiled else ""
                done = "" if record.pending else repr(record.finished_at or 0.0)
                ops.append(["d", record_id, _dumps(record), str(record.seq), due, done,
                            "1" if record_id in tx.seen else ""])
            else:
                ops.append(["r", record_id, _dumps(record), repr(record.expires_at)])
        return orjson.dumps(ops).decode() if ops else ""

    # ---------------------------------------------------------------- API keys

    def put_api_key(self, key: ApiKey) -> None:
        """Store a new key or replace the one with its id when the transaction commits (indexed by digest)."""
        self._put("k", key.key_id, key)

    def api_key(self, key_id: str) -> ApiKey | None:
        """Return the key with this id, or None."""
        mine, key = self._buffered("k", key_id)
        if mine:
            return key
        data = self._redis("hget", self.key("apikeys"), key_id)
        return None if data is None else ApiKey(**orjson.loads(data))

    def api_key_by_digest(self, digest: str) -> ApiKey | None:
        """Return the key whose keyed hash is `digest`, or None: one round trip (the digest index, then the key)."""
        mine = self._mine("k")
        for key in mine.values():
            if key is not None and key.digest == digest:
                return key
        data = self._call(self._key_by_digest, [self.key_prefix, digest])
        if data is None:
            return None
        key = ApiKey(**orjson.loads(data))
        return None if key.key_id in mine else key  # replaced or removed here: its old digest no longer counts

    def api_keys(self) -> Iterator[ApiKey]:
        """Yield every key, oldest first (ties by id)."""
        keys = {key_id: ApiKey(**orjson.loads(data))
                for key_id, data in self._redis("hgetall", self.key("apikeys")).items()}
        keys.update(self._mine("k"))
        return iter(sorted((k for k in keys.values() if k is not None), key=lambda k: (k.created_at, k.key_id)))

    def remove_api_key(self, key_id: str) -> None:
        """Forget a key when the transaction commits (nothing if unknown)."""
        self._put("k", key_id, None)

    # ---------------------------------------------------------------- webhook endpoints

    def put_endpoint(self, endpoint: Endpoint) -> None:
        """Store a new endpoint or replace the one with its id when the transaction commits."""
        self._put("e", endpoint.endpoint_id, endpoint)

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return the endpoint with this id, or None."""
        mine, endpoint = self._buffered("e", endpoint_id)
        if mine:
            return endpoint
        data = self._redis("hget", self.key("endpoints"), endpoint_id)
        return None if data is None else Endpoint(**orjson.loads(data))

    def endpoints(self, user_id: str | None = None) -> Iterator[Endpoint]:
        """Yield the endpoints (of one user, if given), oldest first (ties by id): one round trip."""
        if user_id is None:
            stored = self._redis("hvals", self.key("endpoints"))
        else:
            stored = self._call(self._endpoints_of, [self.key_prefix, user_id])
        found: dict[str, Endpoint | None] = {}
        for data in stored:
            endpoint = Endpoint(**orjson.loads(data))
            found[endpoint.endpoint_id] = endpoint
        found.update(self._mine("e"))
        chosen = [e for e in found.values() if e is not None and (user_id is None or e.user_id == user_id)]
        return iter(sorted(chosen, key=lambda e: (e.created_at, e.endpoint_id)))

    def remove_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint when the transaction commits (nothing if unknown)."""
        self._put("e", endpoint_id, None)

    # ---------------------------------------------------------------- the webhook outbox and delivery log

    def put_delivery(self, delivery: Delivery) -> None:
        """Store a delivery when the transaction commits, with the job changes made in it (or not at all).

        A pending one is filed as due at `next_attempt_at`. One read from Redis in this transaction is written
        only if it is still stored: a reset meanwhile removed it, and its outcome goes with it.
        """
        self._tx.unfiled.discard(delivery.delivery_id)
        self._put("d", delivery.delivery_id, delivery)

    def remove_delivery(self, delivery_id: str) -> None:
        """Forget a delivery when the transaction commits; not part of the Store protocol."""
        self._tx.unfiled.discard(delivery_id)
        self._put("d", delivery_id, None)

    def delivery(self, delivery_id: str) -> Delivery | None:
        """Return the delivery with this id, or None."""
        tx = self._tx
        mine, delivery = self._buffered("d", delivery_id)
        if mine or tx.cleared is not None:
            return delivery
        data, seq = self._redis("hmget", self.key(f"delivery:{delivery_id}"), "d", "s")
        if data is None:
            return None
        tx.seen.add(delivery_id)
        return _delivery(data, seq)

    def deliveries(self) -> Iterator[Delivery]:
        """Yield every delivery, oldest first (in creation order)."""
        tx = self._tx
        found: dict[str, Delivery | None] = {}
        if tx.cleared is None:
            for delivery_id, data, seq in self._call(self._deliveries_script, [self.key_prefix]):
                found[delivery_id] = _delivery(data, seq)
                tx.seen.add(delivery_id)
        found.update(self._mine("d"))
        return iter(sorted((d for d in found.values() if d is not None), key=lambda d: d.seq))

    def _filed_here(self) -> dict[str, Delivery]:
        """Return the deliveries this transaction put that are filed as due (pending, not claimed since)."""
        tx = self._tx
        return {i: d for i, d in self._mine("d").items() if d is not None and d.pending and i not in tx.unfiled}

    def claim_due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Take up to `limit` due pending deliveries off the due index, earliest first: at once, for every process.

        The claim is one script, so two processes (or threads) never claim the same delivery. Deliveries put in
        this transaction are claimed from it (they are then written unfiled, until put back).
        """
        tx = self._tx
        mine = self._mine("d")
        candidates: list[tuple[float, int, Delivery, bool]] = [
            (_due(d), d.seq, d, False) for d in self._filed_here().values() if _due(d) <= now]
        if tx.cleared is None and limit > 0:
            taken = self._call(self._claim, [self.key_prefix, repr(now), limit + len(mine), repr(CLAIM_LEASE)])
            for delivery_id, due, data, seq in taken:
                if delivery_id in mine:
                    continue  # a stale entry: what this transaction put is written (and filed) by its commit
                delivery = _delivery(data, seq)
                tx.seen.add(delivery_id)
                candidates.append((float(due), delivery.seq, delivery, True))
        candidates.sort(key=lambda c: (c[0], c[1]))
        claimed, extra = candidates[:limit], candidates[limit:]
        back = {d.delivery_id: due for due, _, d, stored in extra if stored}
        if back:  # claimed from Redis beyond the limit: filed again as they were
            self._redis("zadd", self.key("deliveries:due"), back)
        for _, _, delivery, stored in claimed:
            if not stored:
                tx.unfiled.add(delivery.delivery_id)
        return [c[2] for c in claimed]

    def next_delivery_due(self) -> float | None:
        """Return when the earliest filed pending delivery is due (None if none is)."""
        tx = self._tx
        mine = self._mine("d")
        dues = [_due(d) for d in self._filed_here().values()]
        if tx.cleared is None:
            head = self._redis("zrange", self.key("deliveries:due"), 0, len(mine), withscores=True)
            dues += [float(score) for delivery_id, score in head if delivery_id not in mine][:1]
        return min(dues, default=None)

    def prune_deliveries(self, finished_before: float) -> int:
        """Forget finished deliveries that finished before `finished_before` when the transaction commits."""
        tx = self._tx
        mine = self._mine("d")
        doomed = [i for i, d in mine.items() if d is not None and not d.pending
                  and (d.finished_at or 0.0) < finished_before]
        if tx.cleared is None:
            stored = self._redis("zrangebyscore", self.key("deliveries:done"), "-inf", f"({finished_before!r}")
            doomed += [i for i in stored if i not in mine]
        for delivery_id in doomed:
            self.remove_delivery(delivery_id)
        return len(doomed)

    # ---------------------------------------------------------------- idempotent replays

    def put_replay(self, replay: Replay) -> None:
        """Store an answer to replay when the transaction commits; it expires at `expires_at`."""
        self._put("r", replay.replay_key, replay)

    def replay(self, replay_key: str) -> Replay | None:
        """Return the stored answer for this key, or None."""
        mine, replay = self._buffered("r", replay_key)
        if mine or self._tx.cleared is not None:
            return replay
        data = self._redis("hget", self.key("replays"), replay_key)
        return None if data is None else Replay(**orjson.loads(data))

    def prune_replays(self, now: float) -> int:
        """Forget the answers that expired by `now` when the transaction commits; return how many."""
        mine = self._mine("r")
        doomed = [k for k, r in mine.items() if r is not None and r.expires_at <= now]
        if self._tx.cleared is None:
            stored = self._redis("zrangebyscore", self.key("replays:expiry"), "-inf", repr(now))
            doomed += [k for k in stored if k not in mine]
        for replay_key in doomed:
            self.remove_replay(replay_key)
        return len(doomed)

    def remove_replay(self, replay_key: str) -> None:
        """Forget a stored answer when the transaction commits; not part of the Store protocol."""
        self._put("r", replay_key, None)

    # ---------------------------------------------------------------- internals

    def _file(self, tx: _Transaction, job: Job) -> None:
        if job.stage is Stage.QUEUED:
            tx.lanes[job.priority].add(job.job_id, float(job.enqueued_seq))
        elif job.stage is Stage.TRANSLATING:
            tx.running[job.job_id] = (job.attempt_ends_at, job.started_seq)
        else:
                tx.finished.add(job.job_id, job.finished_at or 0.0)


class _Scope:
    """`with store.transaction():` — opens the thread's transaction, or joins the one already open."""

    __slots__ = ("_store",)

    def __init__(self, store: RedisStore) -> None:
        self._store = store

    def __enter__(self) -> _Scope:
        local = self._store._local
        tx = getattr(local, "tx", None)
        if tx is None:
            tx = local.tx = _Transaction(self._store)
        tx.depth += 1
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        local = self._store._local
        tx = local.tx
        tx.depth -= 1
        if tx.depth:
            return
        local.tx = None
        if kind is None:
            self._store._finish(tx)
