"""pgvector: image vectors in the metadata PostgreSQL, searched with an HNSW index.

One database holds metadata, the work queue and the vectors (as Immich does), so a vector commits
in the same transaction as its task, every API replica sees it (and a delete) at once, one backup
covers everything, and search filters are SQL in the same query as the vector ordering.

Known limits of filtered HNSW search, and what this store does about them:
- A filtered HNSW scan stops after ``hnsw.ef_search`` candidates and returns fewer rows than asked
  when most of them fail the filter. pgvector >= 0.8's iterative index scans continue the scan
  until ``k`` rows pass (``hnsw.iterative_scan = relaxed_order``; the few rows out of order are
  re-sorted here by their exact distance).
- A very selective filter makes even an iterative scan walk most of the graph: when at most
  ``exact_below`` assets match, the matching rows are scanned exactly instead (a bounded count
  decides, so a broad filter costs no full count).
- ``halfvec``: the index can be built on half-precision vectors (half its memory); the
  candidates are then re-ranked by the full float32 vectors kept in the table.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    Engine,
    Float,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import UserDefinedType

from viewfinder.db import embeddings as embeddings_repo
from viewfinder.db import pgvector_schema as schema
from viewfinder.db.models import Asset
from viewfinder.errors import StorageError
from viewfinder.index import Hit
from viewfinder.library.filters import SearchFilters, asset_conditions
from viewfinder.library.stores.base import StoreKind, SyncReport, as_ids
from viewfinder.settings import Settings

log = logging.getLogger(__name__)

SYNC_CHUNK = 5_000
# hnsw.ef_search accepts 1..1000; iterative scans go past it when a filter needs more rows.
MAX_EF_SEARCH = 1000
# With halfvec, how many candidates per wanted hit are re-ranked by the float32 vectors.
HALFVEC_OVERSAMPLE = 2


class _VectorType(UserDefinedType[Any]):
    """pgvector's ``vector``/``halfvec`` type, for casting the query parameter."""

    cache_ok = True

    def __init__(self, dim: int | None = None, half: bool = False) -> None:
        self.dim = dim
        self.half = half

    def get_col_spec(self, **kw: Any) -> str:
        name = "halfvec" if self.half else "vector"
        return name if self.dim is None else f"{name}({self.dim})"


def _query_param(dim: int | None = None, half: bool = False) -> Any:
    return cast(bindparam("q"), _VectorType(dim, half))


# The table is not mapped (it exists only on PostgreSQL with pgvector); a Core stand-in for joins.
_VECTORS = table("vector_embeddings", column("model"), column("asset_id"), column("embedding"))


def vector_literal(vector: NDArray[np.float32]) -> str:
    """pgvector's text form, ``[x1,x2,...]``; ``repr`` keeps every float32 digit exactly."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class PgvectorStore:
    kind: StoreKind = "pgvector"
    shared = True

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        model: str,
        *,
        halfvec: bool = False,
        exact_below: int = 5_000,
        ef_search: int = 200,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise StorageError(
                "VIEWFINDER_VECTOR_STORE=pgvector keeps vectors in PostgreSQL: set "
                "VIEWFINDER_DATABASE_URL to a PostgreSQL database with the pgvector extension"
            )
        schema.hnsw_index_name(model, 1, halfvec)  # rejects a model name unsafe in SQL
        self._engine = engine
        self._sessions = sessions
        self.model = model
        self.halfvec = halfvec
        self.exact_below = exact_below
        self.ef_search = ef_search
        self._indexed_dims: set[int] = set()
        self._schema_ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Engine, sessions: sessionmaker[Session], model: str
    ) -> PgvectorStore:
        return cls(
            engine,
            sessions,
            model,
            halfvec=settings.pgvector_halfvec,
            exact_below=settings.pgvector_exact_below,
        )

    # --- schema -------------------------------------------------------------------------------

    def open(self) -> None:
        self._ensure_schema()
        dim = self._db_dim()
        if dim is not None:
            self._ensure_index(dim)
            stored, indexed = self._counts()
            if stored != indexed:
                report = self.sync()
                log.info("pgvector reconciled: %d added, %d removed", report.added, report.removed)

    def _ensure_schema(self) -> None:
        """The extension and the table, checked once per store (``open`` then ``sync``)."""
        if self._schema_ready:
            return
        with self._engine.begin() as connection:
            if not schema.ensure(connection):
                raise StorageError(
                    "VIEWFINDER_VECTOR_STORE=pgvector: this PostgreSQL server has no pgvector "
                    "extension; install pgvector (0.8 or newer) on it, or choose another store"
                )
            version = connection.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar()
        if version is not None and _version(version) < (0, 8):
            raise StorageError(
                f"pgvector {version} is too old: filtered search needs iterative index scans "
                "(pgvector 0.8 or newer)"
            )
        self._schema_ready = True

    def _ensure_index(self, dim: int) -> None:
        """The HNSW index for this dimension, created once (one creator at a time: replicas
        starting together wait on an advisory lock instead of racing on the catalog)."""
        if dim in self._indexed_dims:
            return
        with self._lock, self._engine.begin() as connection:
            name = schema.hnsw_index_name(self.model, dim, self.halfvec)
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
            connection.execute(text(schema.hnsw_index_sql(self.model, dim, self.halfvec)))
            self._indexed_dims.add(dim)

    def _db_dim(self) -> int | None:
        with self._sessions() as session:
            return embeddings_repo.embedding_dim(session, self.model)

    def _counts(self) -> tuple[int, int]:
        with self._sessions() as session:
            stored = embeddings_repo.count_embeddings(session, self.model)
            indexed = session.execute(
                text("SELECT count(*) FROM vector_embeddings WHERE model = :m"), {"m": self.model}
            ).scalar()
        return stored, int(indexed or 0)

    # --- writes -------------------------------------------------------------------------------

    def write(self, session: Session, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        ids = as_ids(ids)
        if len(ids) == 0:
            return
        self._ensure_index(int(vectors.shape[1]))
        session.execute(
            text(
                "INSERT INTO vector_embeddings (model, asset_id, embedding) "
                "VALUES (:m, :i, CAST(:v AS vector)) "
                "ON CONFLICT (model, asset_id) DO UPDATE SET embedding = EXCLUDED.embedding"
            ),
            [
                {"m": self.model, "i": int(i), "v": vector_literal(v)}
                for i, v in zip(ids, vectors, strict=True)
            ],
        )

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        return  # written with the embedding, in its transaction

    def remove(self, ids: NDArray[np.int64]) -> None:
        ids = as_ids(ids)
        if len(ids) == 0:
            return  # deleting an asset cascades to its vector; this covers direct removals
        with self._engine.begin() as connection:
            connection.execute(
                text("DELETE FROM vector_embeddings WHERE model = :m AND asset_id = ANY(:ids)"),
                {"m": self.model, "ids": ids.tolist()},
            )

    # --- search -------------------------------------------------------------------------------

    def search(
        self, query: NDArray[np.float32], k: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        if k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        conditions = asset_conditions(filters) if filters is not None and filters.active else []
        with self._engine.begin() as connection:
            exact = bool(conditions) and self._few_match(connection, conditions)
            if exact:
                rows = self._exact(connection, query, k, conditions)
            else:
                rows = self._approximate(connection, query, k, conditions)
        hits = [Hit(int(asset_id), 1.0 - float(distance)) for asset_id, distance in rows]
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits[:k]

    def _few_match(self, connection: Connection, conditions: list[Any]) -> bool:
        """Whether at most ``exact_below`` assets pass the filter (counting no further)."""
        bounded = select(Asset.id).where(*conditions).limit(self.exact_below + 1).subquery()
        count = connection.execute(select(func.count()).select_from(bounded)).scalar()
        return int(count or 0) <= self.exact_below

    def _select(self, dim: int, conditions: list[Any]) -> Any:
        """Each vector's float32 cosine distance to the query, among the rows allowed."""
        source: Any = _VECTORS
        if conditions:
            source = _VECTORS.join(Asset, _VECTORS.c.asset_id == Asset.id)
        return (
            select(_VECTORS.c.asset_id, _exact_distance().label("distance"))
            .select_from(source)
            .where(
                # Literal model and dimension: they must match the partial index's predicate
                # even in a generic plan (psycopg prepares statements it sees repeatedly).
                text(f"vector_embeddings.model = '{self.model}'"),
                text(f"vector_dims(vector_embeddings.embedding) = {dim}"),
                *conditions,
            )
        )

    def _approximate(
        self, connection: Connection, query: NDArray[np.float32], k: int, conditions: list[Any]
    ) -> list[Any]:
        dim = int(query.shape[0])
        self._ensure_index(dim)
        # The ORDER BY is the index's expression, so the planner walks the HNSW graph.
        ordering = literal_column(schema.vector_cast(dim, self.halfvec)).op(
            "<=>", return_type=Float()
        )(_query_param(dim, self.halfvec))
        want = k * HALFVEC_OVERSAMPLE if self.halfvec else k
        connection.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        ef = min(MAX_EF_SEARCH, max(self.ef_search, want))
        connection.execute(text(f"SET LOCAL hnsw.ef_search = {int(ef)}"))
        stmt = self._select(dim, conditions).order_by(ordering).limit(bindparam("limit"))
        params = {"limit": want, "q": vector_literal(query)}
        return list(connection.execute(stmt, params).all())

    def _exact(
        self, connection: Connection, query: NDArray[np.float32], k: int, conditions: list[Any]
    ) -> list[Any]:
        """Every matching row's distance, nearest first: the raw column (not the index's
        expression) in the ORDER BY keeps the planner off the HNSW index."""
        stmt = self._select(int(query.shape[0]), conditions)
        stmt = stmt.order_by(text("distance")).limit(bindparam("limit"))
        return list(connection.execute(stmt, {"limit": k, "q": vector_literal(query)}).all())

    # --- maintenance --------------------------------------------------------------------------

    def count(self) -> int:
        return self._counts()[1]

    def sync(self) -> SyncReport:
        """Copy the embeddings the table lacks from ``embeddings`` (binary COPY in chunks).

        A vector cannot outlive its embedding (the foreign key cascades), so nothing is pruned
        here; the ids present are read before the stored ones, so a vector committed by a worker
        in between is at worst copied again (an upsert of the same value), never missed."""
        self._ensure_schema()
        with self._sessions() as session:
            present = np.fromiter(
                session.execute(
                    text("SELECT asset_id FROM vector_embeddings WHERE model = :m"),
                    {"m": self.model},
                ).scalars(),
                dtype=np.int64,
            )
            stored = embeddings_repo.embedding_ids(session, self.model)
        missing = np.setdiff1d(stored, present)
        # Filling an empty store: build the index once over the loaded rows, about twice as
        # fast as inserting every row into the graph (100k x 512 here: 162 s against 340 s).
        index_after = len(present) == 0 and len(missing) > 0
        dim = None
        for start in range(0, len(missing), SYNC_CHUNK):
            chunk = [int(i) for i in missing[start : start + SYNC_CHUNK]]
            with self._sessions() as session:
                vectors = embeddings_repo.get_embeddings(session, self.model, chunk)
            if not vectors:
                continue
            ids = np.fromiter(vectors.keys(), dtype=np.int64, count=len(vectors))
            matrix = np.stack(list(vectors.values()))
            dim = int(matrix.shape[1])
            if not index_after:
                self._ensure_index(dim)
            with self._engine.begin() as connection:
                self._copy(connection, ids, matrix)
        if dim is not None:
            self._ensure_index(dim)
        return SyncReport(len(missing), 0, self.count())

    def _copy(self, connection: Connection, ids: NDArray[np.int64], vectors: NDArray[Any]) -> None:
        """Bulk load through a temporary table (COPY cannot upsert), so a vector written
        meanwhile by a worker is simply overwritten by the same value."""
        raw = connection.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE vf_vector_load (LIKE vector_embeddings INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
            with cursor.copy(
                "COPY vf_vector_load (model, asset_id, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(_binary_copy(self.model, ids, vectors))
            cursor.execute(
                "INSERT INTO vector_embeddings SELECT * FROM vf_vector_load "
                "WHERE EXISTS (SELECT 1 FROM embeddings e WHERE e.asset_id = "
                "vf_vector_load.asset_id AND e.model = vf_vector_load.model) "
                "ON CONFLICT (model, asset_id) DO UPDATE SET embedding = EXCLUDED.embedding"
            )

    def save(self) -> None:
        return

    def close(self) -> None:
        return


def _exact_distance() -> Any:
    return _VECTORS.c.embedding.op("<=>", return_type=Float())(_query_param())


def _version(text_version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text_version.split(".")[:2] if part.isdigit())


def _binary_copy(model: str, ids: NDArray[np.int64], vectors: NDArray[Any]) -> bytes:
    """PostgreSQL's binary COPY stream of (model text, asset_id int8, embedding vector) rows,
    built with numpy: formatting millions of floats as text would dominate a sync."""
    n, dim = vectors.shape
    name = model.encode()
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("model_len", ">i4"),
            ("model", f"S{len(name)}"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("vec_dim", ">u2"),
            ("vec_unused", ">u2"),
            ("vec", ">f4", (dim,)),
        ]
    )
    rows = np.zeros(n, dtype=row)
    rows["fields"] = 3
    rows["model_len"] = len(name)
    rows["model"] = name
    rows["id_len"] = 8
    rows["id"] = ids
    rows["vec_len"] = 4 + 4 * dim
    rows["vec_dim"] = dim
    rows["vec"] = vectors
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    return header + rows.tobytes() + b"\xff\xff"
