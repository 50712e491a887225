"""SQL building blocks the query modules share: bounded IN lists, claims computed once,
upserts on both backends, int64 columns read without the ORM.

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush,
never commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from viewfinder.db.models import Base

T = TypeVar("T")
# Bound parameters per IN (...) list: SQLite accepts 32766, and smaller lists plan faster.
IN_CHUNK = 5000


def claimable(s: Session, candidates: Select[T]) -> Select[T]:
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


def int64_column(s: Session, stmt: Select[int]) -> NDArray[np.int64]:
    # Through the session's Core connection: plain tuples, no ORM entity bookkeeping.
    result = s.connection().execute(stmt)
    return np.fromiter((row[0] for row in result), dtype=np.int64)


def upsert(
    s: Session,
    entity: type[Base],
    values: dict[str, Any] | list[dict[str, Any]],
    keys: Sequence[str],
    keep: Sequence[str] = (),
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET every other column but ``keep`` (of one row,
    or of rows that all have the same columns): the same statement on both backends, built by
    each dialect's own ``insert``."""
    first = values[0] if isinstance(values, list) else values
    changed = [name for name in first if name not in keys and name not in keep]
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


def ping(s: Session) -> None:
    """One round trip to the database (``SELECT 1``); raises when it cannot be reached."""
    s.execute(select(1))
