"""The SQLite store: every change written to a SQLite database before it is acknowledged; reads from memory.

The memory store's indexes serve every read (so a status read costs what it costs in memory); each
transaction that changed jobs ends with one SQLite transaction writing those jobs' rows, before the
engine's answer leaves the process. At start-up the rows are read back and the indexes rebuilt, so a
`kill -9` at any moment loses nothing that was acknowledged.

Durability: WAL journal, `synchronous=NORMAL` by default. A committed transaction is in the WAL file
before the commit returns, so it survives the process being killed at any moment; a power cut or an
OS crash may roll back the last transactions before a checkpoint (the database stays consistent).
`?synchronous=full` in the URL also syncs the WAL on every commit, for power-cut durability, at a
cost per submission (see BENCHMARKS.md). The database is held with an exclusive lock: one server
process per file (several processes share the Redis store instead).

The other records (API keys, webhook endpoints, deliveries, replays, secrets) are kept the same way: one
table each, its columns the record's fields, written with the jobs by the same SQLite transaction — so a
webhook delivery put with a job's final transition is durable exactly when the transition is. A database
of schema 1 (jobs only) is upgraded in place when it is opened.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Callable
from typing import Any

from simulator.domain.errors import StoreUnavailable
from simulator.domain.job import RECORD_FIELDS, Job, from_record, to_record
from simulator.domain.status import Stage
from simulator.store.base import StoreError
from simulator.store.memory import MemoryStore
from simulator.store.records import JSON_FIELDS, ApiKey, Delivery, Endpoint, Replay

#: Written in the database header (PRAGMA application_id) so that another program's database is never touched.
APPLICATION_ID = 0x54534D31  # "TSM1"
SCHEMA_VERSION = 2  # 2: jobs.meta and the tables of the other records
SYNCHRONOUS_LEVELS = ("normal", "full")

# The statements are built from the record's field names, constants of this program: nothing from a request.
_COLUMNS = ", ".join(RECORD_FIELDS)
_UPSERT = f"INSERT OR REPLACE INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * len(RECORD_FIELDS))})"  # noqa: S608
_SELECT = f"SELECT {_COLUMNS} FROM jobs ORDER BY submitted_seq"  # noqa: S608
_SCHEMA = "CREATE TABLE jobs ({}) WITHOUT ROWID".format(
    ", ".join(name + (" TEXT PRIMARY KEY" if name == "job_id" else "") for name in RECORD_FIELDS)
)
#: Fields of a job holding JSON objects, kept as text.
_JOB_JSON_FIELDS = ("error", "simulate", "meta")


class _Table:
    """A table of one record type: its columns are the dataclass's fields, `key` the primary key."""

    def __init__(self, name: str, cls: type, key: str, order: str) -> None:
        self.name, self.cls, self.key = name, cls, key
        self.fields = tuple(f.name for f in dataclasses.fields(cls))
        columns = ", ".join(self.fields)
        # Built from field names, constants of this program: nothing from a request.
        self.create = "CREATE TABLE IF NOT EXISTS {} ({}) WITHOUT ROWID".format(
            name, ", ".join(f + (" TEXT PRIMARY KEY" if f == key else "") for f in self.fields))
        self.upsert = f"INSERT OR REPLACE INTO {name} ({columns}) VALUES ({', '.join('?' * len(self.fields))})"  # noqa: S608
        self.delete = f"DELETE FROM {name} WHERE {key} = ?"  # noqa: S608
        self.delete_all = f"DELETE FROM {name}"  # noqa: S608
        self.select = f"SELECT {columns} FROM {name} ORDER BY {order}"  # noqa: S608

    def row(self, record: Any) -> tuple[Any, ...]:
        """Return the record as a row, JSON fields as text."""
        return tuple(json.dumps(getattr(record, f)) if f in JSON_FIELDS else getattr(record, f) for f in self.fields)

    def record(self, row: tuple[Any, ...]) -> Any:
        """Rebuild a record from its row."""
        values = {f: json.loads(v) if f in JSON_FIELDS and v is not None else v for f, v in zip(self.fields, row,
                                                                                              strict=True)}
        return self.cls(**values)


API_KEYS = _Table("api_keys", ApiKey, "key_id", "created_at, key_id")
ENDPOINTS = _Table("endpoints", Endpoint, "endpoint_id", "created_at, endpoint_id")
DELIVERIES = _Table("deliveries", Delivery, "delivery_id", "seq")
REPLAYS = _Table("replays", Replay, "replay_key", "created_at, replay_key")
TABLES = (API_KEYS, ENDPOINTS, DELIVERIES, REPLAYS)
#: The tables a reset empties (`clear`), with the jobs; API keys, endpoints and secrets are set-up and stay.
CLEARED_TABLES = (DELIVERIES, REPLAYS)


class _Transaction:
    """Holds the store's lock; the outermost transaction writes what changed when it ends.

    The depth is one counter, not one per thread: it is only changed with the lock held, and no
    one waits on a condition inside a transaction (which would let another thread in mid-way).
    """

    __slots__ = ("_depth", "_lock", "_store")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._lock = store.lock
        self._depth = 0

    def __enter__(self) -> _Transaction:
        self._lock.acquire()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0:
                self._store.flush()
        finally:
            self._lock.release()


class SqliteStore(MemoryStore):
    """Jobs in a SQLite database (durable), indexed in memory (fast reads)."""

    def __init__(self, path: str, *, synchronous: str = "normal") -> None:
        super().__init__()
        if synchronous not in SYNCHRONOUS_LEVELS:
            raise StoreError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {synchronous!r}")
        self.path = path
        self.db = _connect(path, synchronous)  # the connection, used only with `lock` held
        self._transaction = _Transaction(self)
        self._dirty: dict[str, None] = {}
        self._gone: dict[str, None] = {}
        self._wipe = False  # every row is to be deleted (clear), before the changes made since
        self._saved_seq = 0
        self._dirty_records: dict[_Table, dict[str, None]] = {table: {} for table in TABLES}
        self._gone_records: dict[_Table, dict[str, None]] = {table: {} for table in TABLES}
        self._new_secrets: dict[str, str] = {}
        self._lookup: dict[_Table, Callable[[str], Any]] = {
            API_KEYS: self.api_key, ENDPOINTS: self.endpoint, DELIVERIES: self.delivery, REPLAYS: self.replay,
        }
        try:
            self._load()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise StoreError(f"cannot read the database {path}: {e}") from None

    def transaction(self) -> _Transaction:
        """Hold the store; leaving the thread's outermost transaction writes every change made in it."""
        return self._transaction

    def close(self) -> None:
        """Write what is pending and close the database."""
        with self.lock:
            self.flush()
            self.db.close()

    def clear(self) -> None:
        """Forget every job, delivery and replay; their rows are deleted when the transaction ends. The counter,
        the secrets, API keys and endpoints are kept, as on reopening."""
        seq = self._next_seq
        super().clear()
        self._next_seq = seq  # it never goes back: it also seeds the generator of job ids
        self._dirty.clear()
        self._gone.clear()
        for table in CLEARED_TABLES:
            self._dirty_records[table].clear()
            self._gone_records[table].clear()
        self._wipe = True

    def size_bytes(self) -> int:
        """Return the database's size on disk, its WAL included."""
        return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))

    # ---------------------------------------------------------------- changes, marked for writing

    def add(self, job: Job) -> None:
        """Store a new job; it is written when the transaction ends."""
        super().add(job)
        self._dirty[job.job_id] = None

    def moved(self, job: Job, source: Stage) -> None:
        """Re-file a job; its row is written when the transaction ends."""
        super().moved(job, source)
        self._dirty[job.job_id] = None

    def remove(self, job: Job) -> None:
        """Forget a job; its row is deleted when the transaction ends."""
        super().remove(job)
        self._dirty.pop(job.job_id, None)
        self._gone[job.job_id] = None

    # ---------------------------------------------------------------- the other records, marked for writing

    def secret(self, name: str) -> str:
        """Return the named secret; a new one is written when the transaction ends."""
        known = name in self._secrets
        value = super().secret(name)
        if not known:
            self._new_secrets[name] = value
        return value

    def put_api_key(self, key: ApiKey) -> None:
        """Store or replace a key; written when the transaction ends."""
        super().put_api_key(key)
        self._mark(API_KEYS, key.key_id)

    def remove_api_key(self, key_id: str) -> None:
        """Forget a key; its row is deleted when the transaction ends."""
        super().remove_api_key(key_id)
        self._unmark(API_KEYS, key_id)

    def put_endpoint(self, endpoint: Endpoint) -> None:
        """Store or replace an endpoint; written when the transaction ends."""
        super().put_endpoint(endpoint)
        self._mark(ENDPOINTS, endpoint.endpoint_id)

    def remove_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint; its row is deleted when the transaction ends."""
        super().remove_endpoint(endpoint_id)
        self._unmark(ENDPOINTS, endpoint_id)

    def put_delivery(self, delivery: Delivery) -> None:
        """Store a delivery or its new state; written when the transaction ends."""
        super().put_delivery(delivery)
        self._mark(DELIVERIES, delivery.delivery_id)

    def remove_delivery(self, delivery_id: str) -> None:
        """Forget a delivery; its row is deleted when the transaction ends."""
        super().remove_delivery(delivery_id)
        self._unmark(DELIVERIES, delivery_id)

    def put_replay(self, replay: Replay) -> None:
        """Store an answer to replay; written when the transaction ends."""
        super().put_replay(replay)
        self._mark(REPLAYS, replay.replay_key)

    def remove_replay(self, replay_key: str) -> None:
        """Forget a stored answer; its row is deleted when the transaction ends."""
        super().remove_replay(replay_key)
        self._unmark(REPLAYS, replay_key)

    def _mark(self, table: _Table, key: str) -> None:
        self._gone_records[table].pop(key, None)
        self._dirty_records[table][key] = None

    def _unmark(self, table: _Table, key: str) -> None:
        self._dirty_records[table].pop(key, None)
        self._gone_records[table][key] = None

    def flush(self) -> None:
        """Write every changed job and record and delete every removed one, in one SQLite transaction (lock held).

        If the write fails, nothing is forgotten: the next transaction tries again, and the caller
        gets StoreUnavailable instead of an acknowledgement.
        """
        records = any(self._dirty_records.values()) or any(self._gone_records.values()) or self._new_secrets
        if (not self._dirty and not self._gone and not self._wipe and self._next_seq == self._saved_seq
                and not records):
            return
        rows = [_row(self._jobs[job_id]) for job_id in self._dirty]
        try:
            with self.db:
                if self._wipe:
                    self.db.execute("DELETE FROM jobs")
                    for table in CLEARED_TABLES:
                        self.db.execute(table.delete_all)
                if rows:
                    self.db.executemany(_UPSERT, rows)
                if self._gone:
                    self.db.executemany("DELETE FROM jobs WHERE job_id = ?", ((i,) for i in self._gone))
                if self._next_seq != self._saved_seq:
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES ('next_seq', ?)", (self._next_seq,))
                if records:
                    self._write_records()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"The job store could not save the change ({e}); nothing was acknowledged.",
                                   retry_after=1) from e
        self._dirty.clear()
        self._gone.clear()
        self._wipe = False
        self._saved_seq = self._next_seq
        for marks in (*self._dirty_records.values(), *self._gone_records.values()):
            marks.clear()
        self._new_secrets.clear()

    def _write_records(self) -> None:
        for table in TABLES:
            dirty, gone = self._dirty_records[table], self._gone_records[table]
            if dirty:
                lookup = self._lookup[table]
                self.db.executemany(table.upsert, [table.row(lookup(key)) for key in dirty])
            if gone:
                self.db.executemany(table.delete, ((key,) for key in gone))
        for name, value in self._new_secrets.items():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"secret:{name}", value))

    # ---------------------------------------------------------------- loading

    def _load(self) -> None:
        """Read every row back and rebuild the indexes: lanes by queueing order, finished by finishing order."""
        jobs = [_job(row) for row in self.db.execute(_SELECT)]
        for job in jobs:
            self._keep(job)
        for job in sorted((j for j in jobs if j.stage is Stage.QUEUED), key=lambda j: j.enqueued_seq):
            self._file(job)
        for job in (j for j in jobs if j.stage is Stage.TRANSLATING):
            self._file(job)
        finished = (j for j in jobs if j.stage is Stage.FINISHED)
        for job in sorted(finished, key=lambda j: (j.finished_at or 0.0, j.submitted_seq)):
            self._file(job)
        # The counter never goes back, even when every job was removed: it also seeds the generator of job ids.
        highest = max((max(j.submitted_seq, j.enqueued_seq, j.started_seq) for j in jobs), default=-1)
        saved = self.db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        self._next_seq = self._saved_seq = max(highest + 1, saved[0] if saved else 0)
        # The other records go through the memory store's methods, which rebuild their indexes.
        for table, put in ((API_KEYS, MemoryStore.put_api_key), (ENDPOINTS, MemoryStore.put_endpoint),
                           (DELIVERIES, MemoryStore.put_delivery), (REPLAYS, MemoryStore.put_replay)):
            for row in self.db.execute(table.select):
                put(self, table.record(row))
        for key, value in self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'secret:%'"):
            self._secrets[key.removeprefix("secret:")] = value


def _row(job: Job) -> tuple[Any, ...]:
    record = to_record(job)
    for name in _JOB_JSON_FIELDS:
        if record[name] is not None:
            record[name] = json.dumps(record[name])
    return tuple(record[name] for name in RECORD_FIELDS)


def _job(row: tuple[Any, ...]) -> Job:
    record = dict(zip(RECORD_FIELDS, row, strict=True))
    for name in _JOB_JSON_FIELDS:
        if record[name] is not None:
            record[name] = json.loads(record[name])
    return from_record(record)


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    """Open (or create) the database, check it is ours and healthy, and take it for this process alone."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StoreError(f"cannot open the database {path}: the directory {directory} does not exist")
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the database {path}: {e}") from None
    try:
        _prepare(db, path, synchronous)
    except sqlite3.OperationalError as e:
        db.close()
        if "locked" in str(e):
            raise StoreError(f"the database {path} is in use by another server process") from None
        raise StoreError(f"cannot use the database {path}: {e}") from None
    except sqlite3.DatabaseError as e:
        db.close()
        raise StoreError(f"the database {path} is damaged or not a database: {e}") from None
    except StoreError:
        db.close()
        raise
    return db


def _prepare(db: sqlite3.Connection, path: str, synchronous: str) -> None:
    db.execute("PRAGMA locking_mode = EXCLUSIVE")
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id != APPLICATION_ID and (app_id != 0 or tables):
        raise StoreError(f"{path} is not a job store of this simulator (another program's database?); "
                         "choose another path")
    if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
        raise StoreError(f"cannot switch {path} to WAL journaling")
    db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock, and proves the file is writable
    try:
        if app_id == 0:
            db.execute(_SCHEMA)
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        else:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (1, SCHEMA_VERSION):
                raise StoreError(f"{path} has job store schema {version}; this server reads {SCHEMA_VERSION}")
        _upgrade(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"the database {path} is damaged: {check}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring the schema up to date in the open transaction: the jobs' new columns, the other records' tables."""
    _add_new_columns(db)
    for table in TABLES:
        db.execute(table.create)


def _add_new_columns(db: sqlite3.Connection) -> None:
    """Add a column for each field the Job record gained since the database was made, holding its default.

    The columns follow the record's fields; a field added later (with a default) gets its column here, so
    a database made by an earlier version opens without a migration of its own.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    defaults = {f.name: f.default for f in dataclasses.fields(Job)}
    for name in RECORD_FIELDS:
        if name in columns:
            continue
        default = defaults.get(name)
        if isinstance(default, bool) or not isinstance(default, (int, float, str)):
            literal = "NULL"  # None (or a default the column cannot hold: the field's value is None then)
        elif isinstance(default, str):
            literal = "'" + default.replace("'", "''") + "'"
        else:
            literal = repr(default)
        # The name and the literal come from the Job record's declaration, constants of this program.
        db.execute(f"ALTER TABLE jobs ADD COLUMN {name} DEFAULT {literal}")
