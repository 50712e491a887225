"""Collections as one unit: the rows and what is keyed by their ids outside the database."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from viewfinder.classifiers.store import ClassifierStore
from viewfinder.db import collections as repo
from viewfinder.errors import NotFoundError


class CollectionService:
    def __init__(self, sessions: sessionmaker[Session], classifiers: ClassifierStore) -> None:
        self._sessions = sessions
        self._classifiers = classifiers

    def delete(self, collection_id: int) -> None:
        """Delete a collection and its classifier files: nothing answers for its id afterwards
        (ids are never reused, so a later collection never inherits them either)."""
        with self._sessions.begin() as session:
            if not repo.delete_collection(session, collection_id):
                raise NotFoundError(f"collection {collection_id} does not exist")
        self._classifiers.forget(collection_id)
