"""Durable long jobs (imports, training, re-index, clustering): claimed with a lease and a
heartbeat, so a job of a dead process is resumed or failed, never left running.

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush,
never commit."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, case, cast, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from viewfinder.db.models import Job, TaskState, utcnow
from viewfinder.db.statements import claimable

# Keep a runaway traceback from bloating the task table.
MAX_ERROR_CHARS = 4000


def create_job(s: Session, kind: str, params: Mapping[str, Any], total: int = 0) -> Job:
    job = Job(
        id=uuid.uuid4().hex,
        kind=kind,
        state=TaskState.PENDING.value,
        params=dict(params),
        total=total,
        done=0,
        failed=0,
        attempts=0,
    )
    s.add(job)
    s.flush()
    return job


def schedule_job(
    s: Session,
    kind: str,
    params: Mapping[str, Any],
    key: str,
    delay_s: float,
    max_wait_s: float,
) -> Job:
    """Debounce: the one pending job holding ``key`` is put off to ``delay_s`` from now, but
    never later than ``max_wait_s`` after it was first scheduled (a steady stream of work still
    gets runs); without one, a pending job of ``kind`` holding ``key`` is created, due in
    ``delay_s``. Safe under concurrency: the key is unique, so of two transactions creating the
    job at once one fails its insert (in a savepoint) and puts the other's job off instead."""
    for _ in range(3):
        existing = s.scalars(
            select(Job)
            .where(Job.dedupe_key == key, Job.state == TaskState.PENDING.value)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        now = utcnow()
        if existing is not None:
            due = now + timedelta(seconds=delay_s)
            latest = existing.created_at + timedelta(seconds=max_wait_s)
            existing.run_after = max(now, min(due, latest))
            existing.params = dict(params)
            s.flush()
            return existing
        try:
            with s.begin_nested():
                job = create_job(s, kind, params)
                job.dedupe_key = key
                job.run_after = now + timedelta(seconds=delay_s)
                s.flush()
            return job
        except IntegrityError:
            continue  # another transaction created it meanwhile: put that one off
    raise RuntimeError(f"could not schedule the {kind} job ({key})")


def pending_jobs(s: Session, kind: str) -> list[Job]:
    """The pending jobs of ``kind``, oldest first."""
    stmt = (
        select(Job)
        .where(Job.kind == kind, Job.state == TaskState.PENDING.value)
        .order_by(Job.created_at, Job.id)
    )
    return list(s.scalars(stmt))


def get_job(s: Session, job_id: str) -> Job | None:
    """The job as the database has it now (not a stale copy from this session)."""
    return s.get(Job, job_id, populate_existing=True)


def list_jobs(s: Session, kind: str | None = None, limit: int = 50) -> list[Job]:
    """The newest jobs first."""
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    return list(s.scalars(stmt))


def jobs_in_state(s: Session, state: str, limit: int = 50) -> list[Job]:
    """Jobs in ``state`` (``running``, ``pending``...), the oldest first."""
    stmt = select(Job).where(Job.state == state).order_by(Job.created_at, Job.id).limit(limit)
    return list(s.scalars(stmt))


def claim_job(s: Session, kinds: Sequence[str], worker: str) -> Job | None:
    """Move the oldest pending job of one of ``kinds`` to running for ``worker``, with a fresh
    heartbeat; None if none.

    Same pattern as ``claim_tasks``: SKIP LOCKED on PostgreSQL, one atomic UPDATE on SQLite."""
    if not kinds:
        return None
    now = utcnow()
    candidate = claimable(
        s,
        select(Job.id)
        .where(
            Job.state == TaskState.PENDING.value,
            Job.kind.in_(list(kinds)),
            or_(Job.run_after.is_(None), Job.run_after <= now),
        )
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True),
    )
    # Claiming frees the job's dedupe key: work arriving while it runs schedules a new job.
    stmt = (
        update(Job)
        .where(Job.state == TaskState.PENDING.value, Job.id.in_(candidate))
        .values(
            state=TaskState.RUNNING.value,
            claimed_by=worker,
            heartbeat_at=now,
            updated_at=now,
            dedupe_key=None,
        )
        .returning(Job.id)
        .execution_options(synchronize_session="fetch")
    )
    job_id = s.scalars(stmt).first()
    if job_id is None:
        return None
    return s.get(Job, job_id, populate_existing=True)


def heartbeat_job(s: Session, job_id: str, worker: str, **progress: int) -> bool:
    """Renew the heartbeat of a job ``worker`` holds, and set the progress counters given
    (``done``, ``failed``, ``total``); False when ``worker`` no longer holds it."""
    unknown = progress.keys() - {"done", "failed", "total"}
    if unknown:
        raise TypeError(f"jobs have no progress counter(s) {sorted(unknown)}")
    return _update_claimed(s, job_id, worker, heartbeat_at=utcnow(), **progress)


def finish_job(s: Session, job_id: str, worker: str, result: Mapping[str, Any]) -> bool:
    """Record the result of a job ``worker`` holds; False when it no longer holds it."""
    return _update_claimed(
        s, job_id, worker, state=TaskState.DONE.value, result=dict(result), error=None
    )


def fail_job(s: Session, job_id: str, worker: str, error: str, max_attempts: int) -> str | None:
    """Record a failed attempt of a job ``worker`` holds: back to pending while attempts <
    ``max_attempts``, else failed. Returns the new state; None when it no longer holds it."""
    attempts = Job.attempts + 1
    stmt = (
        update(Job)
        .where(*_held(job_id, worker))
        .values(
            attempts=attempts,
            state=case(
                (attempts < max_attempts, TaskState.PENDING.value), else_=TaskState.FAILED.value
            ),
            error=error[:MAX_ERROR_CHARS],
            updated_at=utcnow(),
        )
        .returning(Job.state)
        .execution_options(synchronize_session="fetch")
    )
    return s.scalars(stmt).first()


def release_job(s: Session, job_id: str, worker: str) -> bool:
    """Hand back a job ``worker`` holds but will not finish (it is stopping): pending again, no
    attempt counted. False when it no longer holds it."""
    return _update_claimed(
        s, job_id, worker, state=TaskState.PENDING.value, claimed_by=None, heartbeat_at=None
    )


def requeue_stale_jobs(s: Session, older_than: datetime, max_attempts: int) -> tuple[int, int]:
    """Running jobs whose heartbeat is older than ``older_than`` lost their worker: each counts
    an attempt and goes back to pending, or fails once attempts reach ``max_attempts`` (so a job
    that kills its worker does not kill worker after worker). Returns (requeued, failed).

    A running job with no heartbeat at all (claimed before heartbeats existed) is judged by its
    ``updated_at``."""
    stale = (
        Job.state == TaskState.RUNNING.value,
        func.coalesce(Job.heartbeat_at, Job.updated_at) < older_than,
    )
    attempts = Job.attempts + 1
    reason = (
        literal("its worker stopped responding (", String)
        + cast(attempts, String)
        + literal(" attempts)", String)
    )
    failed = s.execute(
        update(Job)
        .where(*stale, attempts >= max_attempts)
        .values(state=TaskState.FAILED.value, attempts=attempts, error=reason, updated_at=utcnow())
        .returning(Job.id)
        .execution_options(synchronize_session="fetch")
    ).all()
    requeued = s.execute(
        update(Job)
        .where(*stale)
        .values(
            state=TaskState.PENDING.value,
            attempts=attempts,
            claimed_by=None,
            heartbeat_at=None,
            updated_at=utcnow(),
        )
        .returning(Job.id)
        .execution_options(synchronize_session="fetch")
    ).all()
    return len(requeued), len(failed)


def _held(job_id: str, worker: str) -> tuple[ColumnElement[bool], ...]:
    """The job, while it is running under ``worker``'s claim."""
    return (Job.id == job_id, Job.state == TaskState.RUNNING.value, Job.claimed_by == worker)


def _update_claimed(s: Session, job_id: str, worker: str, **values: Any) -> bool:
    stmt = (
        update(Job)
        .where(*_held(job_id, worker))
        .values(updated_at=utcnow(), **values)
        .returning(Job.id)
        .execution_options(synchronize_session="fetch")
    )
    return s.execute(stmt).first() is not None
