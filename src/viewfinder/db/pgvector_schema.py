"""The pgvector part of the schema: the ``vector`` extension and the ``vector_embeddings`` table.

One row per (model, asset): the embedding as a pgvector ``vector`` of any dimension, beside the
float32 bytes in ``embeddings`` (the source of truth, which every backend has), and cascading
with them. The HNSW index needs a fixed dimension, which depends on the configured model, so it is
a partial expression index per (model, dimension) created by the store once it knows the
dimension (``hnsw_index_sql``), as Immich re-creates its index when the model changes.

Created by migration 0003 when the server offers the extension, and by the pgvector store at
start-up when it was installed later; every statement is idempotent."""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection

TABLE = "vector_embeddings"

# PL/pgSQL plans each statement when it first runs, so the table's ``vector`` column resolves
# after the CREATE EXTENSION before it.
_CREATE_IF_AVAILABLE = """
DO $$ BEGIN
IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE IF NOT EXISTS vector_embeddings (
        model VARCHAR(64) NOT NULL,
        asset_id BIGINT NOT NULL,
        embedding vector NOT NULL,
        CONSTRAINT pk_vector_embeddings PRIMARY KEY (model, asset_id),
        CONSTRAINT fk_vector_embeddings_embeddings FOREIGN KEY (asset_id, model)
            REFERENCES embeddings (asset_id, model) ON DELETE CASCADE
    );
    -- A 512-d vector (2 KB) would be TOASTed: kept out of line, every distance computed by a
    -- scan would fetch it from the TOAST table. PLAIN keeps it in the row (pgvector's advice).
    ALTER TABLE vector_embeddings ALTER COLUMN embedding SET STORAGE PLAIN;
END IF;
END $$
"""
_SAFE_NAME = re.compile(r"^[a-z0-9_]{1,40}$")


def create_if_available_sql() -> str:
    """One statement creating the extension and the table when the server offers pgvector, and
    doing nothing otherwise; plain SQL, so an offline migration script can carry it too."""
    return _CREATE_IF_AVAILABLE


def schema_present(connection: Connection) -> bool:
    found = connection.execute(text("SELECT to_regclass(:t)"), {"t": TABLE}).scalar()
    return found is not None


def ensure(connection: Connection) -> bool:
    """Create what is missing when the server offers pgvector; whether the table exists now."""
    connection.execute(text(create_if_available_sql()))
    return schema_present(connection)


def hnsw_index_name(model: str, dim: int, halfvec: bool) -> str:
    kind = "half" if halfvec else "full"
    name = f"ix_{TABLE}_hnsw_{model}_{dim}_{kind}"
    if not _SAFE_NAME.match(f"{model}_{dim}_{kind}"):
        raise ValueError(f"unsafe model name for an index: {model!r}")
    return name


def vector_cast(dim: int, halfvec: bool) -> str:
    """The expression the index is built on, and that a query must order by to use it."""
    return f"(embedding::{'halfvec' if halfvec else 'vector'}({int(dim)}))"


def hnsw_index_sql(model: str, dim: int, halfvec: bool, m: int = 16, ef: int = 64) -> str:
    ops = "halfvec_cosine_ops" if halfvec else "vector_cosine_ops"
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(model, dim, halfvec)} ON {TABLE} "
        f"USING hnsw ({vector_cast(dim, halfvec)} {ops}) WITH (m = {int(m)}, "
        f"ef_construction = {int(ef)}) "
        f"WHERE model = '{model}' AND vector_dims(embedding) = {int(dim)}"
    )
