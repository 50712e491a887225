"""Embeddings: float32 vectors per (asset, model), the source of truth every vector store is
filled from.

Every function takes a ``Session`` and leaves the transaction to the caller: it may flush,
never commit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from viewfinder.db.models import Embedding, utcnow
from viewfinder.db.statements import IN_CHUNK, int64_column, upsert
from viewfinder.db.vectors import decode_vectors, encode_vector


def put_embedding(s: Session, asset_id: int, model: str, vector: NDArray[np.float32]) -> None:
    """Store (or replace) ``model``'s embedding of an asset."""
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"an embedding is a non-empty 1-D vector, got shape {vector.shape}")
    values = {
        "asset_id": asset_id,
        "model": model,
        "dim": int(vector.shape[0]),
        "vector": encode_vector(vector),
        "created_at": utcnow(),
    }
    upsert(s, Embedding, values, keys=("asset_id", "model"))


def get_embeddings(
    s: Session, model: str, asset_ids: Iterable[int]
) -> dict[int, NDArray[np.float32]]:
    """``model``'s embeddings of those assets that have one, keyed by asset id."""
    wanted = list(dict.fromkeys(int(i) for i in asset_ids))
    found: dict[int, NDArray[np.float32]] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        stmt = select(Embedding.asset_id, Embedding.dim, Embedding.vector).where(
            Embedding.model == model, Embedding.asset_id.in_(chunk)
        )
        for asset_id, dim, blob in s.execute(stmt):
            found[asset_id] = decode_vectors([blob], dim)[0]
    return found


def iter_embeddings(
    s: Session, model: str, batch_size: int = 10_000
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
    """All of ``model``'s embeddings in asset-id order, as (ids, matrix) batches.

    Keyset pagination (``asset_id > last``) keeps every batch an index range scan however deep
    into a million rows it is, and rows are read as tuples, never as ORM objects."""
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    last_id: int | None = None
    while True:
        stmt = select(Embedding.asset_id, Embedding.dim, Embedding.vector).where(
            Embedding.model == model
        )
        if last_id is not None:
            stmt = stmt.where(Embedding.asset_id > last_id)
        rows = s.execute(stmt.order_by(Embedding.asset_id).limit(batch_size)).all()
        if not rows:
            return
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        dims = {row[1] for row in rows}
        if len(dims) != 1:
            raise ValueError(f"model {model!r} has embeddings of several sizes: {sorted(dims)}")
        yield ids, decode_vectors([row[2] for row in rows], dims.pop())
        if len(rows) < batch_size:
            return
        last_id = int(ids[-1])


def embedding_ids(s: Session, model: str) -> NDArray[np.int64]:
    """Sorted ids of the assets that have an embedding from ``model``."""
    stmt = select(Embedding.asset_id).where(Embedding.model == model).order_by(Embedding.asset_id)
    return int64_column(s, stmt)


def embedding_dim(s: Session, model: str) -> int | None:
    """The size of ``model``'s vectors, or None while it has none."""
    return s.scalar(select(Embedding.dim).where(Embedding.model == model).limit(1))


def count_embeddings(s: Session, model: str) -> int:
    stmt = select(func.count()).select_from(Embedding).where(Embedding.model == model)
    return s.scalar(stmt) or 0
