"""Vector store benchmark: the embedded FAISS HNSW store, pgvector (float32 and halfvec indexes)
and Qdrant on the same data, through the ``VectorStore`` interface search uses: p50/p99 latency
and recall@k against exact search, unfiltered and with a folder filter.

Data and ground truth come from ``benchmarks.search`` (clustered unit vectors with a low
intrinsic dimension, queries drawn fresh from the same mixture, shuffled ids 1..n). Every asset
is a row of ``assets`` with its float32 embedding in ``embeddings``; a fraction
``--filter-fraction`` of them is in folder ``sel``, the rest in ``rest``. The filtered case
searches ``SearchFilters(folder="sel")`` (with subfolders, as the API's default).

Stores and how each is loaded (its time is printed):

- embedded: SQLite metadata and ``EmbeddedStore.sync()``, which builds the FAISS HNSW index
  from the database (a filter is the allow-list of matching ids, selected in SQLite per query).
- pgvector: a throwaway PostgreSQL 18 + pgvector 0.8 (unix socket, default server settings);
  ``PgvectorStore.sync()`` copies the embeddings into ``vector_embeddings`` (binary COPY, the
  HNSW index created first, so every row is inserted into the graph). halfvec: a second
  ``PgvectorStore(halfvec=True)`` on the same table, whose ``open()`` builds its index over the
  loaded rows (CREATE INDEX). Filtered searches run as the store decides (an exact scan of the
  matching rows when at most ``exact_below`` = 20,000 match, so at 100k x 10 % always) and, as
  a second row, with ``exact_below=0`` (the iterative HNSW scan).
- Qdrant: qdrant-client's in-process mode (``QdrantClient(":memory:")``), loaded with
  ``QdrantStore.sync()``. It is pure Python and searches exactly, so its latency says nothing
  about a Qdrant server and its recall is 1 by construction; it runs on the first ``--qdrant-n``
  vectors (its own ground truth) with ``--qdrant-queries`` queries.

Latency is one ``search()`` per query, sequential. The stores' queries are interleaved in
chunks (store A, B, C on chunk 1, then on chunk 2...), so a change in the host's load affects
every store alike.

    .venv/bin/python -m benchmarks.vector_stores [--n 100000] [--queries 1000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import insert, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.search import (
    Mixture,
    Row,
    add_data_arguments,
    exact_top_k,
    print_table,
    recall,
)
from viewfinder.db.engine import make_engine, make_session_factory, sqlite_url_for
from viewfinder.db.migrate import upgrade
from viewfinder.db.models import Asset, Embedding, utcnow
from viewfinder.db.vectors import encode_vector
from viewfinder.index import Hit
from viewfinder.library.filters import SearchFilters
from viewfinder.library.processing import CLIP_MODEL
from viewfinder.library.stores import VectorStore
from viewfinder.library.stores.embedded import EmbeddedStore
from viewfinder.library.vectors import LibraryIndex
from viewfinder.testing.pgvector_server import pgvector_server

LOAD_CHUNK = 10_000
SELECTED = SearchFilters(folder="sel")
Search = Callable[[NDArray[np.float32]], list[Hit]]


@dataclass(frozen=True)
class Dataset:
    data: NDArray[np.float32]
    ids: NDArray[np.int64]
    selected: NDArray[np.bool_]  # in folder "sel"
    queries: NDArray[np.float32]
    k: int

    def head(self, n: int, queries: int) -> Dataset:
        return Dataset(
            self.data[:n], self.ids[:n], self.selected[:n], self.queries[:queries], self.k
        )

    def truth(self, filtered: bool) -> NDArray[np.int64]:
        mask = self.selected if filtered else None
        return self.ids[exact_top_k(self.data, self.queries, self.k, mask)]


def fill(sessions: sessionmaker[Session], dataset: Dataset) -> None:
    """One asset and one embedding per vector, in chunks of Core inserts."""
    now = utcnow()
    with sessions.begin() as session:
        for start in range(0, len(dataset.ids), LOAD_CHUNK):
            rows = range(start, min(len(dataset.ids), start + LOAD_CHUNK))
            session.execute(
                insert(Asset),
                [
                    {
                        "id": int(dataset.ids[r]),
                        "sha256": f"{int(dataset.ids[r]):064x}",
                        "original_filename": "x.jpg",
                        "folder": "sel" if dataset.selected[r] else "rest",
                        "content_type": "image/jpeg",
                        "size_bytes": 1,
                        "width": 1,
                        "height": 1,
                        "created_at": now,
                    }
                    for r in rows
                ],
            )
            session.execute(
                insert(Embedding),
                [
                    {
                        "asset_id": int(dataset.ids[r]),
                        "model": CLIP_MODEL,
                        "dim": dataset.data.shape[1],
                        "vector": encode_vector(dataset.data[r]),
                        "created_at": now,
                    }
                    for r in rows
                ],
            )


@contextmanager
def metadata(url: str, dataset: Dataset, label: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        upgrade(engine)
        sessions = make_session_factory(engine)
        fill(sessions, dataset)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))
        print(f"  {label} metadata: {time.perf_counter() - started:.1f} s", flush=True)
        yield sessions
    finally:
        engine.dispose()


def timed(label: str, work: Callable[[], object]) -> None:
    started = time.perf_counter()
    work()
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


@dataclass
class Case:
    """One store and filter: its searches and what they returned, across interleaved chunks."""

    name: str
    params: str
    search: Search
    truth: NDArray[np.int64]
    queries: NDArray[np.float32]
    results: list[list[Hit]]
    latencies_ms: list[float]

    @classmethod
    def of(
        cls,
        name: str,
        params: str,
        search: Search,
        dataset: Dataset,
        truth: NDArray[np.int64],
        queries: int | None = None,
    ) -> Case:
        return cls(name, params, search, truth, dataset.queries[:queries], [], [])

    def run(self, chunk: slice) -> None:
        for query in self.queries[chunk]:
            started = time.perf_counter()
            self.results.append(self.search(query))
            self.latencies_ms.append((time.perf_counter() - started) * 1000)

    def row(self, k: int) -> Row:
        ms = np.array(self.latencies_ms)
        rec = recall(self.results, self.truth[: len(self.results)], k)
        return Row(
            self.name, self.params, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), rec
        )


def interleaved(cases: Sequence[Case], chunks: int, warmup: int) -> None:
    for case in cases:
        for query in case.queries[:warmup]:
            case.search(query)
    for n in range(chunks):
        for case in cases:
            size = len(case.queries)
            case.run(slice(n * size // chunks, (n + 1) * size // chunks))


def store_search(store: VectorStore, k: int, filters: SearchFilters | None) -> Search:
    return lambda query: store.search(query, k, filters)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, n=100_000)
    parser.add_argument("--qdrant-n", type=int, default=20_000)
    parser.add_argument("--qdrant-queries", type=int, default=100)
    parser.add_argument(
        "--exact-queries",
        type=int,
        default=200,
        help="queries for pgvector's exact filtered path (slow: it reads every vector)",
    )
    parser.add_argument("--chunks", type=int, default=5, help="interleaved query chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10k vectors, 100 queries")
    args = parser.parse_args()
    if args.quick:
        args.n, args.queries, args.qdrant_n, args.qdrant_queries = 10_000, 100, 5_000, 50
        args.exact_queries = 100
    return args


def _dataset(args: argparse.Namespace) -> Dataset:
    mixture = Mixture.create(args.dim, args.centres, args.local_dim, args.seed)
    return Dataset(
        data=mixture.draw(args.n, seed=1),
        ids=np.random.default_rng(args.seed).permutation(args.n).astype(np.int64) + 1,
        selected=np.random.default_rng(args.seed + 3).random(args.n) < args.filter_fraction,
        queries=mixture.draw(args.queries, seed=2),
        k=args.k,
    )


def load_stores(
    stack: ExitStack, root: Path, dataset: Dataset, small: Dataset
) -> dict[str, tuple[str, VectorStore]]:
    """Each store by name, with the search parameters it runs at, loaded and timed."""
    print("loading (each store's build is its own line):")
    # embedded: SQLite + FAISS HNSW built from the database
    sqlite_sessions = stack.enter_context(
        metadata(sqlite_url_for(root / "embedded"), dataset, "SQLite")
    )
    index = LibraryIndex(root / "embedded" / "clip.vfindex", CLIP_MODEL, sqlite_sessions)
    embedded = EmbeddedStore(index, sqlite_sessions)
    timed("embedded: EmbeddedStore.sync() (FAISS HNSW build + save)", embedded.sync)
    graph = index._index  # the HnswIndex the store built
    hnsw = str(getattr(graph, "ef_search", "?"))
    print(f"  (FAISS HNSW M={getattr(graph, '_m', '?')}, efSearch {hnsw}; raised for filters)")

    # pgvector: float32 and halfvec indexes on one table
    from viewfinder.library.stores.pgvector import PgvectorStore

    admin_url = stack.enter_context(pgvector_server())
    pg_sessions = stack.enter_context(metadata(admin_url, dataset, "PostgreSQL 18"))
    engine = pg_sessions.kw["bind"]
    full = PgvectorStore(engine, pg_sessions, CLIP_MODEL)
    timed("pgvector: PgvectorStore.sync() (COPY into an HNSW-indexed table)", full.sync)
    half = PgvectorStore(engine, pg_sessions, CLIP_MODEL, halfvec=True)
    timed("pgvector halfvec: PgvectorStore.open() (CREATE INDEX on loaded rows)", half.open)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # What autovacuum does after a load; without it the planner believes the table empty.
        timed("pgvector: VACUUM ANALYZE", lambda: connection.execute(text("VACUUM ANALYZE")))
    with engine.connect() as connection:
        mem = connection.execute(text("SHOW maintenance_work_mem")).scalar()
        version = connection.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
    print(f"  (pgvector {version}, maintenance_work_mem {mem}, HNSW m=16 ef_construction=64)")

    # Qdrant, in-process, on the smaller head of the data
    from qdrant_client import QdrantClient

    from viewfinder.library.stores.qdrant import QdrantStore

    qdrant_sessions = stack.enter_context(
        metadata(sqlite_url_for(root / "qdrant"), small, f"SQLite ({len(small.ids):,})")
    )
    qdrant = QdrantStore(QdrantClient(":memory:"), qdrant_sessions, CLIP_MODEL, "bench")
    timed(f"qdrant :memory: QdrantStore.sync() ({len(small.ids):,} points)", qdrant.sync)
    return {
        "embedded FAISS": (hnsw, embedded),
        "pgvector": ("200", full),
        "pgvector iterative": (
            "200",
            PgvectorStore(engine, pg_sessions, CLIP_MODEL, exact_below=0),
        ),
        "pgvector halfvec": ("200", half),
        "pgvector halfvec iterative": (
            "200",
            PgvectorStore(engine, pg_sessions, CLIP_MODEL, halfvec=True, exact_below=0),
        ),
        "qdrant": ("exact", qdrant),
    }


def main() -> None:
    args = _arguments()
    # qdrant-client's local mode says it ignores payload indexes and search parameters: the
    # caveat printed with its table.
    warnings.filterwarnings("ignore", message="(Payload indexes|Local mode)", category=UserWarning)
    from importlib.metadata import version

    import faiss

    print(
        f"n={args.n:,} dim={args.dim} centres={args.centres} local_dim={args.local_dim} "
        f"queries={args.queries} k={args.k} filter={args.filter_fraction:.0%}; "
        f"faiss {faiss.__version__}, qdrant-client {version('qdrant-client')}; "
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    dataset = _dataset(args)
    small = dataset.head(min(args.qdrant_n, args.n), min(args.qdrant_queries, args.queries))
    truth = {False: dataset.truth(False), True: dataset.truth(True)}
    small_truth = {False: small.truth(False), True: small.truth(True)}
    print(f"data + ground truth: {time.perf_counter() - started:.1f} s", flush=True)

    k = args.k
    folder = f"{args.filter_fraction:.0%} folder"
    with tempfile.TemporaryDirectory(prefix="viewfinder-stores-") as tmp, ExitStack() as stack:
        stores = load_stores(stack, Path(tmp), dataset, small)
        plans = [
            ("embedded FAISS HNSW", "embedded FAISS", False, ""),
            (f"embedded FAISS, {folder}", "embedded FAISS", True, "+"),
            ("pgvector", "pgvector", False, ""),
            (f"pgvector, {folder} (default)", "pgvector", True, "exact"),
            (f"pgvector, {folder}, iterative", "pgvector iterative", True, ""),
            ("pgvector halfvec", "pgvector halfvec", False, ""),
            (f"pgvector halfvec, {folder} (def.)", "pgvector halfvec", True, "exact"),
            (f"pgvector halfvec, {folder}, iter.", "pgvector halfvec iterative", True, ""),
        ]
        cases = []
        for name, store_name, filtered, note in plans:
            params, store = stores[store_name]
            search = store_search(store, k, SELECTED if filtered else None)
            exact = note == "exact"
            label = note if exact else params + note
            queries = args.exact_queries if exact else None
            cases.append(Case.of(name, label, search, dataset, truth[filtered], queries))
        small_cases = [
            Case.of(
                f"qdrant :memory:{', ' + folder if filtered else ''}",
                "exact",
                store_search(stores["qdrant"][1], k, SELECTED if filtered else None),
                small,
                small_truth[filtered],
            )
            for filtered in (False, True)
        ]
        interleaved([*cases, *small_cases], args.chunks, warmup=10)
    print(
        f"\nat {args.n:,} vectors ({args.queries} queries per row, {args.exact_queries} for "
        "pgvector's exact filter; p50/p99 per search() call):"
    )
    print_table([case.row(k) for case in cases])
    print(
        f"\nqdrant-client in-process mode at {len(small.ids):,} vectors ({len(small.queries)} "
        "queries): pure Python, exact search; NOT representative of a Qdrant server's speed"
    )
    print_table([case.row(k) for case in small_cases])
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
