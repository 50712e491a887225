"""Queries and commands over people, who they are in which faces, and the face-matching heads
(callers own the transaction: flush, never commit)."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from viewfinder.db.models import Asset, Face, FaceHead, FaceRejection, Person

MANUAL = "manual"  # a user named (or un-named) the face: automatic runs never change it
AUTO = "auto"  # matched by dual-mode clustering: recomputed by every run


# --- people ---------------------------------------------------------------------------------


def add_person(s: Session, name: str, key: str) -> Person:
    person = Person(name=name, name_key=key)
    s.add(person)
    s.flush()
    return person


def person_by_key(s: Session, key: str) -> Person | None:
    return s.scalars(select(Person).where(Person.name_key == key)).one_or_none()


def persons_with_face_counts(s: Session, include_hidden: bool) -> list[tuple[Person, int]]:
    counts = select(Face.person_id, func.count().label("n")).group_by(Face.person_id).subquery()
    stmt = (
        select(Person, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.person_id == Person.id)
        .order_by(Person.id)
    )
    if not include_hidden:
        stmt = stmt.where(Person.hidden.is_(False))
    return [(p, int(n)) for p, n in s.execute(stmt)]


class PersonSummary(NamedTuple):
    """A person, how many faces are theirs, and the face that shows them best (None: none)."""

    person: Person
    faces: int
    face_id: int | None


def representative_faces(s: Session, person_ids: list[int] | None = None) -> dict[int, int]:
    """Person id -> the face to show for them: a face a user named before an automatic match,
    then the best quality, then the lowest id."""
    ranked = (
        select(
            Face.person_id,
            Face.id,
            func.row_number()
            .over(
                partition_by=Face.person_id,
                order_by=(
                    case((Face.person_source == MANUAL, 0), else_=1),
                    Face.quality.desc(),
                    Face.id,
                ),
            )
            .label("rank"),
        )
        .where(Face.person_id.is_not(None))
        .subquery()
    )
    stmt = select(ranked.c.person_id, ranked.c.id).where(ranked.c.rank == 1)
    if person_ids is not None:
        stmt = stmt.where(ranked.c.person_id.in_(person_ids))
    return {int(person): int(face) for person, face in s.execute(stmt)}


def summaries(s: Session, include_hidden: bool) -> list[PersonSummary]:
    faces = representative_faces(s)
    return [
        PersonSummary(person, count, faces.get(person.id))
        for person, count in persons_with_face_counts(s, include_hidden)
    ]


def summary(s: Session, person: Person) -> PersonSummary:
    return PersonSummary(
        person, face_count(s, person.id), representative_faces(s, [person.id]).get(person.id)
    )


def face_count(s: Session, person_id: int) -> int:
    stmt = select(func.count()).select_from(Face).where(Face.person_id == person_id)
    return int(s.scalar(stmt) or 0)


def forget_person(s: Session, person: Person) -> None:
    """Delete a person; their faces become unknown again, as if never named."""
    s.execute(
        update(Face)
        .where(Face.person_id == person.id)
        .values(person_id=None, person_source=None, match_score=None)
    )
    s.delete(person)


def photos_showing_both(s: Session, first_id: int, second_id: int) -> list[int]:
    return sorted(
        s.scalars(
            select(Face.asset_id)
            .where(Face.person_id.in_([first_id, second_id]))
            .group_by(Face.asset_id)
            .having(func.count(func.distinct(Face.person_id)) > 1)
        )
    )


def move_faces(s: Session, source_id: int, target_id: int) -> None:
    """Every face of ``source`` becomes ``target``'s, and so do its "not this person" marks
    (a face that was not the source is not the merged person either)."""
    s.execute(update(Face).where(Face.person_id == source_id).values(person_id=target_id))
    already = select(FaceRejection.face_id).where(FaceRejection.person_id == target_id)
    s.execute(
        delete(FaceRejection).where(
            FaceRejection.person_id == source_id, FaceRejection.face_id.in_(already)
        )
    )
    s.execute(
        update(FaceRejection)
        .where(FaceRejection.person_id == source_id)
        .values(person_id=target_id)
    )


# --- corrections: "not this person", "not this group" ----------------------------------------


def reject_person(s: Session, face_id: int, person_id: int) -> bool:
    """Record that face ``face_id`` is not ``person_id``; False when it was recorded before."""
    return _add_rejection(s, face_id, person_id=person_id)


def reject_cluster(s: Session, face_id: int, cluster_id: str) -> bool:
    """Record that face ``face_id`` does not belong in unknown cluster ``cluster_id``."""
    return _add_rejection(s, face_id, cluster_id=cluster_id)


def _add_rejection(
    s: Session, face_id: int, person_id: int | None = None, cluster_id: str | None = None
) -> bool:
    existing = s.scalars(
        select(FaceRejection.id).where(
            FaceRejection.face_id == face_id,
            FaceRejection.person_id == person_id
            if person_id is not None
            else FaceRejection.cluster_id == cluster_id,
        )
    ).first()
    if existing is not None:
        return False
    s.add(FaceRejection(face_id=face_id, person_id=person_id, cluster_id=cluster_id))
    s.flush()
    return True


def forget_rejection(s: Session, face_id: int, person_id: int) -> None:
    """The user now says the face *is* ``person_id``: the older "not this person" goes."""
    s.execute(
        delete(FaceRejection).where(
            FaceRejection.face_id == face_id, FaceRejection.person_id == person_id
        )
    )


def cluster_rejections_to_person(s: Session, cluster_id: str, person_id: int) -> int:
    """A cluster was named ``person_id``: faces kept out of it are kept from that person too.
    Returns how many faces that concerns."""
    faces = set(
        s.scalars(select(FaceRejection.face_id).where(FaceRejection.cluster_id == cluster_id))
    )
    for face_id in sorted(faces):
        _add_rejection(s, face_id, person_id=person_id)
    return len(faces)


class Rejections(NamedTuple):
    people: dict[int, set[int]]  # face id -> people it is not
    clusters: dict[int, set[str]]  # face id -> unknown clusters it is kept out of


def rejections(s: Session) -> Rejections:
    people: dict[int, set[int]] = {}
    clusters: dict[int, set[str]] = {}
    rows = s.execute(
        select(FaceRejection.face_id, FaceRejection.person_id, FaceRejection.cluster_id)
    )
    for face_id, person_id, cluster_id in rows:
        if person_id is not None:
            people.setdefault(int(face_id), set()).add(int(person_id))
        if cluster_id is not None:
            clusters.setdefault(int(face_id), set()).add(str(cluster_id))
    return Rejections(people, clusters)


def rejected_people(s: Session, face_id: int) -> list[int]:
    """The people a user said this face is not."""
    stmt = (
        select(FaceRejection.person_id)
        .where(FaceRejection.face_id == face_id, FaceRejection.person_id.is_not(None))
        .order_by(FaceRejection.person_id)
    )
    return [int(p) for p in s.scalars(stmt) if p is not None]


def photos_of(s: Session, person_id: int, limit: int, offset: int) -> list[Asset]:
    ids = select(Face.asset_id).where(Face.person_id == person_id).distinct()
    stmt = select(Asset).where(Asset.id.in_(ids)).order_by(Asset.id).limit(limit).offset(offset)
    return list(s.scalars(stmt))


def photo_ids_of(s: Session, person_id: int) -> set[int]:
    return set(s.scalars(select(Face.asset_id).where(Face.person_id == person_id)))


def other_face_in_photo(s: Session, face: Face, person_id: int) -> int | None:
    """Another face of ``face``'s photo that already is ``person_id``, if any."""
    return s.scalars(
        select(Face.id).where(
            Face.asset_id == face.asset_id, Face.person_id == person_id, Face.id != face.id
        )
    ).first()


# --- faces as clustering sees them ------------------------------------------------------------


def faces_in_cluster(s: Session, cluster_id: str) -> list[Face]:
    return list(s.scalars(select(Face).where(Face.cluster_id == cluster_id)))


def cluster_members(s: Session) -> list[tuple[str, int, float]]:
    """(cluster id, face id, quality) of every face in an unknown cluster, by cluster then
    face."""
    rows = s.execute(
        select(Face.cluster_id, Face.id, Face.quality)
        .where(Face.cluster_id.is_not(None))
        .order_by(Face.cluster_id, Face.id)
    )
    return [(str(cluster_id), int(face_id), float(q)) for cluster_id, face_id, q in rows]


class FaceState(NamedTuple):
    person_id: int | None
    person_source: str | None
    cluster_id: str | None
    clusterable: bool


def face_states(s: Session) -> dict[int, FaceState]:
    """Face id -> who it is, how that was decided, its unknown cluster, for every face."""
    rows = s.execute(
        select(Face.id, Face.person_id, Face.person_source, Face.cluster_id, Face.clusterable)
    )
    return {int(row[0]): FaceState(*row[1:]) for row in rows}


def named_faces(s: Session) -> list[tuple[int, int]]:
    """(face id, person id) of every face a user named, by face id."""
    rows = s.execute(
        select(Face.id, Face.person_id)
        .where(Face.person_source == MANUAL, Face.person_id.is_not(None))
        .order_by(Face.id)
    )
    return [(int(face_id), int(person_id or 0)) for face_id, person_id in rows]


def face_counts(s: Session) -> dict[str, int]:
    """How many faces there are, by what is known of them, and how many people."""

    def count(*conditions: Any) -> int:
        return int(s.scalar(select(func.count()).select_from(Face).where(*conditions)) or 0)

    by_source = dict(
        s.execute(
            select(Face.person_source, func.count())
            .where(Face.person_id.is_not(None))
            .group_by(Face.person_source)
        ).all()
    )
    return {
        "faces": count(),
        "clusterable_faces": count(Face.clusterable.is_(True)),
        "assigned_manual": int(by_source.get(MANUAL, 0)),
        "assigned_auto": int(by_source.get(AUTO, 0)),
        "unknown_clusters": int(s.scalar(select(func.count(func.distinct(Face.cluster_id)))) or 0),
        "faces_in_unknown_clusters": count(Face.cluster_id.is_not(None)),
        "people": int(s.scalar(select(func.count()).select_from(Person)) or 0),
    }


# --- face-matching heads --------------------------------------------------------------------


def active_head(s: Session) -> tuple[str, bytes] | None:
    """(version, safetensors bytes) of the head in use, if any."""
    row = s.scalars(select(FaceHead).where(FaceHead.active.is_(True))).first()
    return None if row is None else (row.version, row.weights)


def save_head(
    s: Session, version: str, weights: bytes, metrics: dict[str, Any], activate: bool
) -> None:
    """Store a trained head (once per version); ``activate`` makes it the only active one."""
    if activate:
        s.execute(update(FaceHead).values(active=False))
    existing = s.scalars(select(FaceHead).where(FaceHead.version == version)).first()
    if existing is None:
        s.add(FaceHead(version=version, active=activate, weights=weights, metrics=metrics))
    else:
        existing.active = existing.active or activate
