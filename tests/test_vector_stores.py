"""Congruence of the vector stores: for the same embeddings and filters, the embedded index
(exact and HNSW), pgvector (PostgreSQL 18 + pgvector 0.8 started for the session) and Qdrant
(qdrant-client's in-process mode, the stand-in for a server that cannot be installed here) return
the ids the exact numpy reference returns, up to the ANN recall measured and bounded here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session, sessionmaker

from tests.db_fixtures import face_row
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.db.engine import make_engine, make_session_factory
from viewfinder.db.models import (
    Asset,
    AssetObject,
    AssetTask,
    Collection,
    CollectionMember,
    Face,
    Person,
)
from viewfinder.library.filters import SearchFilters, asset_conditions
from viewfinder.library.stores import VectorStore
from viewfinder.library.stores.embedded import EmbeddedStore
from viewfinder.library.stores.pgvector import PgvectorStore
from viewfinder.library.vectors import LibraryIndex

N = 3000
DIM = 64
MODEL = "clip"
FOLDERS = ["nature", "nature/birds", "nature/birds/owls", "city", "naturephotos", ""]
K = 10


@dataclass
class Library:
    engine: Engine
    sessions: sessionmaker[Session]
    ids: NDArray[np.int64]
    vectors: NDArray[np.float32]
    folder: dict[int, str]
    captured: dict[int, datetime | None]
    people: dict[int, set[int]]  # asset -> persons named on its faces
    members: set[int]  # members of collection 1
    strangers: set[int]  # assets with a recognisable (clusterable) face of no one yet
    objects: dict[int, set[str]]  # asset -> labels detected in it
    words: dict[int, set[str]]  # asset -> words of its text


def _unit(rows: NDArray[np.float64]) -> NDArray[np.float32]:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clustered(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    centres = rng.normal(size=(20, DIM))
    return _unit(centres[rng.integers(0, 20, n)] + 0.6 * rng.normal(size=(n, DIM)))


def _load(sessions: sessionmaker[Session]) -> Library:
    rng = np.random.default_rng(7)
    vectors = _clustered(rng, N)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    folder: dict[int, str] = {}
    captured: dict[int, datetime | None] = {}
    with sessions.begin() as s:
        rows = []
        for n in range(N):
            when = None if n % 7 == 0 else base + timedelta(days=int(rng.integers(0, 365)))
            rows.append(
                {
                    "id": n + 1,
                    "sha256": f"{n:064x}",
                    "original_filename": f"{n}.jpg",
                    "folder": FOLDERS[n % len(FOLDERS)],
                    "content_type": "image/jpeg",
                    "size_bytes": 1,
                    "width": 1,
                    "height": 1,
                    "captured_at": when,
                    "created_at": base,
                    "text_words": _TEXTS[n % len(_TEXTS)],
                }
            )
            folder[n + 1] = rows[-1]["folder"]
            captured[n + 1] = when
        s.execute(insert(Asset), rows)
        s.execute(
            insert(AssetTask),
            [
                {"asset_id": n + 1, "kind": "embed", "state": "done", "attempts": 0}
                for n in range(N)
            ],
        )
        for n in range(N):
            embeddings_repo.put_embedding(s, n + 1, MODEL, vectors[n])
        s.add_all([Person(id=p, name=f"p{p}", name_key=f"p{p}") for p in (1, 2, 3)])
        s.add(Collection(id=1, name="c1"))
        s.flush()
        people: dict[int, set[int]] = {}
        for asset_id in range(1, N + 1, 5):  # every 5th asset has person 1, every 15th also 2
            people[asset_id] = {1} | ({2} if asset_id % 3 == 1 else set())
            for person in people[asset_id]:
                s.add(face_row(asset_id, person))
        # person 3 named by hand on a face too small to cluster
        for asset_id in range(3, N + 1, 7):
            people.setdefault(asset_id, set()).add(3)
            s.add(_face(asset_id, 3, clusterable=False))
        strangers = set(range(2, N + 1, 11))  # a recognisable face of no one yet
        s.add_all([_face(asset_id, None, clusterable=True) for asset_id in strangers])
        # an unnamed face too small to recognise: no one, ignored by only_people
        s.add_all([_face(asset_id, None, clusterable=False) for asset_id in range(4, N + 1, 13)])
        objects = {i: set(_OBJECTS[i % len(_OBJECTS)]) for i in range(1, N + 1)}
        s.execute(
            insert(AssetObject),
            [
                {"asset_id": i, "label": label, "score": 0.9, "x1": 0, "y1": 0, "x2": 1, "y2": 1}
                for i, labels in objects.items()
                for label in sorted(labels)
            ],
        )
        members = {int(i) for i in rng.choice(np.arange(1, N + 1), 120, replace=False)}
        s.execute(insert(CollectionMember), [{"collection_id": 1, "asset_id": i} for i in members])
    words = {n + 1: set(_TEXTS[n % len(_TEXTS)].split()) for n in range(N)}
    return Library(
        sessions.kw["bind"],
        sessions,
        np.arange(1, N + 1, dtype=np.int64),
        vectors,
        folder,
        captured,
        people,
        members,
        strangers,
        objects,
        words,
    )


# The text read in asset n + 1 (as stored: " word word ") and the objects detected in asset i.
_TEXTS = [" harbour 1987 ", "", " harbour ", " 1987 harbour lights ", " lights "]
_OBJECTS: list[tuple[str, ...]] = [(), ("dog",), ("dog", "cat"), ("car",), ("cat",), ()]


def _face(asset_id: int, person_id: int | None, *, clusterable: bool) -> Face:
    face = face_row(asset_id, person_id)
    face.clusterable = clusterable
    return face


FILTERS = {
    "none": None,
    "folder": SearchFilters(folder="nature"),
    "folder_exact": SearchFilters(folder="nature/birds", include_subfolders=False),
    "root_only": SearchFilters(folder="", include_subfolders=False),
    "dates": SearchFilters(
        captured_from=datetime(2024, 3, 1, tzinfo=UTC), captured_to=datetime(2024, 4, 1, tzinfo=UTC)
    ),
    "person": SearchFilters(person_ids=(1,)),
    "people": SearchFilters(person_ids=(1, 2)),
    "collection": SearchFilters(collection_id=1),
    "folder_and_date": SearchFilters(
        folder="nature/birds", captured_from=datetime(2024, 6, 1, tzinfo=UTC)
    ),
    "any_person": SearchFilters(any_person_ids=(2, 3)),
    "without_person": SearchFilters(exclude_person_ids=(1,)),
    "only_person": SearchFilters(person_ids=(1,), only_people=True),
    "only_any": SearchFilters(any_person_ids=(1, 3), only_people=True),
    "people_mixed": SearchFilters(person_ids=(1,), exclude_person_ids=(2,), folder="nature"),
    "objects": SearchFilters(objects=("dog", "cat")),
    "text_and_people": SearchFilters(text_words=("harbour", "1987"), exclude_person_ids=(3,)),
}


def _allowed(lib: Library, filters: SearchFilters | None) -> NDArray[np.int64]:
    """The reference's allow-list, computed in Python from what was loaded (not from SQL)."""
    if filters is None:
        return lib.ids

    def keep(i: int) -> bool:
        f = filters
        if f.folder is not None:
            want = f.folder.strip("/")
            have = lib.folder[i]
            if f.include_subfolders:
                if want and not (have == want or have.startswith(want + "/")):
                    return False
            elif have != want:
                return False
        when = lib.captured[i]
        if f.captured_from is not None and (when is None or when < f.captured_from):
            return False
        if f.captured_to is not None and (when is None or when >= f.captured_to):
            return False
        if not set(f.objects) <= lib.objects[i] or not set(f.text_words) <= lib.words[i]:
            return False
        return _people_allow(lib, f, i) and (f.collection_id is None or i in lib.members)

    return np.array([i for i in lib.ids.tolist() if keep(i)], dtype=np.int64)


def _people_allow(lib: Library, f: SearchFilters, i: int) -> bool:
    people = lib.people.get(i, set())
    named = set(f.person_ids) | set(f.any_person_ids)
    return (
        set(f.person_ids) <= people
        and (not f.any_person_ids or bool(set(f.any_person_ids) & people))
        and not set(f.exclude_person_ids) & people
        # only these people: no face named as anyone else, no recognisable face of no one
        and not (f.only_people and (people - named or i in lib.strangers))
    )


def _reference(lib: Library, query: NDArray[np.float32], allowed: NDArray[np.int64]) -> list[int]:
    scores = lib.vectors[allowed - 1] @ query
    order = np.lexsort((allowed, -scores))[:K]
    return [int(i) for i in allowed[order]]


@pytest.fixture(scope="module")
def library(pgvector_test_database: tuple[str, Engine]) -> Iterator[Library]:
    from tests.db_fixtures import _reset_postgres

    url, maintenance = pgvector_test_database
    _reset_postgres(url, maintenance)
    engine = make_engine(url)
    try:
        yield _load(make_session_factory(engine))
    finally:
        engine.dispose()


def _open(kind: str, lib: Library, tmp: Path) -> VectorStore:
    if kind in ("exact", "hnsw"):
        index = LibraryIndex(tmp / "clip.vfindex", MODEL, lib.sessions, kind=kind)  # type: ignore[arg-type]
        return EmbeddedStore(index, lib.sessions)
    if kind.startswith("pgvector"):
        # "iterative": every filtered query through the HNSW index's iterative scan (never
        # the exact scan the store prefers for selective filters).
        exact_below = 0 if kind.endswith("iterative") else 20_000
        return PgvectorStore(
            lib.engine,
            lib.sessions,
            MODEL,
            halfvec=kind.endswith("halfvec"),
            exact_below=exact_below,
        )
    from qdrant_client import QdrantClient

    from viewfinder.library.stores.qdrant import QdrantStore

    return QdrantStore(QdrantClient(":memory:"), lib.sessions, MODEL, "viewfinder_clip")


# ANN recall@10 each store must reach against the exact reference (averaged over the queries
# of one filter); exact stores must be exact.
MIN_RECALL = {
    "exact": 1.0,
    "hnsw": 0.95,
    "pgvector": 0.9,
    "pgvector-halfvec": 0.9,
    "pgvector-iterative": 0.9,
    "qdrant": 1.0,
}


@pytest.mark.parametrize("kind", list(MIN_RECALL))
def test_store_agrees_with_exact_reference(kind: str, library: Library, tmp_path: Path) -> None:
    store = _open(kind, library, tmp_path)
    store.open()
    report = store.sync()
    assert report.total == N
    rng = np.random.default_rng(11)
    queries = _clustered(rng, 20)
    recalls: dict[str, float] = {}
    for name, filters in FILTERS.items():
        allowed = _allowed(library, filters)
        assert len(allowed) > 0, name
        found = 0
        for query in queries:
            expected = _reference(library, query, allowed)
            hits = store.search(query, K, filters)
            ids = [h.id for h in hits]
            # A filtered search returns min(k, matching) hits, each one allowed, best first.
            assert len(ids) == min(K, len(allowed)), (kind, name)
            assert set(ids) <= set(allowed.tolist()), (kind, name)
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)
            np.testing.assert_allclose(
                scores, library.vectors[np.array(ids) - 1] @ query, atol=1e-4
            )
            found += len(set(ids) & set(expected))
        recalls[name] = found / (len(queries) * min(K, len(allowed)))
    print(kind, {name: round(r, 3) for name, r in recalls.items()})
    assert min(recalls.values()) >= MIN_RECALL[kind], recalls
    store.close()


def test_filter_conditions_match_the_reference(library: Library) -> None:
    """The SQL the stores share selects exactly what the Python reference allows."""
    from sqlalchemy import select

    for name, filters in FILTERS.items():
        if filters is None:
            continue
        with library.sessions() as s:
            ids = sorted(s.scalars(select(Asset.id).where(*asset_conditions(filters))))
        assert ids == _allowed(library, filters).tolist(), name


def test_pgvector_sync_repairs_lost_vectors_and_open_reconciles(library: Library) -> None:
    from sqlalchemy import text

    store = _open("pgvector", library, Path("/nonexistent"))
    store.sync()
    with library.engine.connect() as connection:
        storage = connection.execute(
            text(
                "SELECT attstorage FROM pg_attribute WHERE attname = 'embedding' "
                "AND attrelid = 'vector_embeddings'::regclass"
            )
        ).scalar()
        indexes = connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'vector_embeddings'")
        ).scalars()
        assert any("hnsw_clip_64" in name for name in indexes)
    assert storage == "p"  # in the row: no TOAST fetch per distance
    with library.engine.begin() as connection:
        connection.execute(text("DELETE FROM vector_embeddings WHERE asset_id <= 40"))
    assert store.count() == N - 40
    report = store.sync()
    assert (report.added, report.removed, report.total) == (40, 0, N)
    with library.engine.begin() as connection:
        connection.execute(text("DELETE FROM vector_embeddings WHERE asset_id > :n"), {"n": N - 7})
    reopened = _open("pgvector", library, Path("/nonexistent"))
    reopened.open()  # counts differ: a start-up repairs the store
    assert reopened.count() == N


def test_pgvector_refuses_a_sqlite_database(tmp_path: Path) -> None:
    from viewfinder.errors import StorageError

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(StorageError, match="VIEWFINDER_DATABASE_URL to a PostgreSQL"):
        PgvectorStore(engine, make_session_factory(engine), MODEL)
    engine.dispose()


def test_pgvector_without_the_extension_says_what_to_install(
    sessions: sessionmaker[Session],
) -> None:
    """The machine's PostgreSQL 15 has no pgvector: the store stops start-up with the fix."""
    from viewfinder.errors import StorageError

    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite is refused before: see the test above")
    with pytest.raises(StorageError, match="has no pgvector extension; install pgvector"):
        PgvectorStore(engine, sessions, MODEL).open()
