"""Queries and commands over collections and their members (callers own the transaction)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from viewfinder.db.models import Asset, Collection, CollectionMember


def create_collection(s: Session, name: str, description: str | None = None) -> Collection:
    collection = Collection(name=name, description=description)
    s.add(collection)
    s.flush()
    return collection


def get_collection(s: Session, collection_id: int) -> Collection | None:
    return s.get(Collection, collection_id)


def list_collections(s: Session) -> list[tuple[Collection, int]]:
    """Every collection with its member count, ordered by id."""
    counts = (
        select(CollectionMember.collection_id, func.count().label("n"))
        .group_by(CollectionMember.collection_id)
        .subquery()
    )
    stmt = (
        select(Collection, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.collection_id == Collection.id)
        .order_by(Collection.id)
    )
    return [(c, int(n)) for c, n in s.execute(stmt)]


def delete_collection(s: Session, collection_id: int) -> bool:
    stmt = delete(Collection).where(Collection.id == collection_id).returning(Collection.id)
    return s.execute(stmt).first() is not None


def existing_asset_ids(s: Session, asset_ids: Sequence[int]) -> set[int]:
    if not asset_ids:
        return set()
    return set(s.scalars(select(Asset.id).where(Asset.id.in_(list(asset_ids)))))


def add_members(s: Session, collection_id: int, asset_ids: Sequence[int]) -> int:
    """Add assets (already-present members are ignored); returns how many were new."""
    if not asset_ids:
        return 0
    rows = [{"collection_id": collection_id, "asset_id": a} for a in sorted(set(asset_ids))]
    before = member_count(s, collection_id)
    dialect = s.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    s.execute(insert(CollectionMember).values(rows).on_conflict_do_nothing())
    return member_count(s, collection_id) - before


def remove_members(s: Session, collection_id: int, asset_ids: Sequence[int]) -> int:
    stmt = (
        delete(CollectionMember)
        .where(
            CollectionMember.collection_id == collection_id,
            CollectionMember.asset_id.in_(list(asset_ids)),
        )
        .returning(CollectionMember.asset_id)
    )
    return len(s.execute(stmt).all())


def member_count(s: Session, collection_id: int) -> int:
    stmt = select(func.count()).where(CollectionMember.collection_id == collection_id)
    return int(s.scalar(stmt) or 0)


def member_ids(s: Session, collection_id: int) -> NDArray[np.int64]:
    stmt = (
        select(CollectionMember.asset_id)
        .where(CollectionMember.collection_id == collection_id)
        .order_by(CollectionMember.asset_id)
    )
    return np.fromiter(s.scalars(stmt), dtype=np.int64)


def members(s: Session, collection_id: int, limit: int, offset: int) -> list[Asset]:
    stmt = (
        select(Asset)
        .join(CollectionMember, CollectionMember.asset_id == Asset.id)
        .where(CollectionMember.collection_id == collection_id)
        .order_by(Asset.id)
        .limit(limit)
        .offset(offset)
    )
    return list(s.scalars(stmt))
