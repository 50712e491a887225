"""text read in images, and the objects found in them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 02:40:00

- ``assets.text``: what OCR read in the image (None: not read yet); ``assets.text_words``: the
  same as lower-case words between single spaces, for whole-word ``LIKE`` filters.
- ``asset_objects``: the COCO detector's objects above its threshold (label, score, box), with an
  index on (label, asset_id) for ``objects: ["dog"]`` filters.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("text_words", sa.Text(), nullable=True))
    op.create_table(
        "asset_objects",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("asset_id", BIG_ID, nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("x1", sa.Double(), nullable=False),
        sa.Column("y1", sa.Double(), nullable=False),
        sa.Column("x2", sa.Double(), nullable=False),
        sa.Column("y2", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_objects_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_objects")),
    )
    with op.batch_alter_table("asset_objects") as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_objects_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index("ix_asset_objects_label_asset", ["label", "asset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("asset_objects") as batch_op:
        batch_op.drop_index("ix_asset_objects_label_asset")
        batch_op.drop_index(batch_op.f("ix_asset_objects_asset_id"))
    op.drop_table("asset_objects")
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_column("text_words")
        batch_op.drop_column("text")
