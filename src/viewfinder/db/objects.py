"""Queries and commands over the objects detected in assets (callers own the transaction)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from viewfinder.db.models import AssetObject
from viewfinder.models.types import LabeledDetection


def replace_objects(s: Session, asset_id: int, found: Sequence[LabeledDetection]) -> None:
    """The asset's objects become ``found``: processing an asset again never duplicates them."""
    s.execute(delete(AssetObject).where(AssetObject.asset_id == asset_id))
    if found:
        s.execute(
            insert(AssetObject),
            [
                {
                    "asset_id": asset_id,
                    "label": o.label,
                    "score": float(o.score),
                    "x1": float(o.box[0]),
                    "y1": float(o.box[1]),
                    "x2": float(o.box[2]),
                    "y2": float(o.box[3]),
                }
                for o in found
            ],
        )


def objects_of(s: Session, asset_id: int) -> list[AssetObject]:
    """One asset's objects, best first."""
    stmt = (
        select(AssetObject)
        .where(AssetObject.asset_id == asset_id)
        .order_by(AssetObject.score.desc(), AssetObject.id)
    )
    return list(s.scalars(stmt))


def label_counts(s: Session) -> list[tuple[str, int]]:
    """Each label found in the library with how many images have it, most images first."""
    images = func.count(func.distinct(AssetObject.asset_id))
    stmt = (
        select(AssetObject.label, images)
        .group_by(AssetObject.label)
        .order_by(images.desc(), AssetObject.label)
    )
    return [(str(label), int(count)) for label, count in s.execute(stmt)]
