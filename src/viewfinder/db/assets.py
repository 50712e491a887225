"""Queries and commands over assets: one stored image each, identified by its content.

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush,
never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from viewfinder.db.models import Asset, AssetTask, TaskState
from viewfinder.db.statements import int64_column


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
