"""Paused processing: which worker cannot do which kind of per-asset work, why, since when.

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush,
never commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from viewfinder.db.models import ProcessingPause, utcnow
from viewfinder.db.statements import upsert

MAX_REASON_CHARS = 2000


def record_pause(s: Session, kind: str, worker: str, reason: str) -> None:
    """Record (or refresh) that ``worker`` cannot process ``kind``: a new pause starts now; an
    existing one keeps its start and gets the latest reason and ``seen_at``."""
    now = utcnow()
    row = {
        "kind": kind,
        "worker": worker,
        "reason": reason[:MAX_REASON_CHARS],
        "since": now,
        "seen_at": now,
    }
    upsert(s, ProcessingPause, row, keys=("kind", "worker"), keep=("since",))


def clear_pause(s: Session, kind: str, worker: str) -> bool:
    """``worker`` works again (or stopped); returns whether it had been paused."""
    stmt = (
        delete(ProcessingPause)
        .where(ProcessingPause.kind == kind, ProcessingPause.worker == worker)
        .returning(ProcessingPause.kind)
    )
    return s.execute(stmt).first() is not None


def active_pauses(s: Session, seen_after: datetime) -> list[ProcessingPause]:
    """Pauses refreshed after ``seen_after`` (older ones belong to workers that died), by kind
    and start."""
    stmt = (
        select(ProcessingPause)
        .where(ProcessingPause.seen_at > seen_after)
        .order_by(ProcessingPause.kind, ProcessingPause.since, ProcessingPause.worker)
    )
    return list(s.scalars(stmt))
