"""face corrections that stick, and debounced jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 22:00:00

- ``face_rejections``: a user's "not this person" (``person_id``) or "not this group"
  (``cluster_id``) for one face; automatic matching and clustering never undo it. Rows go with
  their face or person.
- ``jobs.run_after``: a job is not claimed before it (a debounced job waits for a quiet moment).
- ``jobs.dedupe_key``: unique while set; a scheduled job (``faces_organize``) keeps its key while
  pending and loses it when claimed, so a burst of uploads gives one pending job.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "face_rejections",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("face_id", BIG_ID, nullable=False),
        sa.Column("person_id", BIG_ID, nullable=True),
        sa.Column("cluster_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"],
            ["faces.id"],
            name=op.f("fk_face_rejections_face_id_faces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_face_rejections_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_rejections")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("face_rejections") as batch_op:
        batch_op.create_index(
            "ix_face_rejections_face_person", ["face_id", "person_id"], unique=True
        )
        batch_op.create_index(
            "ix_face_rejections_face_cluster", ["face_id", "cluster_id"], unique=True
        )
        batch_op.create_index(
            batch_op.f("ix_face_rejections_person_id"), ["person_id"], unique=False
        )
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("run_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_jobs_dedupe_key"), ["dedupe_key"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_jobs_dedupe_key"), type_="unique")
        batch_op.drop_column("dedupe_key")
        batch_op.drop_column("run_after")
    with op.batch_alter_table("face_rejections") as batch_op:
        batch_op.drop_index(batch_op.f("ix_face_rejections_person_id"))
        batch_op.drop_index("ix_face_rejections_face_cluster")
        batch_op.drop_index("ix_face_rejections_face_person")
    op.drop_table("face_rejections")
