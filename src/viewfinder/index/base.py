"""The contract every vector index implements, and the pieces the implementations share.

An index maps the caller's int64 ids to L2-normalised float32 vectors and answers "which ids are
nearest to this query" by cosine similarity. The database holds every embedding, so an index is
a cache: ``save``/``load`` avoid rebuilding at every start, and any ``IndexLoadError`` means
"rebuild from the DB". Both implementations share ``locks``, ``slots`` and ``file_format``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from viewfinder.errors import ViewfinderError


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: higher ``score`` (cosine similarity) is nearer."""

    id: int
    score: float


class IndexLoadError(ViewfinderError):
    """A saved index cannot be used; the caller should rebuild it from the database."""


class IndexMissingError(IndexLoadError):
    """There is no saved index at the path."""


class IndexCorruptError(IndexLoadError):
    """The file is truncated, damaged, not an index, or internally inconsistent."""


class IndexMismatchError(IndexLoadError):
    """The file is a valid index of another kind or dimension than the caller asked for."""


class VectorIndex(Protocol):
    """Cosine-similarity search over the caller's int64 ids.

    Vectors are normalised on the way in, so callers may pass raw embeddings. Results are sorted
    by score descending, then id ascending, so equal scores (duplicate photos) come back in a
    deterministic order. ``allowed`` restricts the search to those ids inside the search itself:
    with a filter the caller still gets ``min(k, allowed ids present)`` hits.
    """

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        """Insert or replace: re-adding an id replaces its vector (within a call, the last wins)."""
        ...

    def remove(self, ids: ArrayLike) -> int:
        """Delete these ids; unknown ids are ignored. Returns how many were removed."""
        ...

    def ids(self) -> NDArray[np.int64]:
        """The live ids, ascending."""
        ...

    def search(self, query: ArrayLike, k: int, allowed: ArrayLike | None = None) -> list[Hit]: ...

    def save(self, path: Path) -> None:
        """Write atomically: after a crash the path holds the old or the new index, whole."""
        ...

    @classmethod
    def load(cls, path: Path, dim: int) -> Self:
        """Raises ``IndexLoadError`` (missing, corrupt, other kind or dim): rebuild from the DB."""
        ...


def digest_ids(ids: ArrayLike) -> int:
    """An order-independent 64-bit digest of a set of ids (a saved index records it; the
    cluster cache keys on it): XOR of a SplitMix64 hash of each id."""
    x = np.asarray(ids, dtype=np.int64).view(np.uint64).ravel()
    if x.size == 0:
        return 0
    # Array arithmetic on uint64 wraps modulo 2**64 silently, which is what SplitMix64 wants.
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return int(np.bitwise_xor.reduce(x))


def as_ids(ids: ArrayLike) -> NDArray[np.int64]:
    """Ids as a 1-d int64 array; rejects floats that would silently truncate."""
    array = np.asarray(ids)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64).ravel()


def as_unit_vectors(vectors: ArrayLike, dim: int) -> NDArray[np.float32]:
    """Rows as contiguous float32 of unit length; zero, NaN or infinite rows are rejected."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {np.shape(vectors)}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("vectors must be finite and non-zero")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def as_upsert_batch(
    ids: ArrayLike, vectors: ArrayLike, dim: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Validated ids and unit rows for ``add``, one row per distinct id (the last occurrence)."""
    id_array = as_ids(ids)
    if id_array.size == 0 and np.size(vectors) == 0:
        return id_array, np.empty((0, dim), dtype=np.float32)
    rows = as_unit_vectors(vectors, dim)
    if rows.shape[0] != id_array.size:
        raise ValueError(f"{id_array.size} ids for {rows.shape[0]} vectors")
    reversed_first = np.unique(id_array[::-1], return_index=True)[1]
    last = np.sort(id_array.size - 1 - reversed_first)
    if last.size == id_array.size:
        return id_array, rows
    return id_array[last], np.ascontiguousarray(rows[last])


def check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def as_query(query: ArrayLike, dim: int) -> NDArray[np.float32]:
    """One query vector of unit length, shape (dim,)."""
    if np.ndim(query) != 1:
        raise ValueError(f"expected one query of shape ({dim},), got {np.shape(query)}")
    return as_unit_vectors(query, dim).reshape(dim)


def rank_hits(ids: NDArray[np.int64], scores: NDArray[np.float32], k: int) -> list[Hit]:
    """The ``k`` best (score descending, id ascending) among candidate ids and their scores.

    Every candidate tied with the k-th score is kept before the final sort, so which of several
    equal-scoring ids make the cut is decided by id, never by partition order.
    """
    if k <= 0 or ids.size == 0:
        return []
    if ids.size > k:
        kth = np.partition(scores, ids.size - k)[ids.size - k]
        keep = np.flatnonzero(scores >= kth)
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return [Hit(int(i), float(s)) for i, s in zip(ids[order], scores[order], strict=True)]
