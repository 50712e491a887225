"""The library's vector index for one embedding model, kept in step with the database.

The database holds every embedding; this index is a cache of them for fast search. At start it
is loaded from disk and reconciled with the database (ids missing from the index are added from
their stored vectors, ids no longer in the database removed), or rebuilt when the file is missing
or unreadable. It is saved atomically after changes, at most every ``save_interval_s``, and at
close."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import embeddings as embeddings_repo
from viewfinder.index import Hit, IndexKind, IndexLoadError, VectorIndex, create_index, load_index

log = logging.getLogger(__name__)

RECONCILE_CHUNK = 10_000


class LibraryIndex:
    def __init__(
        self,
        path: Path,
        model: str,
        sessions: sessionmaker[Session],
        kind: IndexKind = "hnsw",
        save_interval_s: float = 30.0,
    ) -> None:
        self.path = path
        self.model = model
        self._sessions = sessions
        self._kind = kind
        self._save_interval_s = save_interval_s
        self._index: VectorIndex | None = None
        self._lock = threading.Lock()  # guards _index creation, _dirty and saving
        self._dirty = False
        self._last_save = time.monotonic()
        self.last_reconcile = (0, 0)  # (added, removed) by the last reconcile

    @property
    def loaded(self) -> bool:
        return self._index is not None

    def open(self) -> None:
        """Load the saved index if usable and bring it in step with the database."""
        dim = self._db_dim()
        if dim is None:
            return  # nothing embedded yet: the index is created with the first vectors
        try:
            self._index = load_index(self.path, dim)
        except IndexLoadError as exc:
            log.info("vector index %s unusable (%s): rebuilding from the database", self.path, exc)
            self._index = create_index(self._kind, dim)
        added, removed = self.reconcile()
        self.last_reconcile = (added, removed)
        if added or removed:
            log.info("vector index reconciled: %d added, %d removed", added, removed)
            self.save()

    def _db_dim(self) -> int | None:
        with self._sessions() as session:
            return embeddings_repo.embedding_dim(session, self.model)

    def reconcile(self) -> tuple[int, int]:
        """Add what the database has and the index lacks; remove what the database lost."""
        with self._sessions() as session:
            db_ids = embeddings_repo.embedding_ids(session, self.model)
        index = self._index
        if index is None:
            return 0, 0
        have = index.ids()
        missing = np.setdiff1d(db_ids, have, assume_unique=True)
        extra = np.setdiff1d(have, db_ids, assume_unique=True)
        for start in range(0, len(missing), RECONCILE_CHUNK):
            chunk = [int(i) for i in missing[start : start + RECONCILE_CHUNK]]
            with self._sessions() as session:
                vectors = embeddings_repo.get_embeddings(session, self.model, chunk)
            ids = np.fromiter(vectors.keys(), dtype=np.int64, count=len(vectors))
            if len(ids):
                index.add(ids, np.stack(list(vectors.values())))
        removed = index.remove(extra) if len(extra) else 0
        if len(missing) or removed:
            self._dirty = True
        return len(missing), removed

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            if self._index is None:
                self._index = create_index(self._kind, int(vectors.shape[1]))
            index = self._index
            self._dirty = True
        index.add(ids, vectors)
        self.save_if_due()

    def remove(self, ids: NDArray[np.int64]) -> None:
        index = self._index
        if index is not None and len(ids):
            index.remove(ids)
            with self._lock:
                self._dirty = True

    def search(
        self, query: NDArray[np.float32], k: int, allowed: NDArray[np.int64] | None = None
    ) -> list[Hit]:
        index = self._index
        if index is None or k <= 0:
            return []
        return index.search(query, k, allowed)

    def __len__(self) -> int:
        index = self._index
        return 0 if index is None else len(index)

    def ids(self) -> NDArray[np.int64]:
        index = self._index
        return np.empty(0, dtype=np.int64) if index is None else index.ids()

    def save_if_due(self) -> None:
        if time.monotonic() - self._last_save >= self._save_interval_s:
            self.save()

    def save(self) -> None:
        with self._lock:
            if self._index is None or not self._dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._index.save(self.path)
            self._dirty = False
            self._last_save = time.monotonic()
