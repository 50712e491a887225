"""Queries and commands over API keys and shared server secrets (callers own the transaction)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from viewfinder.db.models import ApiKey, ServerSecret, utcnow

# ``last_used_at`` is a hint for ``keys list``, not an audit log: writing it on every request
# would turn each read into a write. It is refreshed when older than this.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def add_key(s: Session, name: str, prefix: str, key_hash: str, read_only: bool) -> ApiKey:
    key = ApiKey(name=name, prefix=prefix, key_hash=key_hash, read_only=read_only)
    s.add(key)
    s.flush()
    return key


def list_keys(s: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))


def any_key(s: Session) -> bool:
    """Whether a key was ever created (revoked ones count: revoking keys never opens the API)."""
    return bool(s.scalar(select(exists().select_from(ApiKey))))


def find_by_hash(s: Session, key_hash: str) -> ApiKey | None:
    return s.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()


def get_key(s: Session, key_id: int) -> ApiKey | None:
    return s.get(ApiKey, key_id)


def keys_matching(s: Session, id_or_prefix: str) -> list[ApiKey]:
    """The keys whose id is ``id_or_prefix``, or whose prefix starts with it."""
    conditions = [ApiKey.prefix.startswith(id_or_prefix, autoescape=True)]
    if id_or_prefix.isdigit():
        conditions.append(ApiKey.id == int(id_or_prefix))
    return list(s.scalars(select(ApiKey).where(or_(*conditions)).order_by(ApiKey.id)))


def revoke_key(s: Session, key_id: int, when: datetime | None = None) -> None:
    s.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=when or utcnow())
    )


def touch_key(s: Session, key: ApiKey, now: datetime | None = None) -> None:
    """Record that ``key`` was used, at most once per ``LAST_USED_RESOLUTION``."""
    now = now or utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now


def get_secret(s: Session, name: str) -> bytes | None:
    return s.scalar(select(ServerSecret.value).where(ServerSecret.name == name))


def add_secret(s: Session, name: str, value: bytes) -> None:
    """Insert a secret; a concurrent insert of the same name raises ``IntegrityError``."""
    s.add(ServerSecret(name=name, value=value))
    s.flush()
