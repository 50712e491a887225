"""What a search may return: the filters of a library search, as SQL conditions on ``assets``.

Every vector store applies the same filters: the embedded index and Qdrant's person filter take
the matching ids these conditions select, pgvector puts them in the same query as the vector
ordering, and Qdrant turns folder and capture date into payload filters."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from viewfinder.db import assets as assets_repo
from viewfinder.db.models import Asset, AssetObject, CollectionMember, Embedding, Face
from viewfinder.library.words import has_word


@dataclass(frozen=True)
class SearchFilters:
    folder: str | None = None
    include_subfolders: bool = True
    captured_from: datetime | None = None
    captured_to: datetime | None = None
    person_ids: tuple[int, ...] = ()  # every one of these people must appear in the image
    collection_id: int | None = None  # only members of this collection
    any_person_ids: tuple[int, ...] = ()  # at least one of these people appears
    exclude_person_ids: tuple[int, ...] = ()  # none of these people appears
    # No one else: every face in the image named as someone is one of the people in
    # ``person_ids`` or ``any_person_ids``, and no recognisable face is of no one yet (an unnamed
    # face too small, blurred or unsure to cluster is ignored: it may not even be a face).
    only_people: bool = False
    text_words: tuple[str, ...] = ()  # every one of these words is in the image's text (OCR)
    objects: tuple[str, ...] = ()  # every one of these object labels was detected in it

    @property
    def active(self) -> bool:
        dated = (self.folder, self.captured_from, self.captured_to, self.collection_id)
        return any(v is not None for v in dated) or self.needs_sql

    @property
    def needs_sql(self) -> bool:
        """Whether a filter is set that only the database can answer (people, collections, text,
        objects: they change long after a vector is written, so no store keeps a copy)."""
        return (
            bool(self.person_ids or self.any_person_ids or self.exclude_person_ids)
            or self.only_people
            or self.collection_id is not None
            or bool(self.text_words or self.objects)
        )

    def sql_only(self) -> SearchFilters:
        """These filters less folder and capture dates (which a store may apply itself)."""
        return replace(
            self, folder=None, include_subfolders=True, captured_from=None, captured_to=None
        )

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
    if filters.any_person_ids:
        with_any = select(Face.asset_id).where(
            Face.person_id.in_(sorted(set(filters.any_person_ids)))
        )
        conditions.append(Asset.id.in_(with_any))
    if filters.exclude_person_ids:
        # NOT EXISTS, not NOT IN: PostgreSQL plans it as an anti-join.
        conditions.append(
            ~exists().where(
                Face.asset_id == Asset.id,
                Face.person_id.in_(sorted(set(filters.exclude_person_ids))),
            )
        )
    if filters.only_people:
        named = sorted(set(filters.person_ids) | set(filters.any_person_ids))
        # A face named as anyone else (clusterable or not: a user may name a small face by hand),
        # or a recognisable face of no one yet, rules the image out.
        someone_else = Face.person_id.not_in(named) | (
            Face.person_id.is_(None) & Face.clusterable.is_(True)
        )
        conditions.append(~exists().where(Face.asset_id == Asset.id, someone_else))
    if filters.collection_id is not None:
        members = select(CollectionMember.asset_id).where(
            CollectionMember.collection_id == filters.collection_id
        )
        conditions.append(Asset.id.in_(members))
    conditions.extend(has_word(Asset.text_words, w) for w in dict.fromkeys(filters.text_words))
    if filters.objects:
        labels = sorted(set(filters.objects))
        with_objects = (
            select(AssetObject.asset_id)
            .where(AssetObject.label.in_(labels))
            .group_by(AssetObject.asset_id)
            .having(func.count(func.distinct(AssetObject.label)) == len(labels))
        )
        conditions.append(Asset.id.in_(with_objects))
    return conditions


def matching_ids(session: Session, filters: SearchFilters) -> NDArray[np.int64]:
    """Sorted ids of the assets the filters allow: the allow-list of an in-process search."""
    stmt = select(Asset.id).where(*asset_conditions(filters)).order_by(Asset.id)
    result = session.connection().execute(stmt)
    return np.fromiter((row[0] for row in result), dtype=np.int64)


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
