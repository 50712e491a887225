"""Collections: named sets of images, each with its promoted classifier; a collection and what is
keyed by its id outside the database (classifier files) come and go together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.classifiers.store import ClassifierStore, LinearClassifier
from viewfinder.db import collections as repo
from viewfinder.db.models import Asset, Collection
from viewfinder.errors import ConflictError, NotFoundError


@dataclass(frozen=True)
class CollectionView:
    collection: Collection
    size: int
    classifier: LinearClassifier | None  # the promoted one


class CollectionService:
    def __init__(self, sessions: sessionmaker[Session], classifiers: ClassifierStore) -> None:
        self._sessions = sessions
        self._classifiers = classifiers

    def create(self, name: str, description: str | None) -> CollectionView:
        try:
            with self._sessions.begin() as s:
                collection = repo.create_collection(s, name, description)
        except IntegrityError:
            raise ConflictError(f"a collection named {name!r} already exists") from None
        return self._view(collection, 0)

    def all(self) -> list[CollectionView]:
        with self._sessions() as s:
            return [self._view(c, n) for c, n in repo.list_collections(s)]

    def get(self, collection_id: int) -> CollectionView:
        with self._sessions() as s:
            return self._view(
                self._collection(s, collection_id), repo.member_count(s, collection_id)
            )

    def members(self, collection_id: int, limit: int, offset: int) -> list[Asset]:
        with self._sessions() as s:
            self._collection(s, collection_id)
            return repo.members(s, collection_id, limit, offset)

    def add(self, collection_id: int, asset_ids: Sequence[int]) -> tuple[int, int]:
        """Add assets (present ones are ignored); (how many were new, the size after)."""
        with self._sessions.begin() as s:
            self._collection(s, collection_id)
            unknown = sorted(set(asset_ids) - repo.existing_asset_ids(s, asset_ids))
            if unknown:
                raise NotFoundError(f"assets {unknown[:20]} do not exist")
            added = repo.add_members(s, collection_id, asset_ids)
            return added, repo.member_count(s, collection_id)

    def remove(
        self, collection_id: int, asset_ids: Sequence[int], must_exist: bool = False
    ) -> tuple[int, int]:
        """Remove members; (how many were, the size after). ``must_exist``: NotFoundError when
        none of ``asset_ids`` was a member."""
        with self._sessions.begin() as s:
            self._collection(s, collection_id)
            removed = repo.remove_members(s, collection_id, asset_ids)
            if must_exist and not removed:
                raise NotFoundError(
                    f"assets {list(asset_ids)[:20]} are not in collection {collection_id}"
                )
            return removed, repo.member_count(s, collection_id)

    def delete(self, collection_id: int) -> None:
        """Delete a collection and its classifier files: nothing answers for its id afterwards
        (ids are never reused, so a later collection never inherits them either)."""
        with self._sessions.begin() as s:
            if not repo.delete_collection(s, collection_id):
                raise NotFoundError(f"collection {collection_id} does not exist")
        self._classifiers.forget(collection_id)

    def _view(self, collection: Collection, size: int) -> CollectionView:
        return CollectionView(collection, size, self._classifiers.get(collection.id))

    @staticmethod
    def _collection(s: Session, collection_id: int) -> Collection:
        collection = repo.get_collection(s, collection_id)
        if collection is None:
            raise NotFoundError(f"collection {collection_id} does not exist")
        return collection
