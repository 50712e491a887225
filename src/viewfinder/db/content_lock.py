"""A lock on one image's content (its SHA-256), held until the end of the transaction.

Blobs are content-addressed, so an asset being deleted and a new upload of the same bytes share
blob keys. Ingest (checking its blobs are there, then adding the row) and blob removal (checking
no row refers to the blobs, then removing them) each run under this lock, so neither can happen
in the middle of the other: either the removal sees the new row and keeps the blobs, or the
upload sees they were removed and writes them again."""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

# PostgreSQL advisory locks with two 32-bit keys: this namespace and a part of the digest (two
# digests sharing it just wait for each other). The two-key space does not overlap the one-key
# space the migration and pgvector locks use.
_CONTENT_LOCK_SPACE: Final = 0x56460001


def lock_content(session: Session, sha256: str) -> None:
    """Wait for, then hold until commit or rollback, the lock on the content ``sha256``."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(bytes.fromhex(sha256[:8]), "big", signed=True)
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"),
            {"space": _CONTENT_LOCK_SPACE, "key": key},
        )
    else:
        # SQLite has one writer at a time: any write statement, even one that changes no row,
        # takes the database's write lock until the transaction ends.
        session.execute(text("UPDATE assets SET sha256 = sha256 WHERE 1 = 0"))
