"""API keys: issued once, kept only as a keyed hash (HMAC-SHA256), verified in constant time.

The hashing key is a secret the store makes once and keeps (`store.secret`), so a copy of the key table
alone cannot be tested against guessed keys. A presented key is hashed and looked up by its digest (which
reveals nothing to a caller who does not know the hashing key), then the digests are compared with
`hmac.compare_digest`. Issued keys look like `sk_sim_<43 URL-safe characters>`; keys seeded from
API_KEYS_FILE may be any 16–256 printable ASCII characters, so scripted set-ups can choose their own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.clock import Clock, system_clock
from simulator.store.records import ApiKey

if TYPE_CHECKING:
    from simulator.store.base import Store

ROLES = ("free", "premium")
ISSUED_PREFIX = "sk_sim_"
MIN_KEY_LENGTH, MAX_KEY_LENGTH = 16, 256
MAX_USER_ID_LENGTH = 128
_HASHING_KEY_NAME = "api-key-hashing"  # the name of the store secret that keys the hash
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid key authenticates: the user, the role their jobs run as, and the key's id."""

    user_id: str
    role: str
    key_id: str


def well_formed(api_key: str) -> bool:
    """Tell whether a presented key could be a key at all (length and printable ASCII, no spaces)."""
    return MIN_KEY_LENGTH <= len(api_key) <= MAX_KEY_LENGTH and api_key.isascii() and api_key.isprintable() \
        and " " not in api_key


def check_user_id(user_id: Any) -> str:
    """Return a valid user id, or raise ValueError saying what one is."""
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID_LENGTH or not user_id.isprintable() \
            or not user_id.isascii() or not user_id.strip():
        raise ValueError(f"must be 1–{MAX_USER_ID_LENGTH} printable ASCII characters")
    return user_id


def check_role(role: Any) -> str:
    """Return a valid role, or raise ValueError naming the roles."""
    if role not in ROLES:
        raise ValueError(f"must be one of {', '.join(repr(r) for r in ROLES)}, got {role!r}")
    return role


class KeyRing:
    """The API keys of a store: issue, verify, list, revoke, seed."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self._store = store
        self._clock = clock or system_clock()
        self._hashing_key: bytes | None = None

    def digest(self, api_key: str) -> str:
        """Return the keyed hash of a key (hex)."""
        if self._hashing_key is None:
            with self._store.transaction():
                self._hashing_key = self._store.secret(_HASHING_KEY_NAME).encode()
        return hmac.new(self._hashing_key, api_key.encode(), hashlib.sha256).hexdigest()

    def issue(self, user_id: str, role: str) -> tuple[ApiKey, str]:
        """Make a new key for `user_id` with `role`; return its record and the key itself (shown only now)."""
        check_user_id(user_id)
        check_role(role)
        api_key = ISSUED_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(key_id=f"key_{uuid.uuid4().hex[:16]}", digest=self.digest(api_key), user_id=user_id,
                        role=role, created_at=self._clock())
        with self._store.transaction():
            self._store.put_api_key(record)
        return record, api_key

    def verify(self, api_key: str) -> Principal | None:
        """Return who a presented key authenticates, or None when it is not a valid key."""
        if not well_formed(api_key):
            return None
        digest = self.digest(api_key)
        with self._store.transaction():
            record = self._store.api_key_by_digest(digest)
        if record is None or not hmac.compare_digest(record.digest.encode(), digest.encode()):
            return None
        return Principal(record.user_id, record.role, record.key_id)

    def keys(self) -> list[ApiKey]:
        """Return every key, oldest first."""
        with self._store.transaction():
            return list(self._store.api_keys())

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key; return it, or None when there is no key with that id."""
        with self._store.transaction():
            record = self._store.api_key(key_id)
            if record is not None:
                self._store.remove_api_key(key_id)
            return record

    def seed(self, entries: Iterable[Mapping[str, str]]) -> int:
        """Create (or update) the keys of API_KEYS_FILE entries; return how many. Running it again changes nothing."""
        count = 0
        with self._store.transaction():
            for entry in entries:
                digest = self.digest(entry["api_key"])
                key_id = entry.get("key_id") or f"key_{digest[:16]}"
                known = self._store.api_key(key_id)
                created = known.created_at if known is not None else self._clock()
                self._store.put_api_key(ApiKey(key_id, digest, entry["user_id"], entry["role"], created, "file"))
                count += 1
        return count


def load_keys_file(path: str | Path) -> list[dict[str, str]]:
    """Read API_KEYS_FILE: a JSON list of {"api_key", "user_id", "role", "key_id"?}; ValueError says what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ValueError(f'{path} must hold a JSON list of {{"api_key", "user_id", "role"}} objects')
    entries = []
    for i, entry in enumerate(data):
        where = f"{path} entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        unknown = set(entry) - {"api_key", "user_id", "role", "key_id"}
        if unknown:
            raise ValueError(f"{where}: unknown field {', '.join(sorted(unknown))}")
        api_key, key_id = entry.get("api_key"), entry.get("key_id")
        if not isinstance(api_key, str) or not well_formed(api_key):
            raise ValueError(f"{where}: api_key must be {MIN_KEY_LENGTH}–{MAX_KEY_LENGTH} printable ASCII "
                             "characters without spaces")
        if key_id is not None and (not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id)):
            raise ValueError(f"{where}: key_id must be 1–64 letters, digits, '_' or '-'")
        try:
            user_id = check_user_id(entry.get("user_id"))
        except ValueError as e:
            raise ValueError(f"{where}: user_id {e}") from None
        try:
            role = check_role(entry.get("role", "free"))
        except ValueError as e:
            raise ValueError(f"{where}: role {e}") from None
        entries.append({"api_key": api_key, "user_id": user_id, "role": role, **({"key_id": key_id} if key_id else {})})
    keys = [e["api_key"] for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: the same api_key is listed twice")
    return entries
