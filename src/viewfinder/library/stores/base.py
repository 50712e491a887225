"""The one interface every vector store implements.

The database is the source of truth: every embedding is stored there (``embeddings``), in the
transaction that completes its task. A store is a search structure over those vectors that can
always be rebuilt from them (``sync``). Stores shared by every process (pgvector, Qdrant) make a
worker's committed result and a delete visible to every API replica at once; the embedded index
lives in one process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from viewfinder.index import Hit
from viewfinder.library.filters import SearchFilters

StoreKind = Literal["embedded", "pgvector", "qdrant"]


@dataclass(frozen=True)
class SyncReport:
    added: int  # vectors the store lacked (or held stale), written from the database
    removed: int  # vectors the store held for embeddings the database no longer has
    total: int  # vectors in the store afterwards


class VectorStore(Protocol):
    kind: StoreKind
    # True when every process reading the same settings sees the same vectors (pgvector,
    # Qdrant); False for the embedded index, which only its own process can search.
    shared: bool

    def open(self) -> None:
        """Make the store ready (create what is missing) and bring it in step with the database
        where that is cheap to check."""
        ...

    def write(self, session: Session, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Called inside the transaction that stores these embeddings (pgvector writes here, so
        the vector commits with its task); the other stores do nothing."""
        ...

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Called after that transaction committed (the embedded index and Qdrant write here;
        a crash in between is repaired by ``open``'s reconcile or ``sync``)."""
        ...

    def remove(self, ids: NDArray[np.int64]) -> None:
        """Forget these assets' vectors (their rows were deleted)."""
        ...

    def search(
        self, query: NDArray[np.float32], k: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        """The ``k`` nearest assets by cosine similarity among those ``filters`` allow, best
        first: ``min(k, matching assets)`` hits, up to the store's ANN recall."""
        ...

    def count(self) -> int:
        """How many vectors the store holds."""
        ...

    def sync(self) -> SyncReport:
        """Make the store hold exactly the database's embeddings (fill, repair, prune); works on
        a store not opened yet, creating what is missing, and reports what it changed."""
        ...

    def save(self) -> None:
        """Persist what only lives in memory (the embedded index); others do nothing."""
        ...

    def close(self) -> None: ...


def as_ids(ids: NDArray[np.int64] | list[int]) -> NDArray[np.int64]:
    return np.asarray(ids, dtype=np.int64).reshape(-1)
