"""scale out: pgvector table, durable job leases, referenced originals

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 08:00:00

- ``vector_embeddings`` (PostgreSQL with the ``vector`` extension available): see
  ``viewfinder.db.pgvector_schema``. On a server without pgvector nothing is created; the
  pgvector store creates it at start-up once the extension is installed.
- ``jobs.attempts`` and ``jobs.heartbeat_at``: long jobs are claimed by workers with a lease
  renewed while they run, so a job of a dead process is resumed or failed, never left running.
- ``assets.original_uri``: an original referenced where it already is (``s3://bucket/key``)
  instead of copied into the blob store.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from viewfinder.db import pgvector_schema

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("assets") as batch:
        batch.add_column(sa.Column("original_uri", sa.Text(), nullable=True))
        batch.create_index("ix_assets_original_uri", ["original_uri"])
    if op.get_context().dialect.name == "postgresql":
        op.execute(pgvector_schema.create_if_available_sql())


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP TABLE IF EXISTS {pgvector_schema.TABLE}")
    with op.batch_alter_table("assets") as batch:
        batch.drop_index("ix_assets_original_uri")
        batch.drop_column("original_uri")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("attempts")
