"""Vector indexes: the caller's int64 ids -> unit vectors, searched by cosine similarity.

``ExactIndex`` (numpy brute force, the reference) and ``HnswIndex`` (FAISS HNSW, in
``viewfinder.index.hnsw``, imported on demand so importing this package does not load FAISS)
implement ``VectorIndex``. The database stays the source of truth: on any ``IndexLoadError``,
rebuild the index from the stored embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from viewfinder.index.base import (
    Hit,
    IndexCorruptError,
    IndexLoadError,
    IndexMismatchError,
    IndexMissingError,
    VectorIndex,
    digest_ids,
)
from viewfinder.index.exact import ExactIndex
from viewfinder.index.file_format import read_index_kind

IndexKind = Literal["exact", "hnsw"]

__all__ = [
    "ExactIndex",
    "Hit",
    "IndexCorruptError",
    "IndexKind",
    "IndexLoadError",
    "IndexMismatchError",
    "IndexMissingError",
    "VectorIndex",
    "create_index",
    "digest_ids",
    "load_index",
]


def create_index(kind: IndexKind, dim: int = 512) -> VectorIndex:
    """An empty index of the given kind with its default tuning."""
    if kind == "exact":
        return ExactIndex(dim)
    from viewfinder.index.hnsw import HnswIndex

    return HnswIndex(dim)


def load_index(path: Path, dim: int) -> VectorIndex:
    """Load a saved index of whichever kind the file holds; raises ``IndexLoadError``."""
    kind = read_index_kind(path)
    if kind == "exact":
        return ExactIndex.load(path, dim)
    if kind == "hnsw":
        from viewfinder.index.hnsw import HnswIndex

        return HnswIndex.load(path, dim)
    raise IndexMismatchError(f"{path} holds an index of unknown kind {kind!r}")
