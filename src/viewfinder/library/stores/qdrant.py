"""Qdrant: the library's vectors in a Qdrant server that every process shares (seed 001's store).

Needs the optional ``qdrant-client`` (``pip install 'viewfinder[qdrant]'``). One collection per
embedding model (``<prefix>_<model>``), cosine distance, point id = asset id. Each point carries
the asset's folder and capture time as payload, indexed before the first point is loaded:
Qdrant filters while it walks its graph, but only fields indexed from the start are fast (see
DESIGN.md, "Storage and scale"). Folder and date filters become payload conditions; people and
collections become an id condition selected in SQL (see ``_filter``).

Writes wait for the server (``wait=True``), so the next search from any replica sees them (on a
replicated cluster, once every replica of the shard has applied them: ``write_consistency_factor``
equal to the replication factor), and are idempotent: an upsert of an id replaces its point.
The database stays the source of truth; ``sync`` makes the collection hold exactly its
embeddings again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.errors import StorageError
from viewfinder.index import Hit
from viewfinder.index.base import as_ids, as_query, as_upsert_batch, check_k
from viewfinder.library.filters import SearchFilters, matching_ids
from viewfinder.library.stores.base import StoreKind, SyncReport
from viewfinder.settings import Settings

INSTALL_HINT = "pip install 'viewfinder[qdrant]'"

try:
    from qdrant_client import QdrantClient, models
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
except ImportError as exc:  # only a process configured for Qdrant imports this module
    raise StorageError(
        f"the Qdrant vector store (VIEWFINDER_VECTOR_STORE=qdrant) needs qdrant-client: "
        f"{INSTALL_HINT}"
    ) from exc

# Points per upsert or delete request: ~2 MB of JSON at 512 dimensions.
WRITE_CHUNK = 1000
# Ids per page when ``sync`` lists the collection.
SCROLL_PAGE = 10_000
# The server's HNSW beam width: the benchmarks' efSearch 128 (recall@10 ~0.98), or k if larger.
MIN_HNSW_EF = 128

PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "folder": models.PayloadSchemaType.KEYWORD,
    "folder_path": models.PayloadSchemaType.KEYWORD,
    "captured_at": models.PayloadSchemaType.FLOAT,
}


class QdrantStore:
    kind: StoreKind = "qdrant"
    shared = True

    def __init__(
        self,
        client: QdrantClient,
        sessions: sessionmaker[Session],
        model: str,
        collection_name: str,
        *,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self.model = model
        self.collection_name = collection_name
        self._owns_client = owns_client
        # The collection's vector size once it is known to exist; None before that (it is
        # created by the first write, when the first vectors give its size).
        self._dim: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: sessionmaker[Session], model: str
    ) -> QdrantStore:
        if not settings.qdrant_url:
            raise StorageError(
                "the Qdrant vector store needs the server's address: set VIEWFINDER_QDRANT_URL "
                "(or QDRANT_URL), for example http://qdrant:6333"
            )
        client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
        name = f"{settings.qdrant_collection_prefix}_{model}"
        return cls(client, sessions, model, name, owns_client=True)

    def open(self) -> None:
        with self._sessions() as session:
            expected = embeddings_repo.count_embeddings(session, self.model)
        # A count is the cheap check; ``sync`` compares the ids themselves.
        if self.count() != expected:
            self.sync()

    def write(self, session: Session, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        return

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        if np.size(ids) == 0:
            return
        with self._qdrant_errors():
            dim = self._known_dim() or int(np.shape(vectors)[-1])
            unique_ids, rows = as_upsert_batch(ids, vectors, dim)
            self._ensure_collection(dim)
            for start in range(0, unique_ids.size, WRITE_CHUNK):
                stop = start + WRITE_CHUNK
                self._upsert(unique_ids[start:stop], rows[start:stop])

    def remove(self, ids: NDArray[np.int64]) -> None:
        doomed = as_ids(ids)
        if doomed.size == 0:
            return
        with self._qdrant_errors():
            if self._known_dim() is None:
                return
            for start in range(0, doomed.size, WRITE_CHUNK):
                chunk: list[models.ExtendedPointId] = [
                    int(i) for i in doomed[start : start + WRITE_CHUNK]
                ]
                self._client.delete(
                    self.collection_name, models.PointIdsList(points=chunk), wait=True
                )

    def search(
        self, query: NDArray[np.float32], k: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        check_k(k)
        with self._qdrant_errors():
            dim = self._known_dim()
            if dim is None:
                return []
            query_filter = None
            if filters is not None and filters.active:
                query_filter = self._filter(filters)
                if query_filter is None:
                    return []
            response = self._client.query_points(
                self.collection_name,
                query=as_query(query, dim).tolist(),
                query_filter=query_filter,
                search_params=models.SearchParams(hnsw_ef=max(MIN_HNSW_EF, k), exact=False),
                limit=k,
                with_payload=False,
            )
        return [Hit(int(point.id), float(point.score)) for point in response.points]

    def count(self) -> int:
        with self._qdrant_errors():
            if self._known_dim() is None:
                return 0
            return self._client.count(self.collection_name, exact=True).count

    def sync(self) -> SyncReport:
        with self._qdrant_errors():
            # The collection's ids are listed before the database's: an embedding committed in
            # between is then "missing" and upserted again (harmless), where the other order
            # would list its freshly added point as "extra" and delete it.
            held = self._held_ids()
            with self._sessions() as session:
                wanted = embeddings_repo.embedding_ids(session, self.model)
                dim = embeddings_repo.embedding_dim(session, self.model) if wanted.size else None
            if dim is not None:
                if self._known_dim() not in (None, dim):
                    # The model's vectors changed size: every point is unusable.
                    self._client.delete_collection(self.collection_name)
                    self._dim = None
                    held = np.empty(0, dtype=np.int64)
                self._ensure_collection(dim)
            missing = np.setdiff1d(wanted, held, assume_unique=True)
            extra = np.setdiff1d(held, wanted, assume_unique=True)
            added = 0
            for start in range(0, missing.size, WRITE_CHUNK):
                chunk = [int(i) for i in missing[start : start + WRITE_CHUNK]]
                with self._sessions() as session:
                    found = embeddings_repo.get_embeddings(session, self.model, chunk)
                if found:
                    vectors = np.stack(list(found.values()))
                    ids, rows = as_upsert_batch(list(found), vectors, vectors.shape[1])
                    added += self._upsert(ids, rows)
            self.remove(extra)
            return SyncReport(added=added, removed=int(extra.size), total=self.count())

    def save(self) -> None:
        return

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # --- the collection ---------------------------------------------------------------------

    def _known_dim(self) -> int | None:
        """The collection's vector size, or None while it does not exist (another process may
        have created it since this one last looked)."""
        if self._dim is None:
            with self._lock:
                if self._dim is None and self._client.collection_exists(self.collection_name):
                    self._dim = self._adopt_collection()
        return self._dim

    def _ensure_collection(self, dim: int) -> None:
        if self._known_dim() is not None:
            return
        with self._lock:
            if self._dim is not None:
                return
            try:
                self._client.create_collection(
                    self.collection_name,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                )
            except (UnexpectedResponse, ValueError):
                # Another replica created it first (the server answers 409, the in-process
                # client raises ValueError); anything else is a real failure.
                if not self._client.collection_exists(self.collection_name):
                    raise
                self._dim = self._adopt_collection()
                return
            for field, schema in PAYLOAD_INDEXES.items():
                self._client.create_payload_index(self.collection_name, field, schema, wait=True)
            self._dim = dim

    def _adopt_collection(self) -> int:
        """The size of an existing collection's vectors, after creating any payload index it
        lacks (its creator may have died between creating it and indexing it)."""
        info = self._client.get_collection(self.collection_name)
        for field, schema in PAYLOAD_INDEXES.items():
            if field not in info.payload_schema:
                self._client.create_payload_index(self.collection_name, field, schema, wait=True)
        vectors = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise StorageError(
                f"Qdrant collection {self.collection_name!r} has named vectors, not the single "
                "unnamed vector Viewfinder writes; delete it or choose another "
                "VIEWFINDER_QDRANT_COLLECTION_PREFIX"
            )
        return vectors.size

    def _held_ids(self) -> NDArray[np.int64]:
        """Every point id in the collection, ascending (empty when it does not exist)."""
        if self._known_dim() is None:
            return np.empty(0, dtype=np.int64)
        pages: list[NDArray[np.int64]] = []
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = self._client.scroll(
                self.collection_name,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            )
            pages.append(np.fromiter((int(r.id) for r in records), dtype=np.int64))
            if offset is None:
                return np.unique(np.concatenate(pages))

    def _upsert(self, ids: NDArray[np.int64], rows: NDArray[np.float32]) -> int:
        """Write these points with their assets' payload; returns how many were written (an
        asset deleted since its vector was read has no row and is skipped, not resurrected)."""
        with self._sessions() as session:
            payloads = _payloads(session, ids)
        keep = np.fromiter((int(i) in payloads for i in ids), dtype=bool, count=ids.size)
        if not keep.any():
            return 0
        point_ids: list[models.ExtendedPointId] = [int(i) for i in ids[keep]]
        self._client.upsert(
            self.collection_name,
            models.Batch(
                ids=point_ids,
                vectors=rows[keep].tolist(),
                payloads=[payloads[int(i)] for i in point_ids],
            ),
            wait=True,
        )
        return len(point_ids)

    def _filter(self, filters: SearchFilters) -> models.Filter | None:
        """The Qdrant filter for ``filters``, or None when no asset can match."""
        conditions: list[models.Condition] = []
        folder = filters.folder_prefix
        if folder is not None and not filters.include_subfolders:
            conditions.append(_match("folder", folder))
        elif folder:  # the root with its subfolders is every asset: no condition
            conditions.append(_match("folder_path", folder))
        if filters.captured_from is not None or filters.captured_to is not None:
            # A point without ``captured_at`` fails any range, as NULL fails it in SQL.
            conditions.append(
                models.FieldCondition(
                    key="captured_at",
                    range=models.Range(
                        gte=_epoch(filters.captured_from), lt=_epoch(filters.captured_to)
                    ),
                )
            )
        if filters.needs_sql:
            # People, collections, text and objects are selected in SQL, not kept as payload:
            # faces are assigned, merged and reassigned long after a vector is written,
            # collections are edited at will, text and objects arrive from their own workers,
            # so a payload copy would go stale; the database answers now.
            # Excluded people go the other way (the few images showing them, must_not): as an
            # allow-list they would name nearly every image of the library in each query.
            wanted = replace(filters.sql_only(), exclude_person_ids=())
            excluded = SearchFilters(any_person_ids=filters.exclude_person_ids)
            with self._sessions() as session:
                allowed = matching_ids(session, wanted) if wanted.needs_sql else None
                shunned = matching_ids(session, excluded) if excluded.needs_sql else None
            if allowed is not None:
                if allowed.size == 0:
                    return None
                conditions.append(models.HasIdCondition(has_id=[int(i) for i in allowed]))
            if shunned is not None and shunned.size:
                return models.Filter(
                    must=conditions,
                    must_not=[models.HasIdCondition(has_id=[int(i) for i in shunned])],
                )
        return models.Filter(must=conditions)

    @contextmanager
    def _qdrant_errors(self) -> Iterator[None]:
        """Turn an unreachable or failing server into ``StorageError`` (503 in the API)."""
        try:
            yield
        except (UnexpectedResponse, ResponseHandlingException) as exc:
            if isinstance(exc, UnexpectedResponse) and exc.status_code == 404:
                # The collection was dropped behind this process (another one's ``sync`` after
                # a change of vector size, an operator): look it up again on the next call.
                self._dim = None
            raise StorageError(
                f"the Qdrant vector store (collection {self.collection_name!r}) failed: {exc}"
            ) from exc


def folder_path(folder: str) -> list[str]:
    """The folders a "with subfolders" filter may name to include ``folder``: itself and every
    prefix that ends just before a "/" ("a/b/c" -> "a", "a/b", "a/b/c"), which is the prefix
    comparison of ``assets_repo.asset_filters``."""
    return [folder[:i] for i, char in enumerate(folder) if char == "/"] + [folder]


def _payloads(session: Session, ids: NDArray[np.int64]) -> dict[int, dict[str, Any]]:
    """Each existing asset's payload, keyed by id."""
    payloads: dict[int, dict[str, Any]] = {}
    for asset_id, folder, captured_at in assets_repo.placements(session, ids.tolist()):
        payload: dict[str, Any] = {"folder": folder, "folder_path": folder_path(folder)}
        if captured_at is not None:
            payload["captured_at"] = _epoch(captured_at)
        payloads[asset_id] = payload
    return payloads


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _epoch(moment: datetime | None) -> float | None:
    """Seconds since the epoch; a naive time is UTC, as the database's ``UtcDateTime`` reads it."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
