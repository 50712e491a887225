"""Queries and commands over detected faces (callers own the transaction: flush, never commit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from viewfinder.db.models import Face, Person
from viewfinder.db.statements import IN_CHUNK
from viewfinder.db.vectors import decode_vectors, encode_vector
from viewfinder.models.types import BoxXYXY


@dataclass(frozen=True)
class NewFace:
    """A face as the indexer found it, before it has an id or a person."""

    box: BoxXYXY
    landmarks: tuple[tuple[float, float], ...]
    detection_score: float
    quality: float
    clusterable: bool
    embedding: NDArray[np.float32]
    thumbnail: bytes  # JPEG of the aligned face


def add_faces(s: Session, asset_id: int, faces: Sequence[NewFace]) -> list[Face]:
    """Insert the faces of one asset; flushes, so the returned rows have their ids."""
    rows = [
        Face(
            asset_id=asset_id,
            x1=float(face.box[0]),
            y1=float(face.box[1]),
            x2=float(face.box[2]),
            y2=float(face.box[3]),
            landmarks=[[float(x), float(y)] for x, y in face.landmarks],
            detection_score=float(face.detection_score),
            quality=float(face.quality),
            clusterable=face.clusterable,
            dim=int(face.embedding.shape[0]),
            embedding=encode_vector(face.embedding),
            thumbnail=face.thumbnail,
        )
        for face in faces
    ]
    s.add_all(rows)
    s.flush()
    return rows


def faces_of_asset(s: Session, asset_id: int) -> list[Face]:
    return list(s.scalars(select(Face).where(Face.asset_id == asset_id).order_by(Face.id)))


def named_faces_of_asset(s: Session, asset_id: int) -> list[tuple[Face, str | None]]:
    """The faces of one asset with the name of the person each is assigned to (None: nobody),
    by face id, in one query."""
    stmt = (
        select(Face, Person.name)
        .outerjoin(Person, Person.id == Face.person_id)
        .where(Face.asset_id == asset_id)
        .order_by(Face.id)
    )
    return [(face, name) for face, name in s.execute(stmt)]


def get_face(s: Session, face_id: int) -> Face | None:
    return s.get(Face, face_id)


def list_faces(
    s: Session,
    *,
    limit: int = 100,
    offset: int = 0,
    person_id: int | None = None,
    cluster_id: str | None = None,
    unassigned: bool | None = None,
) -> list[Face]:
    """Faces matching the filters, ordered by id. ``unassigned``: True for faces with no person,
    False for faces with one, None for both."""
    conditions = _face_filters(person_id, cluster_id, unassigned)
    stmt = select(Face).where(*conditions).order_by(Face.id).limit(limit).offset(offset)
    return list(s.scalars(stmt))


def count_faces(
    s: Session,
    *,
    person_id: int | None = None,
    cluster_id: str | None = None,
    unassigned: bool | None = None,
) -> int:
    conditions = _face_filters(person_id, cluster_id, unassigned)
    return int(s.scalar(select(func.count()).select_from(Face).where(*conditions)) or 0)


def face_embeddings(
    s: Session, ids: Sequence[int] | None = None, clusterable_only: bool = False
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
    """(face ids, their asset ids, (n, dim) unit embeddings), ordered by face id: every face, or
    those of ``ids`` that exist. Read as plain tuples (no ORM objects), so 100k faces stay cheap.

    Raises ``ValueError`` when the faces were embedded by recognisers of different sizes (the
    model was changed without re-processing)."""
    base = select(Face.id, Face.asset_id, Face.dim, Face.embedding)
    if clusterable_only:
        base = base.where(Face.clusterable.is_(True))
    rows: list[tuple[int, int, int, bytes]] = []
    if ids is None:
        rows.extend(s.execute(base.order_by(Face.id)).all())
    else:
        wanted = sorted({int(i) for i in ids})
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            rows.extend(s.execute(base.where(Face.id.in_(chunk)).order_by(Face.id)).all())
    face_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    asset_ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    dims = {r[2] for r in rows}
    if len(dims) > 1:
        raise ValueError(f"faces have embeddings of several sizes {sorted(dims)}: re-process them")
    dim = dims.pop() if dims else 0
    return face_ids, asset_ids, decode_vectors([r[3] for r in rows], dim)


def delete_faces_of_asset(s: Session, asset_id: int) -> int:
    """Delete an asset's faces; returns how many there were."""
    stmt = delete(Face).where(Face.asset_id == asset_id).returning(Face.id)
    return len(s.execute(stmt).all())


def _face_filters(
    person_id: int | None, cluster_id: str | None, unassigned: bool | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if person_id is not None:
        conditions.append(Face.person_id == person_id)
    if cluster_id is not None:
        conditions.append(Face.cluster_id == cluster_id)
    if unassigned is True:
        conditions.append(Face.person_id.is_(None))
    elif unassigned is False:
        conditions.append(Face.person_id.is_not(None))
    return conditions
