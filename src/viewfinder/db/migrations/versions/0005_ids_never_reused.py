"""ids never reused: SQLite tables with integer ids get AUTOINCREMENT

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 13:20:00

Without AUTOINCREMENT, SQLite gives the id of a deleted newest row to the next row, so a cached
``/api/v1/assets/{id}/file`` (served ``immutable``) showed another image, and a deleted
collection's classifier answered for the next collection. The tables are rebuilt with the
keyword (SQLite cannot add it in place); copying the rows sets ``sqlite_sequence`` to the
highest id, so ids already deleted above it are the only ones that can still come back once.
PostgreSQL's identity columns never reuse a value: nothing changes there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("assets", "persons", "faces", "face_heads", "collections")


def _rebuild(autoincrement: bool) -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    # Foreign keys are off during SQLite migrations (see viewfinder.db.migrate), so dropping
    # the old table does not cascade to the rows that point at it.
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
