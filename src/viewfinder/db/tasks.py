"""The per-asset task queue: claims with a lease and a token, completion, failure, recovery.

A claim is ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (workers on many machines never take the
same task) and a plain UPDATE on SQLite (one writer at a time already).

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush,
never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, case, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from viewfinder.db.models import Asset, AssetTask, TaskState, utcnow
from viewfinder.db.statements import IN_CHUNK, claimable, upsert

# Keep a runaway traceback from bloating the task table.
MAX_ERROR_CHARS = 4000
_TASK_RESET = {"claimed_by": None, "claimed_at": None}


def claim_tasks(s: Session, kind: str, claimant: str, limit: int) -> dict[int, int]:
    """Move up to ``limit`` pending tasks of ``kind`` (lowest asset id first) to running for
    ``claimant`` (a token unique to this claim: ``worker_name/random``); returns each claimed
    asset id (ascending) with the attempts the task had already used.

    One UPDATE ... WHERE asset_id IN (candidates) RETURNING statement, atomic on both backends:
    PostgreSQL's candidates take ``FOR UPDATE SKIP LOCKED`` so concurrent claimers pass over each
    other's rows instead of queueing; SQLite runs the statement under its single write lock.
    Commit soon after claiming: on SQLite the write lock is held until then."""
    if limit <= 0:
        return {}
    now = utcnow()
    candidates = claimable(
        s,
        select(AssetTask.asset_id)
        .where(AssetTask.kind == kind, AssetTask.state == TaskState.PENDING.value)
        .order_by(AssetTask.asset_id)
        .limit(limit)
        .with_for_update(skip_locked=True),
    )
    stmt = (
        update(AssetTask)
        .where(
            AssetTask.kind == kind,
            AssetTask.state == TaskState.PENDING.value,
            AssetTask.asset_id.in_(candidates),
        )
        .values(state=TaskState.RUNNING.value, claimed_by=claimant, claimed_at=now, updated_at=now)
        .returning(AssetTask.asset_id, AssetTask.attempts)
        .execution_options(synchronize_session="fetch")
    )
    return dict(sorted((int(row[0]), int(row[1])) for row in s.execute(stmt)))


def _owned(kind: str, claimant: str | None) -> list[ColumnElement[bool]]:
    """Rows of ``kind`` still held by ``claimant``: a claim lost to a lease expiry (and maybe
    taken by another worker since) no longer matches, so a late result is never written twice."""
    if claimant is None:
        return [AssetTask.kind == kind]
    return [
        AssetTask.kind == kind,
        AssetTask.state == TaskState.RUNNING.value,
        AssetTask.claimed_by == claimant,
    ]


def complete_tasks(
    s: Session, asset_ids: Sequence[int], kind: str, claimant: str | None = None
) -> list[int]:
    """Mark tasks done in one statement; returns those that were (a task is missing when its
    asset was deleted meanwhile, or when ``claimant`` no longer holds it)."""
    if not asset_ids:
        return []
    stmt = (
        update(AssetTask)
        .where(*_owned(kind, claimant), AssetTask.asset_id.in_(list(asset_ids)))
        .values(state=TaskState.DONE.value, last_error=None, updated_at=utcnow(), **_TASK_RESET)
        .returning(AssetTask.asset_id)
        .execution_options(synchronize_session="fetch")
    )
    return sorted(s.scalars(stmt))


def fail_task(
    s: Session,
    asset_id: int,
    kind: str,
    error: str,
    max_attempts: int,
    claimant: str | None = None,
) -> str:
    """Record a failed attempt; the task goes back to pending while attempts < ``max_attempts``,
    else to failed. Returns the new state. Raises ``LookupError`` when there is no such task (or
    ``claimant`` no longer holds it)."""
    attempts = AssetTask.attempts + 1
    stmt = (
        update(AssetTask)
        .where(AssetTask.asset_id == asset_id, *_owned(kind, claimant))
        .values(
            attempts=attempts,
            state=case(
                (attempts < max_attempts, TaskState.PENDING.value), else_=TaskState.FAILED.value
            ),
            last_error=error[:MAX_ERROR_CHARS],
            updated_at=utcnow(),
            **_TASK_RESET,
        )
        .returning(AssetTask.state)
        .execution_options(synchronize_session="fetch")
    )
    state = s.scalars(stmt).first()
    if state is None:
        raise LookupError(f"no {kind!r} task for asset {asset_id} held by {claimant or 'anyone'}")
    return state


def renew_claims(s: Session, kind: str, claimant: str) -> int:
    """Refresh the lease of every task ``claimant`` still holds; returns how many."""
    now = utcnow()
    stmt = (
        update(AssetTask)
        .where(*_owned(kind, claimant))
        .values(claimed_at=now, updated_at=now)
        .returning(AssetTask.asset_id)
        .execution_options(synchronize_session="fetch")
    )
    return len(s.scalars(stmt).all())


def release_tasks(
    s: Session, kind: str, claimant: str, asset_ids: Sequence[int] | None = None
) -> int:
    """Give tasks ``claimant`` holds (all, or these) back to pending without counting an
    attempt: the work was not tried (a store that failed, a batch split, a shutdown)."""
    conditions = _owned(kind, claimant)
    if asset_ids is not None:
        conditions.append(AssetTask.asset_id.in_(list(asset_ids)))
    stmt = (
        update(AssetTask)
        .where(*conditions)
        .values(state=TaskState.PENDING.value, updated_at=utcnow(), **_TASK_RESET)
        .returning(AssetTask.asset_id)
        .execution_options(synchronize_session="fetch")
    )
    return len(s.scalars(stmt).all())


def requeue_stale(s: Session, kind: str, older_than: datetime, max_attempts: int) -> int:
    """Running tasks whose lease was last renewed before ``older_than`` belong to a worker that
    died (or hangs): each such claim counts as an attempt, since the task may be what killed it
    (a batch that runs out of memory); under ``max_attempts`` it goes back to pending, at the
    limit it fails with that reason instead of killing worker after worker. Returns how many
    went back to pending or failed."""
    attempts = AssetTask.attempts + 1
    stmt = (
        update(AssetTask)
        .where(
            AssetTask.kind == kind,
            AssetTask.state == TaskState.RUNNING.value,
            AssetTask.claimed_at < older_than,
        )
        .values(
            attempts=attempts,
            state=case(
                (attempts < max_attempts, TaskState.PENDING.value), else_=TaskState.FAILED.value
            ),
            last_error=literal("its worker ")
            + AssetTask.claimed_by
            + literal(" stopped while processing it"),
            updated_at=utcnow(),
            **_TASK_RESET,
        )
        .returning(AssetTask.asset_id)
        .execution_options(synchronize_session="fetch")
    )
    return len(s.scalars(stmt).all())


def release_worker(s: Session, kind: str, worker: str) -> int:
    """Every running task of ``kind`` held by any claim of ``worker`` (``worker/...``) goes
    back to pending without counting an attempt; returns how many. For a worker that stops
    cleanly and hands back what it could not finish."""
    stmt = (
        update(AssetTask)
        .where(
            AssetTask.kind == kind,
            AssetTask.state == TaskState.RUNNING.value,
            func.substr(AssetTask.claimed_by, 1, len(worker) + 1) == worker + "/",
        )
        .values(state=TaskState.PENDING.value, updated_at=utcnow(), **_TASK_RESET)
        .returning(AssetTask.asset_id)
        .execution_options(synchronize_session="fetch")
    )
    return len(s.scalars(stmt).all())


def task_counts(s: Session, kind: str) -> dict[str, int]:
    """Tasks of ``kind`` per state; every state is present, zeros included."""
    counts = {state.value: 0 for state in TaskState}
    stmt = (
        select(AssetTask.state, func.count())
        .where(AssetTask.kind == kind)
        .group_by(AssetTask.state)
    )
    counts.update(s.execute(stmt).all())
    return counts


def task_state(s: Session, asset_id: int, kind: str) -> AssetTask | None:
    """The task row as the database has it now (not a stale copy from this session)."""
    return s.get(AssetTask, (asset_id, kind), populate_existing=True)


def enqueue_task(s: Session, asset_id: int, kind: str) -> None:
    """Make a task pending with a fresh attempt count, creating it if needed (re-processing)."""
    enqueue_tasks(s, [asset_id], kind)


def enqueue_tasks(s: Session, asset_ids: Sequence[int], kind: str) -> None:
    """``enqueue_task`` for many assets in one statement per ``IN_CHUNK``."""
    now = utcnow()
    for start in range(0, len(asset_ids), IN_CHUNK):
        rows = [
            {
                "asset_id": int(asset_id),
                "kind": kind,
                "state": TaskState.PENDING.value,
                "attempts": 0,
                "last_error": None,
                "updated_at": now,
                **_TASK_RESET,
            }
            for asset_id in asset_ids[start : start + IN_CHUNK]
        ]
        upsert(s, AssetTask, rows, keys=("asset_id", "kind"))


def counts_by_kind(s: Session) -> dict[str, dict[str, int]]:
    """Tasks per kind and state in one query; every state of a kind present, zeros included.
    Only kinds that have tasks appear."""
    stmt = select(AssetTask.kind, AssetTask.state, func.count()).group_by(
        AssetTask.kind, AssetTask.state
    )
    counts: dict[str, dict[str, int]] = {}
    for kind, state, n in s.execute(stmt):
        counts.setdefault(kind, {st.value: 0 for st in TaskState})[state] = int(n)
    return counts


def recent_failures(s: Session, kind: str, limit: int) -> list[AssetTask]:
    """The tasks of ``kind`` that failed for good, the latest first (ties by asset id)."""
    stmt = (
        select(AssetTask)
        .where(AssetTask.kind == kind, AssetTask.state == TaskState.FAILED.value)
        .order_by(AssetTask.updated_at.desc(), AssetTask.asset_id)
        .limit(limit)
    )
    return list(s.scalars(stmt))


def oldest_pending(s: Session, kind: str) -> datetime | None:
    """When the longest-waiting pending task of ``kind`` was queued (or last given back)."""
    stmt = select(func.min(AssetTask.updated_at)).where(
        AssetTask.kind == kind, AssetTask.state == TaskState.PENDING.value
    )
    value = s.scalar(stmt)
    return value if isinstance(value, datetime) else None


def retrying_count(s: Session, kind: str) -> int:
    """Pending tasks of ``kind`` that failed at least once and will be tried again."""
    stmt = select(func.count()).where(
        AssetTask.kind == kind,
        AssetTask.state == TaskState.PENDING.value,
        AssetTask.attempts > 0,
    )
    return int(s.scalar(stmt) or 0)


def enqueue_missing_tasks(s: Session, kind: str, limit: int | None = None) -> int:
    """Give a pending ``kind`` task to assets that have none (those stored before the kind
    existed or while it was switched off), lowest asset id first; returns how many.

    Assets whose task is done or failed are left alone: re-processing is ``enqueue_task``."""
    has_task = exists().where(AssetTask.asset_id == Asset.id, AssetTask.kind == kind)
    stmt = select(Asset.id).where(~has_task).order_by(Asset.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    asset_ids = list(s.scalars(stmt))
    if asset_ids:
        now = utcnow()
        s.execute(
            insert(AssetTask),
            [
                {
                    "asset_id": asset_id,
                    "kind": kind,
                    "state": TaskState.PENDING.value,
                    "attempts": 0,
                    "updated_at": now,
                }
                for asset_id in asset_ids
            ],
        )
    return len(asset_ids)
