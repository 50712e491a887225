"""processing pauses visible to every process

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 22:20:00

``processing_pauses``: one row per (task kind, worker) that cannot work because its model is not
available, with the reason and since when; the worker deletes it when it works again. The API
process reads it for ``GET /api/v1/status`` and ``GET /ready``, so a pause in a worker on another
machine (scale-out on PostgreSQL) is no longer only in that worker's log.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processing_pauses",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "worker", name=op.f("pk_processing_pauses")),
    )


def downgrade() -> None:
    op.drop_table("processing_pauses")
