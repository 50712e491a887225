"""Queries and commands over the metadata schema.

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush, never
commit. The same code runs on SQLite and PostgreSQL; where they differ (claiming work, upserts)
the difference is local to one helper and explained there."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    case,
    cast,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from viewfinder.db.models import Asset, AssetTask, Base, Embedding, Job, TaskState, utcnow
from viewfinder.db.vectors import decode_vectors, encode_vector

# Bound parameters per IN (...) list: SQLite accepts 32766, and smaller lists plan faster.
IN_CHUNK = 5000
# Keep a runaway traceback from bloating the task table.
MAX_ERROR_CHARS = 4000

T = TypeVar("T")

_TASK_RESET = {"claimed_by": None, "claimed_at": None}


# --- assets ---------------------------------------------------------------------------------------


def get_asset(s: Session, asset_id: int) -> Asset | None:
    return s.get(Asset, asset_id)


def get_asset_by_sha(s: Session, sha256: str) -> Asset | None:
    return s.scalars(select(Asset).where(Asset.sha256 == sha256)).one_or_none()


def original_refs(s: Session, asset_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """Where each existing asset's original is: ``(sha256, original_uri)``, in one query."""
    stmt = select(Asset.id, Asset.sha256, Asset.original_uri).where(Asset.id.in_(list(asset_ids)))
    return {int(row[0]): (row[1], row[2]) for row in s.execute(stmt)}


def add_asset(s: Session, asset: Asset, task_kinds: Sequence[str]) -> Asset:
    """Insert ``asset`` with one pending task per kind; flushes, so ``asset.id`` is set.

    A duplicate ``sha256`` raises ``IntegrityError`` at the flush (the caller rolls back)."""
    s.add(asset)
    s.flush()
    for kind in dict.fromkeys(task_kinds):
        s.add(AssetTask(asset_id=asset.id, kind=kind, state=TaskState.PENDING.value, attempts=0))
    s.flush()
    return asset


def list_assets(
    s: Session,
    *,
    limit: int = 100,
    offset: int = 0,
    folder: str | None = None,
    include_subfolders: bool = True,
    captured_from: datetime | None = None,
    captured_to: datetime | None = None,
) -> list[Asset]:
    """Assets matching the filters (see ``asset_filters``), ordered by id."""
    conditions = asset_filters(folder, include_subfolders, captured_from, captured_to)
    stmt = select(Asset).where(*conditions).order_by(Asset.id).limit(limit).offset(offset)
    return list(s.scalars(stmt))


def count_assets(
    s: Session,
    *,
    folder: str | None = None,
    include_subfolders: bool = True,
    captured_from: datetime | None = None,
    captured_to: datetime | None = None,
) -> int:
    conditions = asset_filters(folder, include_subfolders, captured_from, captured_to)
    return s.scalar(select(func.count()).select_from(Asset).where(*conditions)) or 0


def asset_ids_matching(
    s: Session,
    *,
    folder: str | None = None,
    include_subfolders: bool = True,
    captured_from: datetime | None = None,
    captured_to: datetime | None = None,
) -> NDArray[np.int64]:
    """Sorted ids of the assets matching the filters: the allow-list of a filtered vector search.

    Reads only the id column through Core (no ORM objects), so 100k+ ids stay cheap."""
    conditions = asset_filters(folder, include_subfolders, captured_from, captured_to)
    stmt = select(Asset.id).where(*conditions).order_by(Asset.id)
    return _int64_column(s, stmt)


def asset_filters(
    folder: str | None,
    include_subfolders: bool,
    captured_from: datetime | None,
    captured_to: datetime | None,
) -> list[ColumnElement[bool]]:
    """WHERE conditions for the asset filters.

    ``folder``: ``None`` is no filter and ``""`` the root; leading/trailing "/" are ignored. With
    ``include_subfolders`` it matches the folder itself and everything below it ("nature" matches
    "nature" and "nature/birds", never "naturephotos"), so the root then matches everything.
    Captured times are a half-open range ``captured_from <= captured_at < captured_to``; an asset
    with no capture time never matches a time filter."""
    conditions: list[ColumnElement[bool]] = []
    if folder is not None:
        folder = folder.strip("/")
        if not include_subfolders:
            conditions.append(Asset.folder == folder)
        elif folder:
            # A prefix comparison rather than LIKE: no wildcards to escape ("%", "_" are common in
            # folder names) and case-sensitive on SQLite too, whose LIKE ignores ASCII case.
            below = folder + "/"
            conditions.append(
                (Asset.folder == folder) | (func.substr(Asset.folder, 1, len(below)) == below)
            )
    if captured_from is not None:
        conditions.append(Asset.captured_at >= captured_from)
    if captured_to is not None:
        conditions.append(Asset.captured_at < captured_to)
    return conditions


def delete_asset(s: Session, asset_id: int) -> bool:
    """Delete an asset; its tasks and embeddings go with it (ON DELETE CASCADE)."""
    deleted = s.execute(delete(Asset).where(Asset.id == asset_id).returning(Asset.id)).first()
    return deleted is not None


def folders(s: Session) -> list[str]:
    """The distinct folders that hold assets, sorted."""
    return list(s.scalars(select(Asset.folder).distinct().order_by(Asset.folder)))


# --- task queue -----------------------------------------------------------------------------------


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
    candidates = _claimable(
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


def complete_task(s: Session, asset_id: int, kind: str, claimant: str | None = None) -> bool:
    """Mark one task done; False when there is no such task (or the claim was lost)."""
    return bool(complete_tasks(s, [asset_id], kind, claimant))


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
        _upsert(s, AssetTask, rows, keys=("asset_id", "kind"))


# --- embeddings -----------------------------------------------------------------------------------


def put_embedding(s: Session, asset_id: int, model: str, vector: NDArray[np.float32]) -> None:
    """Store (or replace) ``model``'s embedding of an asset."""
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"an embedding is a non-empty 1-D vector, got shape {vector.shape}")
    values = {
        "asset_id": asset_id,
        "model": model,
        "dim": int(vector.shape[0]),
        "vector": encode_vector(vector),
        "created_at": utcnow(),
    }
    _upsert(s, Embedding, values, keys=("asset_id", "model"))


def get_embeddings(
    s: Session, model: str, asset_ids: Iterable[int]
) -> dict[int, NDArray[np.float32]]:
    """``model``'s embeddings of those assets that have one, keyed by asset id."""
    wanted = list(dict.fromkeys(int(i) for i in asset_ids))
    found: dict[int, NDArray[np.float32]] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        stmt = select(Embedding.asset_id, Embedding.dim, Embedding.vector).where(
            Embedding.model == model, Embedding.asset_id.in_(chunk)
        )
        for asset_id, dim, blob in s.execute(stmt):
            found[asset_id] = decode_vectors([blob], dim)[0]
    return found


def iter_embeddings(
    s: Session, model: str, batch_size: int = 10_000
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
    """All of ``model``'s embeddings in asset-id order, as (ids, matrix) batches.

    Keyset pagination (``asset_id > last``) keeps every batch an index range scan however deep
    into a million rows it is, and rows are read as tuples, never as ORM objects."""
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    last_id: int | None = None
    while True:
        stmt = select(Embedding.asset_id, Embedding.dim, Embedding.vector).where(
            Embedding.model == model
        )
        if last_id is not None:
            stmt = stmt.where(Embedding.asset_id > last_id)
        rows = s.execute(stmt.order_by(Embedding.asset_id).limit(batch_size)).all()
        if not rows:
            return
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        dims = {row[1] for row in rows}
        if len(dims) != 1:
            raise ValueError(f"model {model!r} has embeddings of several sizes: {sorted(dims)}")
        yield ids, decode_vectors([row[2] for row in rows], dims.pop())
        if len(rows) < batch_size:
            return
        last_id = int(ids[-1])


def embedding_ids(s: Session, model: str) -> NDArray[np.int64]:
    """Sorted ids of the assets that have an embedding from ``model``."""
    stmt = select(Embedding.asset_id).where(Embedding.model == model).order_by(Embedding.asset_id)
    return _int64_column(s, stmt)


def embedding_dim(s: Session, model: str) -> int | None:
    """The size of ``model``'s vectors, or None while it has none."""
    return s.scalar(select(Embedding.dim).where(Embedding.model == model).limit(1))


def count_embeddings(s: Session, model: str) -> int:
    stmt = select(func.count()).select_from(Embedding).where(Embedding.model == model)
    return s.scalar(stmt) or 0


# --- jobs -----------------------------------------------------------------------------------------
#
# A job is pending until a worker claims it (running, ``claimed_by`` = the claim's token,
# ``heartbeat_at`` renewed while it runs), then done or failed. Every write a worker makes to a
# claimed job is fenced on its token: once the job was handed back or requeued, the old claim's
# writes change nothing.


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


def get_job(s: Session, job_id: str) -> Job | None:
    """The job as the database has it now (not a stale copy from this session)."""
    return s.get(Job, job_id, populate_existing=True)


def list_jobs(s: Session, kind: str | None = None, limit: int = 50) -> list[Job]:
    """The newest jobs first."""
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    return list(s.scalars(stmt))


def claim_job(s: Session, kinds: Sequence[str], worker: str) -> Job | None:
    """Move the oldest pending job of one of ``kinds`` to running for ``worker``, with a fresh
    heartbeat; None if none.

    Same pattern as ``claim_tasks``: SKIP LOCKED on PostgreSQL, one atomic UPDATE on SQLite."""
    if not kinds:
        return None
    candidate = _claimable(
        s,
        select(Job.id)
        .where(Job.state == TaskState.PENDING.value, Job.kind.in_(list(kinds)))
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True),
    )
    now = utcnow()
    stmt = (
        update(Job)
        .where(Job.state == TaskState.PENDING.value, Job.id.in_(candidate))
        .values(state=TaskState.RUNNING.value, claimed_by=worker, heartbeat_at=now, updated_at=now)
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


# --- helpers --------------------------------------------------------------------------------------


def _claimable(s: Session, candidates: Select[T]) -> Select[T]:
    """The rows a claim will take, computed exactly once.

    As a plain ``IN (subquery)`` PostgreSQL may plan a nested-loop semi-join that re-runs the
    LIMIT ... FOR UPDATE SKIP LOCKED subquery for every outer row, each run locking more rows (one
    claim took every pending task, PostgreSQL 15): a MATERIALIZED CTE is evaluated once. SQLite
    evaluates an uncorrelated IN subquery once already, and there a leading WITH would hide the
    UPDATE from pysqlite, which then skips its implicit BEGIN and autocommits the claim outside
    the caller's transaction."""
    if s.get_bind().dialect.name != "postgresql":
        return candidates
    cte = candidates.cte("candidates").prefix_with("MATERIALIZED")
    return select(*cte.c)


def _int64_column(s: Session, stmt: Select[int]) -> NDArray[np.int64]:
    # Through the session's Core connection: plain tuples, no ORM entity bookkeeping.
    result = s.connection().execute(stmt)
    return np.fromiter((row[0] for row in result), dtype=np.int64)


def _upsert(
    s: Session,
    entity: type[Base],
    values: dict[str, Any] | list[dict[str, Any]],
    keys: Sequence[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET every other column (of one row, or of rows
    that all have the same columns): the same statement on both backends, built by each
    dialect's own ``insert``."""
    first = values[0] if isinstance(values, list) else values
    changed = [name for name in first if name not in keys]
    if s.get_bind().dialect.name == "postgresql":
        pg_stmt = postgresql.insert(entity).values(values)
        excluded = pg_stmt.excluded
        s.execute(
            pg_stmt.on_conflict_do_update(
                index_elements=list(keys), set_={name: excluded[name] for name in changed}
            )
        )
        return
    lite_stmt = sqlite.insert(entity).values(values)
    excluded = lite_stmt.excluded
    s.execute(
        lite_stmt.on_conflict_do_update(
            index_elements=list(keys), set_={name: excluded[name] for name in changed}
        )
    )
