"""API keys: made here, stored hashed in the database (``viewfinder.db.api_keys``), looked up.

A key is ``vf_`` and 32 random bytes (URL-safe base64): far too many to guess, so a plain
SHA-256 of it is a safe thing to store, and looking a key up by its hash costs one index probe."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import api_keys as db
from viewfinder.db.engine import make_engine, make_session_factory, normalize_url, sqlite_url_for
from viewfinder.db.migrate import upgrade
from viewfinder.db.models import ApiKey
from viewfinder.errors import ConflictError, InvalidInputError, NotFoundError
from viewfinder.settings import Settings

KEY_PREFIX = "vf_"
# What ``keys list`` shows of a key: enough to tell keys apart, far too little to use one.
SHOWN_CHARS = len(KEY_PREFIX) + 8
# Keys given in VIEWFINDER_API_KEYS are chosen by people: refuse ones short enough to guess.
MIN_ENV_KEY_LENGTH = 20


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. ``ref`` names the key ("db-12" for a stored key, "env-<hash>" for
    one of VIEWFINDER_API_KEYS): sessions carry it, and rate limits count per ``ref``."""

    ref: str
    name: str
    read_only: bool


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as ``keys list`` shows it (never the key itself)."""

    id: int
    name: str
    prefix: str
    read_only: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            row.id,
            row.name,
            row.prefix,
            row.read_only,
            row.created_at,
            row.last_used_at,
            row.revoked_at,
        )


def db_ref(key_id: int) -> str:
    return f"db-{key_id}"


def _principal(row: ApiKey) -> Principal:
    return Principal(db_ref(row.id), row.name, row.read_only)


class KeyStore:
    """The keys of the metadata database, and the secrets all processes share."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def create(self, name: str, read_only: bool = False) -> tuple[KeyInfo, str]:
        """A new key; the key itself is returned here and never again."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInputError("a key's name must have 1 to 200 characters")
        key = generate_key()
        with self.sessions.begin() as s:
            row = db.add_key(s, name, key[:SHOWN_CHARS], hash_key(key), read_only)
            return KeyInfo.of(row), key

    def list(self) -> list[KeyInfo]:
        with self.sessions() as s:
            return [KeyInfo.of(row) for row in db.list_keys(s)]

    def revoke(self, id_or_prefix: str) -> KeyInfo:
        """Revoke the one key whose id is ``id_or_prefix`` or whose shown prefix starts with it."""
        wanted = id_or_prefix.strip()
        if not wanted:
            raise InvalidInputError("name the key to revoke by its id or prefix (`keys list`)")
        with self.sessions.begin() as s:
            rows = db.keys_matching(s, wanted)
            by_id = [row for row in rows if str(row.id) == wanted]
            rows = by_id or rows
            if not rows:
                raise NotFoundError(f"no key has the id or prefix {wanted!r} (see `keys list`)")
            if len(rows) > 1:
                ids = ", ".join(str(row.id) for row in rows)
                raise InvalidInputError(
                    f"{wanted!r} matches several keys (ids {ids}): "
                    "give more of the prefix, or the id"
                )
            row = rows[0]
            if row.revoked_at is not None:
                raise ConflictError(f"key {row.id} ({row.prefix}…) was already revoked")
            db.revoke_key(s, row.id)
            s.refresh(row)
            return KeyInfo.of(row)

    def any_key(self) -> bool:
        with self.sessions() as s:
            return db.any_key(s)

    def lookup(self, key: str) -> Principal | None:
        """The principal of an active key, or None for an unknown or revoked one."""
        digest = hash_key(key)
        with self.sessions.begin() as s:
            row = db.find_by_hash(s, digest)
            # The index found the row by hash; comparing again in constant time costs nothing
            # and keeps the check itself free of timing differences.
            if row is None or row.revoked_at is not None:
                return None
            if not hmac.compare_digest(row.key_hash, digest):
                return None
            db.touch_key(s, row)
            return _principal(row)

    def principal_by_id(self, key_id: int) -> Principal | None:
        with self.sessions() as s:
            row = db.get_key(s, key_id)
            return None if row is None or row.revoked_at is not None else _principal(row)

    def shared_secret(self, name: str, size: int = 32) -> bytes:
        """The secret called ``name``, made on first use; every process gets the same bytes."""
        with self.sessions() as s:
            value = db.get_secret(s, name)
        if value is not None:
            return value
        try:
            with self.sessions.begin() as s:
                db.add_secret(s, name, secrets.token_bytes(size))
        except IntegrityError:
            pass  # another process made it first: use theirs
        with self.sessions() as s:
            value = db.get_secret(s, name)
        if value is None:  # pragma: no cover - the row was just inserted
            raise RuntimeError(f"the server secret {name!r} could not be stored")
        return value


@contextmanager
def key_store_for(settings: Settings) -> Iterator[KeyStore]:
    """A key store on the configured database (migrated first), for commands that need only it."""
    engine = make_engine(normalize_url(settings.database_url or sqlite_url_for(settings.data_dir)))
    try:
        upgrade(engine)
        yield KeyStore(make_session_factory(engine))
    finally:
        engine.dispose()
