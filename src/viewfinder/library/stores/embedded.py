"""The embedded default: the FAISS (or exact) index of ``LibraryIndex``, in this process.

Filters become the allow-list of matching ids, selected in the database and applied inside the
index search (``IDSelectorBitmap``), so a filtered query still returns ``min(k, matches)`` hits."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.index import Hit
from viewfinder.library.filters import SearchFilters, matching_ids
from viewfinder.library.stores.base import StoreKind, SyncReport
from viewfinder.library.vectors import LibraryIndex


class EmbeddedStore:
    kind: StoreKind = "embedded"
    shared = False

    def __init__(self, index: LibraryIndex, sessions: sessionmaker[Session]) -> None:
        self.index = index
        self._sessions = sessions

    def open(self) -> None:
        self.index.open()

    def write(self, session: Session, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        return

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        self.index.add(ids, vectors)

    def remove(self, ids: NDArray[np.int64]) -> None:
        self.index.remove(ids)

    def search(
        self, query: NDArray[np.float32], k: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        allowed = None
        if filters is not None and filters.active:
            with self._sessions() as session:
                allowed = matching_ids(session, filters)
            if len(allowed) == 0:
                return []
        return self.index.search(query, k, allowed)

    def count(self) -> int:
        return len(self.index)

    def sync(self) -> SyncReport:
        if self.index.loaded:
            added, removed = self.index.reconcile()
        else:
            self.index.open()
            added, removed = self.index.last_reconcile
        self.index.save()
        return SyncReport(added, removed, len(self.index))

    def save(self) -> None:
        self.index.save()

    def close(self) -> None:
        self.index.save()
