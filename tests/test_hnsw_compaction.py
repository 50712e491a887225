"""An HNSW upsert that leaves enough tombstones compacts the graph inside ``add``: the rows it has
just added must survive the compaction (found by fuzzing the API: re-embedding an asset raised
IndexError in the embed worker, and deleting an asset answered 500)."""

from __future__ import annotations

import numpy as np

from viewfinder.index import ExactIndex
from viewfinder.index.hnsw import HnswIndex

DIM = 8


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_an_upsert_that_compacts_keeps_the_rows_it_added() -> None:
    index = HnswIndex(DIM, compact_fraction=0.3)
    exact = ExactIndex(DIM)
    first, second = unit_rows(3, seed=1), unit_rows(2, seed=2)
    for target in (index, exact):
        target.add(np.array([1, 2, 3]), first)
        # Two of five slots become tombstones: past 0.3, so this add compacts.
        target.add(np.array([1, 2]), second)
    assert index.tombstones == 0
    assert np.array_equal(index.ids(), exact.ids())
    for row, expected_id in zip(second, (1, 2), strict=True):
        best = index.search(row, 1)[0]
        assert best.id == expected_id
        assert abs(best.score - 1.0) < 1e-5
    assert index.search(first[2], 1)[0].id == 3
