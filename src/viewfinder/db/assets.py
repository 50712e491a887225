"""Queries and commands over assets: one stored image each, identified by its content.

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush,
never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, Select, case, delete, func, or_, select
from sqlalchemy.orm import Session

from viewfinder.db.models import Asset, AssetTask, TaskState
from viewfinder.db.statements import IN_CHUNK, int64_column

# The order of a page of assets: ``id`` (the order they were added, the default), or by when
# each photo was taken, ``newest`` or ``oldest`` first (see ``taken_at``).
AssetOrder = Literal["id", "newest", "oldest"]
T = TypeVar("T")
# A timeline bucket: a calendar month ("2024-05") or day ("2024-05-31"), in UTC.
Granularity = Literal["month", "day"]


def taken_at() -> ColumnElement[datetime]:
    """When the photo was taken: its EXIF capture time, else when it was added."""
    return func.coalesce(Asset.captured_at, Asset.created_at)


def _ordered(stmt: Select[T], order: AssetOrder) -> Select[T]:
    """Ties broken by id in the same direction: a total, stable order for paging."""
    if order == "newest":
        return stmt.order_by(taken_at().desc(), Asset.id.desc())
    if order == "oldest":
        return stmt.order_by(taken_at(), Asset.id)
    return stmt.order_by(Asset.id)


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
    order: AssetOrder = "id",
) -> list[Asset]:
    """Assets matching the filters (see ``asset_filters``) in ``order``."""
    conditions = asset_filters(folder, include_subfolders, captured_from, captured_to)
    return assets_where(s, conditions, order, limit=limit, offset=offset)


def assets_where(
    s: Session,
    conditions: Sequence[ColumnElement[bool]],
    order: AssetOrder,
    *,
    limit: int,
    offset: int = 0,
) -> list[Asset]:
    """A page of the assets meeting ``conditions`` in ``order`` (see ``_ordered``)."""
    stmt = _ordered(select(Asset).where(*conditions), order).limit(limit).offset(offset)
    return list(s.scalars(stmt))


def timeline(
    s: Session,
    granularity: Granularity,
    *,
    newest_first: bool = True,
    folder: str | None = None,
    include_subfolders: bool = True,
) -> list[tuple[str, int]]:
    """(bucket, assets) per UTC month or day of ``taken_at``, in the order of the assets'
    ``newest`` (or ``oldest``) sort, empty buckets left out."""
    column = taken_at()
    if s.get_bind().dialect.name == "postgresql":
        fmt = "YYYY-MM" if granularity == "month" else "YYYY-MM-DD"
        bucket = func.to_char(func.timezone("UTC", column), fmt)
    else:  # SQLite keeps UTC text: strftime reads it as is
        bucket = func.strftime("%Y-%m" if granularity == "month" else "%Y-%m-%d", column)
    key = bucket.label("bucket")
    conditions = asset_filters(folder, include_subfolders, None, None)
    stmt = (
        select(key, func.count())
        .where(*conditions)
        .group_by(key)
        .order_by(key.desc() if newest_first else key)
    )
    return [(str(b), int(n)) for b, n in s.execute(stmt)]


def folder_counts(s: Session) -> list[tuple[str, int]]:
    """(folder, assets directly in it) for every folder that holds assets, sorted by folder."""
    stmt = select(Asset.folder, func.count()).group_by(Asset.folder).order_by(Asset.folder)
    return [(str(f), int(n)) for f, n in s.execute(stmt)]


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
    return int64_column(s, stmt)


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


def assets_by_id(s: Session, asset_ids: Sequence[int]) -> dict[int, Asset]:
    if not asset_ids:
        return {}
    return {a.id: a for a in s.scalars(select(Asset).where(Asset.id.in_(list(asset_ids))))}


def ids_in_order(s: Session, asset_ids: Sequence[int], order: AssetOrder) -> list[int]:
    """``asset_ids`` that exist, in the order of a page of assets (see ``_ordered``): the
    timeline's order for a set of search hits. At most ``IN_CHUNK`` ids."""
    wanted = list(dict.fromkeys(int(i) for i in asset_ids))
    if not wanted:
        return []
    if len(wanted) > IN_CHUNK:
        raise ValueError(f"at most {IN_CHUNK} ids, got {len(wanted)}")
    stmt = _ordered(select(Asset.id).where(Asset.id.in_(wanted)), order)
    return [int(i) for i in s.scalars(stmt)]


def sizes(s: Session, asset_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(width, height) of each existing asset, from the row (no file is read)."""
    stmt = select(Asset.id, Asset.width, Asset.height).where(Asset.id.in_(list(asset_ids)))
    return {int(i): (int(w), int(h)) for i, w, h in s.execute(stmt)}


def placements(s: Session, asset_ids: Sequence[int]) -> list[tuple[int, str, datetime | None]]:
    """(id, folder, captured_at) of each existing asset, in IN lists of ``IN_CHUNK``."""
    wanted = [int(i) for i in asset_ids]
    rows: list[tuple[int, str, datetime | None]] = []
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        stmt = select(Asset.id, Asset.folder, Asset.captured_at).where(Asset.id.in_(chunk))
        rows.extend((int(i), f, c) for i, f, c in s.execute(stmt))
    return rows


def known_uris(
    s: Session, uris: Sequence[str], column: Literal["source_url", "original_uri"]
) -> set[str]:
    """Which of ``uris`` an asset already has in ``column``."""
    field = Asset.source_url if column == "source_url" else Asset.original_uri
    return {u for u in s.scalars(select(field).where(field.in_(list(uris)))) if u}


def captioned_with_any(
    s: Session,
    words: Sequence[str],
    limit: int,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> list[tuple[int, str]]:
    """(id, caption) of assets whose caption contains one of ``words`` (case-blind) and that
    meet ``conditions``: those containing the most words first (then by id), at most ``limit``."""
    lowered = func.lower(Asset.caption)
    found = [lowered.contains(w) for w in words]
    stmt = (
        select(Asset.id, Asset.caption)
        .where(Asset.caption.is_not(None), or_(*found), *conditions)
        .order_by(count_true(found).desc(), Asset.id)
        .limit(limit)
    )
    return [(int(i), c or "") for i, c in s.execute(stmt)]


def count_true(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[int]:
    """SQL: how many of ``conditions`` hold for a row (to rank rows by words matched)."""
    return sum((case((c, 1), else_=0) for c in conditions[1:]), case((conditions[0], 1), else_=0))
