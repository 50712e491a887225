"""What a search may return: the filters of a library search, as SQL conditions on ``assets``.

Every vector store applies the same filters: the embedded index and Qdrant's person filter take
the matching ids these conditions select, pgvector puts them in the same query as the vector
ordering, and Qdrant turns folder and capture date into payload filters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from viewfinder.db import assets as assets_repo
from viewfinder.db.models import Asset, CollectionMember, Embedding, Face


@dataclass(frozen=True)
class SearchFilters:
    folder: str | None = None
    include_subfolders: bool = True
    captured_from: datetime | None = None
    captured_to: datetime | None = None
    person_ids: tuple[int, ...] = ()  # every one of these people must appear in the image
    collection_id: int | None = None  # only members of this collection

    @property
    def active(self) -> bool:
        dated = (self.folder, self.captured_from, self.captured_to, self.collection_id)
        return any(v is not None for v in dated) or bool(self.person_ids)

    @property
    def folder_prefix(self) -> str | None:
        """The folder as stored (no leading or trailing "/"), or None without a folder filter."""
        return None if self.folder is None else self.folder.strip("/")


def asset_conditions(filters: SearchFilters) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``Asset`` selecting the assets these filters allow."""
    conditions = assets_repo.asset_filters(
        filters.folder, filters.include_subfolders, filters.captured_from, filters.captured_to
    )
    if filters.person_ids:
        wanted = sorted(set(filters.person_ids))
        with_people = (
            select(Face.asset_id)
            .where(Face.person_id.in_(wanted))
            .group_by(Face.asset_id)
            .having(func.count(func.distinct(Face.person_id)) == len(wanted))
        )
        conditions.append(Asset.id.in_(with_people))
    if filters.collection_id is not None:
        members = select(CollectionMember.asset_id).where(
            CollectionMember.collection_id == filters.collection_id
        )
        conditions.append(Asset.id.in_(members))
    return conditions


def matching_ids(session: Session, filters: SearchFilters) -> NDArray[np.int64]:
    """Sorted ids of the assets the filters allow: the allow-list of an in-process search."""
    stmt = select(Asset.id).where(*asset_conditions(filters)).order_by(Asset.id)
    result = session.connection().execute(stmt)
    return np.fromiter((row[0] for row in result), dtype=np.int64)


def permitted(session: Session, asset_ids: Iterable[int], filters: SearchFilters) -> set[int]:
    """Which of ``asset_ids`` the filters allow."""
    wanted = list(asset_ids)
    if not wanted:
        return set()
    stmt = select(Asset.id).where(Asset.id.in_(wanted), *asset_conditions(filters))
    return set(session.scalars(stmt))


def count_matching(session: Session, filters: SearchFilters) -> int:
    """How many assets the filters allow."""
    stmt = select(func.count()).select_from(Asset).where(*asset_conditions(filters))
    return int(session.scalar(stmt) or 0)


def count_matching_embedded(session: Session, filters: SearchFilters, model: str) -> int:
    """How many of the assets the filters allow have an embedding of ``model``."""
    stmt = (
        select(func.count())
        .select_from(Asset)
        .join(Embedding, (Embedding.asset_id == Asset.id) & (Embedding.model == model))
        .where(*asset_conditions(filters))
    )
    return int(session.scalar(stmt) or 0)
