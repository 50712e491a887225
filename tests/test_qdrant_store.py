"""The Qdrant vector store against a real database (SQLite and PostgreSQL) and qdrant-client's
in-process mode (``QdrantClient(":memory:")``).

The in-process mode is the stand-in for a Qdrant server: no server can be installed here, and it
speaks the same client API (DESIGN.md, "Storage and scale"). It searches exactly, so its results
must equal a brute-force numpy reference id for id. It does not report payload indexes
(``get_collection().payload_schema`` is always empty there), so the order "collection, payload
indexes, then points" is checked on the calls the store makes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from qdrant_client import QdrantClient, models
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import collections as collection_repo
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.db import faces as face_repo
from viewfinder.db.models import Asset, Embedding, Person
from viewfinder.errors import StorageError
from viewfinder.library.filters import SearchFilters, matching_ids
from viewfinder.library.stores.qdrant import QdrantStore, folder_path
from viewfinder.settings import Settings
from viewfinder.testing.server import free_port

pytestmark = pytest.mark.filterwarnings(
    # The in-process client warns that payload indexes only speed up a real server.
    "ignore:Payload indexes have no effect:UserWarning",
    # The in-process client searches exactly, so it ignores the server's HNSW beam width.
    "ignore:Local mode performs exact:UserWarning",
    # The version check of a client pointed at a closed port.
    "ignore:Failed to obtain server version:UserWarning",
)

MODEL = "clip"
COLLECTION = "viewfinder_test_clip"
DIM = 16
K = 10
FOLDERS = ["", "a", "a/b", "a/b/c", "ab", "a/bc", "x/y"]
DATE_FROM = datetime(2023, 4, 1, tzinfo=UTC)
DATE_TO = datetime(2023, 7, 1, tzinfo=UTC)


@dataclass
class Library:
    """What the database holds, kept here too so the reference never asks the code under test."""

    ids: NDArray[np.int64]  # every asset
    folders: dict[int, str]
    captured: dict[int, datetime | None]
    vectors: dict[int, NDArray[np.float32]]  # the assets that have an embedding
    people: dict[int, set[int]]  # person id -> assets showing them
    nobody: int  # a person on no photo
    collection: int
    members: set[int]


def unit_rows(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def embedded(library: Library) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    ids = np.array(sorted(library.vectors), dtype=np.int64)
    return ids, np.stack([library.vectors[int(i)] for i in ids])


def a_face() -> face_repo.NewFace:
    return face_repo.NewFace(
        box=(1.0, 1.0, 20.0, 20.0),
        landmarks=((5.0, 5.0),) * 5,
        detection_score=0.9,
        quality=0.8,
        clusterable=True,
        embedding=np.ones(4, dtype=np.float32),
        thumbnail=b"",
    )


@pytest.fixture
def library(sessions: sessionmaker[Session]) -> Library:
    """300 assets over nested folders, capture times (some missing, two on the range's edges),
    two people, a collection, and embeddings for all but 15."""
    rng = np.random.default_rng(7)
    n = 300
    captured: list[datetime | None] = [
        None
        if rng.random() < 0.2
        else datetime(2023, 1, 1, tzinfo=UTC)
        + timedelta(seconds=float(rng.uniform(0, 365 * 86400)))
        for _ in range(n)
    ]
    captured[0], captured[1] = DATE_FROM, DATE_TO  # the half-open range keeps one, not the other
    vectors = unit_rows(rng, n)
    with sessions.begin() as s:
        assets = [
            assets_repo.add_asset(
                s,
                Asset(
                    sha256=f"{i:064x}",
                    original_filename=f"img{i}.jpg",
                    folder=FOLDERS[int(rng.integers(len(FOLDERS)))],
                    content_type="image/jpeg",
                    size_bytes=1000,
                    width=64,
                    height=48,
                    captured_at=captured[i],
                ),
                [],
            )
            for i in range(n)
        ]
        ids = np.array([a.id for a in assets], dtype=np.int64)
        persons = [Person(name=name, name_key=name) for name in ("ann", "bob", "cy")]
        s.add_all(persons)
        s.flush()
        people: dict[int, set[int]] = {}
        for person, share in zip(persons[:2], (0.4, 0.3), strict=True):
            shown = {int(i) for i in ids[rng.random(n) < share]}
            for asset_id in shown:
                for face in face_repo.add_faces(s, asset_id, [a_face()]):
                    face.person_id = person.id
            people[person.id] = shown
        collection = collection_repo.create_collection(s, "favourites")
        members = {int(i) for i in ids[rng.random(n) < 0.25]}
        collection_repo.add_members(s, collection.id, sorted(members))
        without_vector = set(rng.choice(n, size=15, replace=False).tolist())
        stored: dict[int, NDArray[np.float32]] = {}
        for i, asset_id in enumerate(ids.tolist()):
            if i not in without_vector:
                embeddings_repo.put_embedding(s, asset_id, MODEL, vectors[i])
                stored[asset_id] = vectors[i]
        return Library(
            ids=ids,
            folders={a.id: a.folder for a in assets},
            captured={a.id: captured[i] for i, a in enumerate(assets)},
            vectors=stored,
            people=people,
            nobody=persons[2].id,
            collection=collection.id,
            members=members,
        )


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    qdrant = QdrantClient(":memory:")
    yield qdrant
    qdrant.close()


@pytest.fixture
def store(client: QdrantClient, sessions: sessionmaker[Session]) -> QdrantStore:
    return QdrantStore(client, sessions, MODEL, COLLECTION)


def allows(library: Library, asset_id: int, filters: SearchFilters) -> bool:
    """The filter semantics of ``assets_repo.asset_filters`` and ``asset_conditions``, restated."""
    folder = library.folders[asset_id]
    wanted = filters.folder_prefix
    if wanted is not None:
        if filters.include_subfolders:
            if wanted and folder != wanted and not folder.startswith(wanted + "/"):
                return False
        elif folder != wanted:
            return False
    captured = library.captured[asset_id]
    start, end = (
        None if t is None else t if t.tzinfo else t.replace(tzinfo=UTC)
        for t in (filters.captured_from, filters.captured_to)
    )
    if start is not None and (captured is None or captured < start):
        return False
    if end is not None and (captured is None or captured >= end):
        return False
    if any(asset_id not in library.people.get(p, set()) for p in filters.person_ids):
        return False
    return filters.collection_id is None or asset_id in library.members


def reference(
    library: Library, query: NDArray[np.float32], filters: SearchFilters | None
) -> list[int]:
    """Brute-force cosine: the ``K`` best allowed assets that have a vector, best first."""
    ids = np.array(
        [i for i in sorted(library.vectors) if filters is None or allows(library, i, filters)],
        dtype=np.int64,
    )
    if ids.size == 0:
        return []
    scores = np.stack([library.vectors[int(i)] for i in ids]) @ query
    return [int(i) for i in ids[np.lexsort((ids, -scores))[:K]]]


def assert_searches_match(
    store: QdrantStore, library: Library, filters: SearchFilters | None
) -> None:
    rng = np.random.default_rng(11)
    for query in unit_rows(rng, 3):
        hits = store.search(query, K, filters)
        expected = reference(library, query, filters)
        assert [h.id for h in hits] == expected, filters
        for hit in hits:
            assert hit.score == pytest.approx(float(library.vectors[hit.id] @ query), abs=1e-5)


def test_payload_indexes_exist_before_the_first_point(
    client: QdrantClient, store: QdrantStore, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any, Any]] = []

    def recording(name: str) -> Callable[..., Any]:
        original = getattr(client, name)

        def record(*args: Any, **kwargs: Any) -> Any:
            field = kwargs.get("field_name", args[1] if len(args) > 1 else None)
            schema = kwargs.get("field_schema", args[2] if len(args) > 2 else None)
            calls.append((name, field, schema) if name == "create_payload_index" else (name, 0, 0))
            return original(*args, **kwargs)

        return record

    for name in ("create_collection", "create_payload_index", "upsert"):
        monkeypatch.setattr(client, name, recording(name))
    assert store.count() == 0
    ids, vectors = embedded(library)
    store.add(ids, vectors)

    keyword, number = models.PayloadSchemaType.KEYWORD, models.PayloadSchemaType.FLOAT
    assert calls == [
        ("create_collection", 0, 0),
        ("create_payload_index", "folder", keyword),
        ("create_payload_index", "folder_path", keyword),
        ("create_payload_index", "captured_at", number),
        ("upsert", 0, 0),
    ]
    assert store.count() == len(ids)
    params = client.get_collection(COLLECTION).config.params.vectors
    assert isinstance(params, models.VectorParams)
    assert (params.size, params.distance) == (DIM, models.Distance.COSINE)
    for record in client.retrieve(COLLECTION, [int(i) for i in ids], with_payload=True):
        asset_id = int(record.id)
        captured = library.captured[asset_id]
        assert record.payload == {
            "folder": library.folders[asset_id],
            "folder_path": folder_path(library.folders[asset_id]),
            **({} if captured is None else {"captured_at": captured.timestamp()}),
        }


def test_folder_path_lists_the_folder_and_its_ancestors() -> None:
    assert folder_path("a/b/c") == ["a", "a/b", "a/b/c"]
    assert folder_path("ab") == ["ab"]
    assert folder_path("") == [""]


def test_upserts_are_idempotent_by_id(store: QdrantStore, library: Library) -> None:
    ids, vectors = embedded(library)
    store.add(ids, vectors)
    store.add(ids, vectors)
    store.add(ids[:50], vectors[:50])
    assert store.count() == len(ids)

    moved = -vectors[0]  # re-adding an id replaces its vector
    store.add(ids[:1], moved[None, :])
    assert store.count() == len(ids)
    best = store.search(moved, 1)[0]
    assert best.id == int(ids[0])
    assert best.score == pytest.approx(1.0, abs=1e-5)


def test_search_equals_the_exact_reference_under_every_filter(
    store: QdrantStore, library: Library, sessions: sessionmaker[Session]
) -> None:
    ids, vectors = embedded(library)
    store.add(ids, vectors)
    ann, bob = sorted(library.people)
    naive_from = DATE_FROM.replace(tzinfo=None)
    cases: list[SearchFilters | None] = [
        None,
        SearchFilters(folder="a"),
        SearchFilters(folder="/a/b/"),
        SearchFilters(folder="a", include_subfolders=False),
        SearchFilters(folder="a/b/c", include_subfolders=False),
        SearchFilters(folder="", include_subfolders=False),
        SearchFilters(folder=""),
        SearchFilters(captured_from=DATE_FROM),
        SearchFilters(captured_to=DATE_TO),
        SearchFilters(captured_from=DATE_FROM, captured_to=DATE_TO),
        SearchFilters(captured_from=naive_from, captured_to=DATE_TO),
        SearchFilters(person_ids=(ann,)),
        SearchFilters(person_ids=(ann, bob)),
        SearchFilters(collection_id=library.collection),
        SearchFilters(folder="a", captured_from=DATE_FROM, person_ids=(ann,)),
        SearchFilters(folder="nowhere"),
        SearchFilters(person_ids=(library.nobody,)),
    ]
    for filters in cases:
        if filters is not None:
            with sessions() as s:
                selected = {int(i) for i in matching_ids(s, filters)}
            restated = {int(i) for i in library.ids if allows(library, int(i), filters)}
            assert restated == selected, filters  # the reference agrees with the SQL filters
        assert_searches_match(store, library, filters)

    # The edges of the half-open range: its start is in, its end is out.
    edges = SearchFilters(captured_from=DATE_FROM, captured_to=DATE_TO)
    start_id, end_id = int(library.ids[0]), int(library.ids[1])
    if start_id in library.vectors:
        assert start_id in {h.id for h in store.search(library.vectors[start_id], 1, edges)}
    if end_id in library.vectors:
        assert end_id not in {h.id for h in store.search(library.vectors[end_id], 300, edges)}


def test_removed_vectors_leave_the_results(store: QdrantStore, library: Library) -> None:
    ids, vectors = embedded(library)
    store.add(ids, vectors)
    gone = ids[:20]
    store.remove(gone)
    store.remove(np.array([10**9], dtype=np.int64))  # unknown ids are ignored
    assert store.count() == len(ids) - 20
    for vector in vectors[:20]:
        assert not {h.id for h in store.search(vector, K)} & {int(i) for i in gone}
    for asset_id in gone.tolist():
        del library.vectors[asset_id]
    assert_searches_match(store, library, SearchFilters(folder="a"))


def test_sync_fills_an_empty_collection(store: QdrantStore, library: Library) -> None:
    report = store.sync()
    assert (report.added, report.removed, report.total) == (
        len(library.vectors),
        0,
        len(library.vectors),
    )
    assert_searches_match(store, library, None)
    assert_searches_match(store, library, SearchFilters(folder="a/b", captured_to=DATE_TO))
    assert store.sync().added == 0


def test_sync_repairs_missing_and_extra_points(
    client: QdrantClient, store: QdrantStore, library: Library, sessions: sessionmaker[Session]
) -> None:
    ids, vectors = embedded(library)
    store.add(ids, vectors)
    client.delete(COLLECTION, models.PointIdsList(points=[int(i) for i in ids[:5]]))
    strays: list[models.ExtendedPointId] = [10**6, 10**6 + 1, 10**6 + 2]
    client.upsert(
        COLLECTION,
        models.Batch(ids=strays, vectors=unit_rows(np.random.default_rng(3), 3).tolist()),
    )
    forgotten = [int(i) for i in ids[-2:]]  # their assets lost their embeddings in the database
    with sessions.begin() as s:
        s.execute(delete(Embedding).where(Embedding.asset_id.in_(forgotten)))
    for asset_id in forgotten:
        del library.vectors[asset_id]

    report = store.sync()
    assert (report.added, report.removed, report.total) == (5, 5, len(library.vectors))
    with sessions() as s:
        assert {int(i) for i in store._held_ids()} == {
            int(i) for i in embeddings_repo.embedding_ids(s, MODEL)
        }
    assert_searches_match(store, library, SearchFilters(folder="a", include_subfolders=False))
    report = store.sync()
    assert (report.added, report.removed) == (0, 0)


def test_sync_rebuilds_a_collection_of_another_vector_size(
    client: QdrantClient, store: QdrantStore, library: Library
) -> None:
    client.create_collection(
        COLLECTION, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    report = store.sync()
    assert report.total == len(library.vectors)
    params = client.get_collection(COLLECTION).config.params.vectors
    assert isinstance(params, models.VectorParams)
    assert params.size == DIM
    assert_searches_match(store, library, None)


def test_open_reconciles_only_when_the_counts_differ(
    client: QdrantClient,
    store: QdrantStore,
    library: Library,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids, vectors = embedded(library)
    store.add(ids[10:], vectors[10:])  # a crash lost the first ten writes

    restarted = QdrantStore(client, sessions, MODEL, COLLECTION)
    restarted.open()
    assert restarted.count() == len(ids)
    assert_searches_match(restarted, library, None)

    def no_sync() -> None:
        raise AssertionError("open() synced a store whose count matches the database")

    monkeypatch.setattr(restarted, "sync", no_sync)
    restarted.open()


def test_open_on_an_empty_database_creates_nothing(
    client: QdrantClient, store: QdrantStore
) -> None:
    store.open()
    assert not client.collection_exists(COLLECTION)
    assert store.count() == 0
    assert store.search(np.ones(DIM, dtype=np.float32), K) == []
    store.remove(np.array([1, 2], dtype=np.int64))


def test_replicas_see_each_others_writes_at_once(
    client: QdrantClient, sessions: sessionmaker[Session], library: Library
) -> None:
    worker = QdrantStore(client, sessions, MODEL, COLLECTION)
    replica = QdrantStore(client, sessions, MODEL, COLLECTION)
    ids, vectors = embedded(library)
    query = vectors[0]
    assert replica.search(query, K) == []  # before the collection exists
    worker.add(ids, vectors)
    assert [h.id for h in replica.search(query, K)] == reference(library, query, None)
    worker.remove(ids[:1])
    assert int(ids[0]) not in {h.id for h in replica.search(vectors[0], K)}


def test_an_existing_collection_without_indexes_gets_them(
    client: QdrantClient, store: QdrantStore, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.create_collection(
        COLLECTION, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    indexed: list[str] = []
    original = client.create_payload_index

    def record(collection_name: str, field_name: str, *args: Any, **kwargs: Any) -> Any:
        indexed.append(field_name)
        return original(collection_name, field_name, *args, **kwargs)

    monkeypatch.setattr(client, "create_payload_index", record)
    ids, vectors = embedded(library)
    store.add(ids, vectors)
    assert indexed == ["folder", "folder_path", "captured_at"]
    assert_searches_match(store, library, SearchFilters(folder="a"))


def test_settings_name_the_collection_and_an_unreachable_server_is_a_storage_error(
    tmp_path: Path,
) -> None:
    unconfigured = Settings(data_dir=tmp_path, qdrant_url=None)
    with pytest.raises(StorageError, match="QDRANT_URL"):
        QdrantStore.from_settings(unconfigured, sessionmaker(), MODEL)

    settings = Settings(
        data_dir=tmp_path,
        qdrant_url=f"http://127.0.0.1:{free_port()}",
        qdrant_collection_prefix="vf",
    )
    store = QdrantStore.from_settings(settings, sessionmaker(), MODEL)
    try:
        assert (store.collection_name, store.kind, store.shared) == ("vf_clip", "qdrant", True)
        with pytest.raises(StorageError, match="vf_clip"):
            store.count()
    finally:
        store.close()
