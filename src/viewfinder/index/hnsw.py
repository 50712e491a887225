"""Approximate cosine search with FAISS HNSW (``IndexHNSWFlat``, inner-product metric).

How the parts fit:

* FAISS labels are slots 0, 1, 2, ... in insertion order; ``IdSlots`` maps them to the caller's
  int64 ids, so a filter becomes a slot bitmap (``IDSelectorBitmap``) in about a millisecond.
* HNSW cannot delete. A removal or an upsert leaves a tombstone (a dead slot) that every search
  excludes inside FAISS with the live-slot bitmap; when tombstones pass ``compact_fraction`` of
  the slots the graph is rebuilt from the live vectors (as slow as building it: at 1M vectors,
  minutes, under the write lock; call ``compact()`` at a quiet time to choose when).
* Filters are applied inside the graph search, never to a short result list. FAISS walks the
  whole graph as usual but admits only allowed nodes as results, so a filter admitting a fraction
  f of the slots must walk until it has met about (k + margin) / f nodes: efSearch is raised to
  ``2 (k + 8) / f`` (360 for k=10 and a 10 % filter; measured recall@10 0.96 at 100k vectors
  and 0.99 at 1M, where 1280 bought nothing but p99 24 ms). The search picks, per query
  (``benchmarks/search.py --crossover`` measures the numbers, 1M vectors, 2 busy cores):

  1. at most ``exact_filter_max`` allowed ids (8192): score them exactly, ~0.8 us per row
     (p50 0.5 ms for 1024, 2.6 ms for 4096, 6.8 ms for 8192), exact, where the graph walk
     that must skip almost every node took 8 ms for recall 0.59-0.89;
  2. otherwise the graph, if the efSearch the filter needs is at most ``filter_ef_max`` (2048,
     p99 ~10 ms);
  3. a filter too selective for that (at 1M vectors, under ~18k ids) but no larger than
     ``exact_scan_max`` ids (65536): exact again (16k ids: p50 12 ms), because recall matters
     more than speed; beyond that, the graph at ``filter_ef_max``, with lower recall.

  Exact scoring gathers rows in blocks and multiplies them with ``np.einsum``, single-threaded
  on purpose: a multi-threaded BLAS or OpenMP call costs ~8 ms of thread hand-off when other
  processes keep the cores busy (measured here, 2 cores: 4096 rows 8 ms with BLAS, 1.2 ms not).
* No re-ranking: the graph stores the full float32 vectors, so FAISS's scores are already exact
  inner products; misses come from the graph walk, which only a larger ``efSearch`` fixes.
* A search asks FAISS for a few more neighbours than ``k`` so that equal scores at the cut (the
  same photo imported twice) are resolved by id, not by graph order.
* If the graph walk yields fewer hits than exist (possible under a very selective filter or many
  tombstones), the search falls back to exact scoring, so the caller always gets
  ``min(k, candidates)`` hits.

Threading: see ``viewfinder.index.base``. Searches share a read lock; the numpy view of FAISS's
vector storage is only replaced under the write lock.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

from viewfinder.index.base import (
    Hit,
    IndexCorruptError,
    as_ids,
    as_query,
    as_upsert_batch,
    check_k,
    digest_ids,
    rank_hits,
)
from viewfinder.index.file_format import array_section, open_index_file, write_index_file
from viewfinder.index.locks import ReadWriteLock
from viewfinder.index.slots import IdSlots

_KIND = "hnsw"
# Extra neighbours fetched beyond k so ties at the cut are settled by id.
_TIE_MARGIN = 8
# A filter admitting a fraction f needs efSearch of about this many times (k + margin) / f.
_FILTER_EF_PER_HIT = 2
# Rows gathered per step of exact scoring: 4 MB at 512-d, so the block stays in cache.
_EXACT_BLOCK = 2048


class HnswIndex:
    """The ``VectorIndex`` backed by FAISS HNSW (see the module notes for the design).

    ``m`` and ``ef_construction`` shape the graph (fixed once built; saved with it). The rest
    are plain attributes that may be changed at any time: ``ef_search`` (recall against latency
    of an unfiltered search), ``compact_fraction`` (tombstone share that triggers a rebuild),
    and the filter strategy limits ``exact_filter_max``, ``filter_ef_max``, ``exact_scan_max``.
    """

    def __init__(
        self,
        dim: int = 512,
        *,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        compact_fraction: float = 0.25,
        exact_filter_max: int = 8192,
        filter_ef_max: int = 2048,
        exact_scan_max: int = 65536,
    ) -> None:
        if dim < 1 or m < 2 or ef_construction < 1 or ef_search < 1:
            raise ValueError("dim, m, ef_construction and ef_search must be positive (m >= 2)")
        if not 0.0 < compact_fraction <= 1.0:
            raise ValueError(f"compact_fraction must be in (0, 1], got {compact_fraction}")
        self._dim = dim
        self._m = m
        self._ef_construction = ef_construction
        self.ef_search = ef_search
        self.compact_fraction = compact_fraction
        self.exact_filter_max = exact_filter_max
        self.filter_ef_max = filter_ef_max
        self.exact_scan_max = exact_scan_max
        self._lock = ReadWriteLock()
        self._install(self._new_graph(), IdSlots())

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def tombstones(self) -> int:
        return self._slots.n_slots - self._slots.live

    def __len__(self) -> int:
        return self._slots.live

    def ids(self) -> NDArray[np.int64]:
        with self._lock.read():
            return np.sort(self._slots.slot_ids[self._slots.alive])

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        id_array, rows = as_upsert_batch(ids, vectors, self._dim)
        if id_array.size == 0:
            return
        with self._lock.write():
            # FAISS first: if it fails, the id map has not changed yet.
            self._graph.add(rows)
            self._slots.release(id_array)
            self._slots.append(id_array)
            self._after_mutation()

    def remove(self, ids: ArrayLike) -> int:
        id_array = np.unique(as_ids(ids))
        with self._lock.write():
            freed = self._slots.release(id_array)
            if freed.size == 0:
                return 0
            self._after_mutation()
            return int(freed.size)

    def compact(self) -> None:
        """Rebuild the graph from the live vectors, dropping every tombstone."""
        with self._lock.write():
            self._compact()

    def search(self, query: ArrayLike, k: int, allowed: ArrayLike | None = None) -> list[Hit]:
        check_k(k)
        q = as_query(query, self._dim)
        with self._lock.read():
            return self._search(q[None, :], k, allowed)[0]

    def save(self, path: Path) -> None:
        with self._lock.read():
            meta = {
                "dim": self._dim,
                "count": self._slots.live,
                "n_slots": self._slots.n_slots,
                "id_digest": digest_ids(self._slots.slot_ids[self._slots.alive]),
                "m": self._m,
                "ef_construction": self._ef_construction,
            }

            def write_graph(write: Any) -> None:
                faiss.write_index(self._graph, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]

            write_index_file(
                Path(path),
                _KIND,
                meta,
                [
                    ("ids", array_section(self._slots.slot_ids)),
                    ("alive", array_section(self._slots.alive.view(np.uint8))),
                    ("graph", write_graph),
                ],
            )

    @classmethod
    def load(cls, path: Path, dim: int) -> Self:
        with open_index_file(Path(path), _KIND, dim) as file:
            n_slots = file.integer("n_slots")
            slot_ids = file.read_array("ids", np.int64, n_slots)
            alive = file.read_array("alive", np.uint8, n_slots).astype(bool)
            reader = faiss.PyCallbackIOReader(file.reader("graph"))  # type: ignore[attr-defined]
            try:
                graph = faiss.read_index(reader)
            except RuntimeError as err:
                raise IndexCorruptError(f"{path}: FAISS cannot read the graph: {err}") from err
            # Search-time tunables are not saved: a loaded index takes today's defaults.
            index = cls(dim, m=file.integer("m"), ef_construction=file.integer("ef_construction"))
            count = file.integer("count")
            expected_digest = file.integer("id_digest")
        if not isinstance(graph, faiss.IndexHNSWFlat) or graph.d != dim:
            raise IndexCorruptError(f"{path}: the graph is not a {dim}-d IndexHNSWFlat")
        if graph.metric_type != faiss.METRIC_INNER_PRODUCT or graph.ntotal != n_slots:
            raise IndexCorruptError(f"{path}: the graph disagrees with the id map")
        try:
            slots = IdSlots.restore(slot_ids, alive)
        except ValueError as err:
            raise IndexCorruptError(f"{path}: {err}") from err
        digest = digest_ids(slot_ids[alive])
        if slots.live != count or digest != expected_digest:
            raise IndexCorruptError(f"{path}: the ids do not match the recorded count and digest")
        index._install(graph, slots)
        return index

    # --- internals (callers hold the lock) ---------------------------------------------------

    def _new_graph(self) -> faiss.IndexHNSWFlat:
        graph = faiss.IndexHNSWFlat(self._dim, self._m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self._ef_construction
        return graph

    def _install(self, graph: faiss.IndexHNSWFlat, slots: IdSlots) -> None:
        self._graph = graph
        self._slots = slots
        self._refresh_views()

    def _refresh_views(self) -> None:
        """Re-derive what searches read: FAISS's storage (moves when it grows) and the live set."""
        storage = faiss.downcast_index(self._graph.storage)
        n = self._graph.ntotal
        if n:
            flat = faiss.rev_swig_ptr(storage.get_xb(), n * self._dim)  # type: ignore[attr-defined]
            self._vectors: NDArray[np.float32] = flat.view(np.float32).reshape(n, self._dim)
        else:
            self._vectors = np.empty((0, self._dim), dtype=np.float32)
        self._live_bitmap = (
            np.packbits(self._slots.alive, bitorder="little") if self.tombstones else None
        )

    def _after_mutation(self) -> None:
        if self.tombstones > self.compact_fraction * self._slots.n_slots:
            self._compact()
        else:
            self._refresh_views()

    def _compact(self) -> None:
        live = self._slots.live_slots()
        graph = self._new_graph()
        if live.size:
            self._refresh_views()  # the views predate the rows this mutation has just added
            graph.add(np.ascontiguousarray(self._vectors[live]))
        slots = IdSlots()
        slots.append(self._slots.slot_ids[live])
        self._install(graph, slots)

    def _search(
        self, queries: NDArray[np.float32], k: int, allowed: ArrayLike | None
    ) -> list[list[Hit]]:
        mask = None if allowed is None else self._allowed_mask(allowed)
        n_candidates = self._slots.live if mask is None else int(np.count_nonzero(mask))
        if n_candidates == 0:
            return [[] for _ in queries]
        wanted = min(k, n_candidates)
        fetch = min(wanted + _TIE_MARGIN, n_candidates)
        selectivity = n_candidates / self._slots.n_slots
        if mask is None:
            # Tombstones (at most compact_fraction of the graph) thin the walk's results a little.
            ef = math.ceil(max(self.ef_search, fetch) / selectivity)
        else:
            ef = max(self.ef_search, fetch, math.ceil(_FILTER_EF_PER_HIT * fetch / selectivity))
        if mask is not None and (
            n_candidates <= self.exact_filter_max
            or (ef > self.filter_ef_max and n_candidates <= self.exact_scan_max)
        ):
            rows = np.flatnonzero(mask).astype(np.int64)
            return [self._exact(q, k, rows) for q in queries]
        graph_ef = min(ef, max(self.filter_ef_max, fetch))
        params = faiss.SearchParametersHNSW(efSearch=graph_ef)  # type: ignore[attr-defined]
        bitmap = self._live_bitmap if mask is None else np.packbits(mask, bitorder="little")
        if bitmap is not None:
            # The one-argument form (not in the stubs) keeps the bitmap alive with the selector.
            params.sel = faiss.IDSelectorBitmap(bitmap)  # type: ignore[call-arg,arg-type]
        scores, labels = self._graph.search(queries, fetch, params=params)
        results = []
        for q, score_row, label_row in zip(queries, scores, labels, strict=True):
            found = label_row >= 0
            if np.count_nonzero(found) < wanted:
                rows = np.flatnonzero(self._slots.alive if mask is None else mask)
                results.append(self._exact(q, k, rows.astype(np.int64)))
            else:
                results.append(
                    rank_hits(self._slots.slot_ids[label_row[found]], score_row[found], wanted)
                )
        return results

    def _allowed_mask(self, allowed: ArrayLike) -> NDArray[np.bool_]:
        slots = self._slots.lookup(as_ids(allowed))
        mask = np.zeros(self._slots.n_slots, dtype=bool)
        mask[slots[slots >= 0]] = True
        return mask

    def _exact(self, query: NDArray[np.float32], k: int, rows: NDArray[np.int64]) -> list[Hit]:
        """Score the given slots exactly (single-threaded; see the module notes)."""
        scores = np.empty(rows.size, dtype=np.float32)
        for start in range(0, rows.size, _EXACT_BLOCK):
            block = rows[start : start + _EXACT_BLOCK]
            scores[start : start + block.size] = np.einsum("ij,j->i", self._vectors[block], query)
        return rank_hits(self._slots.slot_ids[rows], scores, k)
