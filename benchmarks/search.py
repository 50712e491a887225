"""Vector search benchmark: HNSW latency and recall@k against exact search, with and without a
folder filter, on synthetic clustered unit vectors.

Data: ``--centres`` random unit centres; each vector is ``centre + local + noise``, normalised,
where ``local`` varies in a ``--local-dim``-dimensional subspace of its own cluster (real image
embeddings have a low intrinsic dimension) and ``noise`` is isotropic. With the defaults a vector's
cosine to its centre is about 0.84 and its 10 nearest neighbours are cluster-mates separated by
small margins. ``--local-dim 0`` gives isotropic Gaussian clusters instead (every cluster-mate
almost equally near the query, cosine 0.72-0.75). Queries are fresh draws from the same mixture
(not database vectors). Ids are a shuffled 1..n, like database autoincrement ids.

Ground truth is exact search in row chunks. Latency is one ``search()`` call per query through
the public API (id filter translation, locking and result sorting included), sequentially.

    .venv/bin/python -m benchmarks.search --n 100000 --queries 1000
    .venv/bin/python -m benchmarks.search --index-cache /tmp/hnsw-1m.vfi   # 1M, reuses a build
    .venv/bin/python -m benchmarks.search --n 100000 --crossover           # exact vs graph filter
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

from viewfinder.index import Hit, IndexLoadError, digest_ids
from viewfinder.index.hnsw import HnswIndex

LOCAL_SCALE = 0.6
NOISE_SCALE = 0.25
ISOTROPIC_SCALE = 0.65


@dataclass(frozen=True)
class Mixture:
    centres: NDArray[np.float32]
    local_dim: int
    seed: int

    @classmethod
    def create(cls, dim: int, n_centres: int, local_dim: int, seed: int) -> Mixture:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((n_centres, dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        return cls(centres, local_dim, seed)

    def basis(self, cluster: int) -> NDArray[np.float32]:
        """The cluster's own local subspace (dim x local_dim, near-orthonormal columns)."""
        dim = self.centres.shape[1]
        rng = np.random.default_rng([self.seed, cluster])
        basis = rng.standard_normal((dim, self.local_dim), dtype=np.float32)
        basis *= np.float32(1 / np.sqrt(dim))
        return basis

    def draw(self, n: int, seed: int) -> NDArray[np.float32]:
        rng = np.random.default_rng([self.seed, seed])
        n_centres, dim = self.centres.shape
        clusters = rng.integers(0, n_centres, n)
        out = np.empty((n, dim), dtype=np.float32)
        scale = NOISE_SCALE if self.local_dim else ISOTROPIC_SCALE
        for start in range(0, n, 100_000):
            stop = min(n, start + 100_000)
            out[start:stop] = self.centres[clusters[start:stop]]
            noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
            out[start:stop] += noise * np.float32(scale / np.sqrt(dim))
        if self.local_dim:
            order = np.argsort(clusters, kind="stable")
            bounds = np.searchsorted(clusters[order], np.arange(n_centres + 1))
            for cluster in range(n_centres):
                rows = order[bounds[cluster] : bounds[cluster + 1]]
                if rows.size:
                    z = rng.standard_normal((rows.size, self.local_dim), dtype=np.float32)
                    z *= np.float32(LOCAL_SCALE / np.sqrt(self.local_dim))
                    out[rows] += z @ self.basis(cluster).T
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def exact_top_k(
    data: NDArray[np.float32], queries: NDArray[np.float32], k: int, mask: NDArray[np.bool_] | None
) -> NDArray[np.int64]:
    """Row numbers of the exact top k per query, scanning the database in chunks."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(data), 50_000):
        scores = queries @ data[start : start + 50_000].T
        if mask is not None:
            scores[:, ~mask[start : start + 50_000]] = -np.inf
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_rows = np.concatenate([best_rows, rows], axis=1)
        top = np.argpartition(-merged_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, top, axis=1)
        best_rows = np.take_along_axis(merged_rows, top, axis=1)
    return best_rows


@dataclass(frozen=True)
class Row:
    case: str
    ef: int | str
    p50_ms: float
    p99_ms: float
    recall: float | None


def timed_searches(
    search: Callable[[NDArray[np.float32]], list[Hit]], queries: NDArray[np.float32]
) -> tuple[list[list[Hit]], NDArray[np.float64]]:
    for q in queries[:20]:
        search(q)
    results, latencies = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(search(q))
        latencies.append(time.perf_counter() - start)
    return results, np.array(latencies) * 1e3


def recall(results: Sequence[list[Hit]], truth_ids: NDArray[np.int64], k: int) -> float:
    found = [
        len({h.id for h in hits} & set(row.tolist()))
        for hits, row in zip(results, truth_ids, strict=True)
    ]
    return float(np.sum(found)) / (k * len(results))


def measure(
    case: str,
    search: Callable[[NDArray[np.float32]], list[Hit]],
    queries: NDArray[np.float32],
    *,
    ef: int | str,
    truth_ids: NDArray[np.int64] | None,
    k: int,
) -> Row:
    results, ms = timed_searches(search, queries)
    rec = recall(results, truth_ids, k) if truth_ids is not None else None
    return Row(case, ef, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), rec)


def build_or_load(
    args: argparse.Namespace, data: NDArray[np.float32], ids: NDArray[np.int64]
) -> HnswIndex:
    cache = Path(args.index_cache) if args.index_cache else None
    if cache is not None and cache.exists():
        start = time.perf_counter()
        try:
            index = HnswIndex.load(cache, data.shape[1])
        except IndexLoadError as err:
            print(f"cache unusable ({err}); rebuilding")
        else:
            sample = np.random.default_rng(1).choice(len(data), 5, replace=False)
            same = index.state.count == len(ids) and index.state.id_digest == digest_ids(ids)
            same = same and all(index.search(data[r], 1)[0].id == ids[r] for r in sample)
            if same:
                print(f"loaded {cache} in {time.perf_counter() - start:.1f} s")
                return index
            print("cache holds other data; rebuilding")
    index = HnswIndex(data.shape[1], m=args.m, ef_construction=args.ef_construction)
    start = time.perf_counter()
    for chunk in range(0, len(data), 100_000):
        index.add(ids[chunk : chunk + 100_000], data[chunk : chunk + 100_000])
        done = min(len(data), chunk + 100_000)
        print(f"  built {done:,} in {time.perf_counter() - start:.0f} s", flush=True)
    print(
        f"build: {time.perf_counter() - start:.1f} s for {len(data):,} vectors "
        f"(M={args.m}, efConstruction={args.ef_construction})"
    )
    if cache is not None:
        start = time.perf_counter()
        index.save(cache)
        saved = time.perf_counter() - start
        start = time.perf_counter()
        HnswIndex.load(cache, data.shape[1])
        size = cache.stat().st_size / 2**30
        print(f"save {saved:.1f} s, load {time.perf_counter() - start:.1f} s, {size:.2f} GiB")
    return index


def crossover(
    index: HnswIndex,
    data: NDArray[np.float32],
    ids: NDArray[np.int64],
    queries: NDArray[np.float32],
    k: int,
) -> list[Row]:
    """Filtered search through the graph against exact scoring of the allowed rows, by size."""
    rng = np.random.default_rng(7)
    rows: list[Row] = []
    saved = index.exact_filter_max, index.exact_scan_max
    for size in (256, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
        if size >= len(ids):
            break
        chosen = rng.choice(len(ids), size, replace=False)
        mask = np.zeros(len(ids), dtype=bool)
        mask[chosen] = True
        truth = ids[exact_top_k(data, queries, k, mask)]
        search = functools.partial(index.search, k=k, allowed=ids[chosen])
        graph_ef = min(
            index.filter_ef_max, max(index.ef_search, math.ceil(2 * (k + 8) * len(ids) / size))
        )
        for label, limit, ef in (("exact", len(ids), "-"), ("graph", 0, str(graph_ef))):
            index.exact_filter_max = index.exact_scan_max = limit
            rows.append(
                measure(f"{size} allowed, {label}", search, queries, ef=ef, truth_ids=truth, k=k)
            )
        index.exact_filter_max, index.exact_scan_max = saved
        rows.append(
            measure(f"{size} allowed, default", search, queries, ef="auto", truth_ids=truth, k=k)
        )
    return rows


def print_table(rows: Sequence[Row]) -> None:
    print(f"{'case':<34} {'efSearch':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@k':>9}")
    for r in rows:
        rec = f"{r.recall:.4f}" if r.recall is not None else "-"
        print(f"{r.case:<34} {r.ef!s:>8} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {rec:>9}")


def add_data_arguments(parser: argparse.ArgumentParser, n: int) -> None:
    """The options of the data and the queries, shared with benchmarks/vector_stores.py."""
    parser.add_argument("--n", type=int, default=n)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--local-dim", type=int, default=32)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--filter-fraction", type=float, default=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, n=1_000_000)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", default="32,64,128", help="comma-separated values to try")
    parser.add_argument("--index-cache", help="save the built index here, or load it if present")
    parser.add_argument("--crossover", action="store_true", help="exact vs graph for filters")
    parser.add_argument("--crossover-ef", type=int, default=128, help="efSearch for --crossover")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"n={args.n:,} dim={args.dim} centres={args.centres} local_dim={args.local_dim} "
        f"queries={args.queries} k={args.k}; faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    start = time.perf_counter()
    mixture = Mixture.create(args.dim, args.centres, args.local_dim, args.seed)
    data = mixture.draw(args.n, seed=1)
    queries = mixture.draw(args.queries, seed=2)
    ids = np.random.default_rng(args.seed).permutation(args.n).astype(np.int64) + 1
    folder = np.random.default_rng(args.seed + 3).random(args.n) < args.filter_fraction
    print(f"data: {time.perf_counter() - start:.1f} s", flush=True)

    start = time.perf_counter()
    truth = ids[exact_top_k(data, queries, args.k, None)]
    truth_filtered = ids[exact_top_k(data, queries, args.k, folder)]
    print(f"ground truth: {time.perf_counter() - start:.1f} s", flush=True)

    index = build_or_load(args, data, ids)
    allowed = ids[folder]
    k = args.k
    rows: list[Row] = []
    exact_queries = queries[: max(20, min(len(queries), 100))]

    def numpy_exact(q: NDArray[np.float32]) -> list[Hit]:
        scores = data @ q
        top = np.argpartition(-scores, k)[:k]
        return [Hit(int(ids[r]), float(scores[r])) for r in top[np.argsort(-scores[top])]]

    rows.append(
        measure(
            "exact (numpy), unfiltered", numpy_exact, exact_queries, ef="-", truth_ids=None, k=k
        )
    )
    for ef in (int(v) for v in args.ef_search.split(",")):
        index.ef_search = ef
        unfiltered = functools.partial(index.search, k=k)
        filtered = functools.partial(index.search, k=k, allowed=allowed)
        rows.append(measure("hnsw, unfiltered", unfiltered, queries, ef=ef, truth_ids=truth, k=k))
        # The index raises efSearch for a filter admitting a fraction f to 2 (k + 8) / f.
        filter_ef = max(ef, min(index.filter_ef_max, math.ceil(2 * (k + 8) / args.filter_fraction)))
        rows.append(
            measure(
                f"hnsw, {args.filter_fraction:.0%} folder filter",
                filtered,
                queries,
                ef=f"{ef}->{filter_ef}",
                truth_ids=truth_filtered,
                k=k,
            )
        )
    if args.crossover:
        index.ef_search = args.crossover_ef
        rows.extend(crossover(index, data, ids, queries[:200], k))
    print_table(rows)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
