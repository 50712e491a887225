"""People: naming faces, and seed 001's dual-mode clustering.

Faces whose ``person_source`` is ``manual`` were named (or un-named) by a user: automatic runs
never change them. Dual mode matches every other clusterable face against the people's
prototypes (built from their manual faces) and assigns those above the threshold
(``person_source = auto``); the rest are clustered into ``unknown`` clusters whose ids stay stable
across runs. An active trained projection head, when training helped, maps embeddings into the
space where both happen."""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import faces as faces_repo
from viewfinder.db.models import Asset, Face, FaceHead, Person
from viewfinder.errors import ConflictError, InvalidInputError, NotFoundError
from viewfinder.faces.clustering import ClusterMethod, cluster_faces, stable_cluster_ids
from viewfinder.faces.matching import PersonPrototypes, match_faces
from viewfinder.faces.training import TrainedHead, train_and_evaluate

log = logging.getLogger(__name__)

MANUAL = "manual"
AUTO = "auto"
MAX_NAME = 200


@dataclass(frozen=True)
class DualReport:
    faces: int
    known_people: int
    assigned: int
    unknown_clusters: int
    clustered_faces: int
    noise_faces: int
    head_version: str | None


@dataclass(frozen=True)
class TrainReport:
    version: str
    kept: bool
    labelled_faces: int
    people: int
    train_faces: int
    heldout_faces: int
    auc_before: float
    auc_after: float
    gap_before: float
    gap_after: float


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME:
        raise InvalidInputError(f"a person's name must have 1 to {MAX_NAME} characters")
    if any(ord(c) < 32 for c in cleaned):
        raise InvalidInputError("a person's name may not contain control characters")
    return cleaned


class PeopleService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._head_lock = threading.Lock()
        self._head: TrainedHead | None = None
        self._head_version: str | None = None

    # --- people -------------------------------------------------------------------------------

    def create_person(self, name: str) -> Person:
        cleaned = clean_name(name)
        try:
            with self._sessions.begin() as s:
                person = Person(name=cleaned, name_key=name_key(cleaned))
                s.add(person)
                s.flush()
                return person
        except IntegrityError:
            raise ConflictError(f"a person named {cleaned!r} already exists") from None

    def person_by_name(self, s: Session, name: str, create: bool) -> Person | None:
        key = name_key(clean_name(name))
        person = s.scalars(select(Person).where(Person.name_key == key)).one_or_none()
        if person is None and create:
            person = Person(name=clean_name(name), name_key=key)
            s.add(person)
            s.flush()
        return person

    def list_persons(self, include_hidden: bool = True) -> list[tuple[Person, int]]:
        counts = select(Face.person_id, func.count().label("n")).group_by(Face.person_id).subquery()
        stmt = (
            select(Person, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.person_id == Person.id)
            .order_by(Person.id)
        )
        if not include_hidden:
            stmt = stmt.where(Person.hidden.is_(False))
        with self._sessions() as s:
            return [(p, int(n)) for p, n in s.execute(stmt)]

    def get_person(self, s: Session, person_id: int) -> Person:
        person = s.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"person {person_id} does not exist")
        return person

    def update_person(self, person_id: int, name: str | None, hidden: bool | None) -> Person:
        try:
            with self._sessions.begin() as s:
                person = self.get_person(s, person_id)
                if name is not None:
                    person.name = clean_name(name)
                    person.name_key = name_key(person.name)
                if hidden is not None:
                    person.hidden = hidden
                s.flush()
                return person
        except IntegrityError:
            raise ConflictError(f"a person named {name!r} already exists") from None

    def delete_person(self, person_id: int) -> None:
        with self._sessions.begin() as s:
            person = self.get_person(s, person_id)
            # Their faces become unknown again, as if never named.
            s.execute(
                update(Face)
                .where(Face.person_id == person_id)
                .values(person_id=None, person_source=None, match_score=None)
            )
            s.delete(person)

    def merge(self, source_id: int, target_id: int) -> Person:
        """Move every face of ``source`` to ``target`` and delete ``source``. Refused (409) when
        a photo holds faces of both: one photo cannot show the same person twice."""
        if source_id == target_id:
            raise InvalidInputError("a person cannot be merged into themselves")
        with self._sessions.begin() as s:
            self.get_person(s, source_id)
            target = self.get_person(s, target_id)
            shared = s.scalars(
                select(Face.asset_id)
                .where(Face.person_id.in_([source_id, target_id]))
                .group_by(Face.asset_id)
                .having(func.count(func.distinct(Face.person_id)) > 1)
            ).all()
            if shared:
                raise ConflictError(
                    f"photos {sorted(shared)[:10]} show both people; unassign one face first"
                )
            s.execute(update(Face).where(Face.person_id == source_id).values(person_id=target_id))
            s.delete(s.get(Person, source_id))
            return target

    def person_photos(self, person_id: int, limit: int, offset: int) -> list[Asset]:
        with self._sessions() as s:
            self.get_person(s, person_id)
            ids = select(Face.asset_id).where(Face.person_id == person_id).distinct()
            stmt = (
                select(Asset)
                .where(Asset.id.in_(ids))
                .order_by(Asset.id)
                .limit(limit)
                .offset(offset)
            )
            return list(s.scalars(stmt))

    # --- naming faces -------------------------------------------------------------------------

    def assign(self, face_id: int, person_id: int | None, name: str | None) -> Face:
        if (person_id is None) == (name is None):
            raise InvalidInputError("give exactly one of 'person_id' or 'name'")
        with self._sessions.begin() as s:
            face = self._face(s, face_id)
            person = (
                self.get_person(s, person_id)
                if person_id is not None
                else self.person_by_name(s, name or "", create=True)
            )
            assert person is not None
            self._check_photo(s, face, person.id)
            face.person_id, face.person_source, face.match_score = person.id, MANUAL, None
            face.cluster_id = None
            s.flush()
            return face

    def unassign(self, face_id: int) -> Face:
        """The face is nobody known; later automatic runs respect that."""
        with self._sessions.begin() as s:
            face = self._face(s, face_id)
            face.person_id, face.person_source, face.match_score = None, MANUAL, None
            s.flush()
            return face

    def label_cluster(self, cluster_id: str, name: str) -> tuple[Person, int, int]:
        """Name every face of an unknown cluster (reusing a person of that name, any case).
        Returns (person, faces labelled, faces skipped because their photo already shows the
        person)."""
        with self._sessions.begin() as s:
            faces = s.scalars(select(Face).where(Face.cluster_id == cluster_id)).all()
            if not faces:
                raise NotFoundError(f"cluster {cluster_id} does not exist")
            person = self.person_by_name(s, name, create=True)
            assert person is not None
            taken = set(s.scalars(select(Face.asset_id).where(Face.person_id == person.id)).all())
            labelled = skipped = 0
            for face in faces:
                if face.asset_id in taken and face.person_id != person.id:
                    skipped += 1
                    continue
                face.person_id, face.person_source, face.match_score = person.id, MANUAL, None
                face.cluster_id = None
                taken.add(face.asset_id)
                labelled += 1
            s.flush()
            return person, labelled, skipped

    def clusters(self) -> list[tuple[str, list[int]]]:
        """Unknown clusters (largest first) with their face ids."""
        with self._sessions() as s:
            rows = s.execute(
                select(Face.cluster_id, Face.id)
                .where(Face.cluster_id.is_not(None))
                .order_by(Face.cluster_id, Face.id)
            ).all()
        grouped: dict[str, list[int]] = {}
        for cluster_id, face_id in rows:
            grouped.setdefault(str(cluster_id), []).append(int(face_id))
        return sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))

    def _face(self, s: Session, face_id: int) -> Face:
        face = s.get(Face, face_id)
        if face is None:
            raise NotFoundError(f"face {face_id} does not exist")
        return face

    @staticmethod
    def _check_photo(s: Session, face: Face, person_id: int) -> None:
        other = s.scalars(
            select(Face.id).where(
                Face.asset_id == face.asset_id, Face.person_id == person_id, Face.id != face.id
            )
        ).first()
        if other is not None:
            raise ConflictError(
                f"face {other} of the same photo is already this person; one photo cannot show "
                "the same person twice"
            )

    # --- the embedding space ------------------------------------------------------------------

    def active_head(self) -> TrainedHead | None:
        with self._sessions() as s:
            row = s.scalars(select(FaceHead).where(FaceHead.active.is_(True))).first()
            if row is None:
                return None
            version, weights = row.version, row.weights
        with self._head_lock:
            if self._head_version != version:
                self._head, self._head_version = _head_from_bytes(weights), version
            return self._head

    def _space(self, vectors: NDArray[np.float32]) -> tuple[NDArray[np.float32], str | None]:
        head = self.active_head()
        if head is None or len(vectors) == 0 or head.in_dim != vectors.shape[1]:
            return vectors, None
        return head.apply(vectors), head.version

    # --- dual mode ----------------------------------------------------------------------------

    def cluster_dual(
        self,
        person_threshold: float,
        method: ClusterMethod,
        min_cluster_size: int,
        max_faces: int | None = None,
        cluster_unknown: bool = True,
    ) -> DualReport:
        with self._sessions() as s:
            ids, assets, raw = faces_repo.face_embeddings(s)
            rows = s.execute(
                select(
                    Face.id, Face.person_id, Face.person_source, Face.cluster_id, Face.clusterable
                ).order_by(Face.id)
            ).all()
        info = {int(r[0]): r for r in rows}
        vectors, head_version = self._space(raw)
        manual = np.array(
            [info[i][2] == MANUAL and info[i][1] is not None for i in ids.tolist()], dtype=bool
        )
        open_faces = np.array(
            [info[i][2] != MANUAL and bool(info[i][4]) for i in ids.tolist()], dtype=bool
        )
        candidates = np.flatnonzero(open_faces)
        if max_faces is not None:
            candidates = candidates[:max_faces]
        person_of_manual = np.array([info[i][1] for i in ids[manual].tolist()], dtype=np.int64)
        taken = {(int(a), int(p)) for a, p in zip(assets[manual], person_of_manual, strict=True)}
        matches: dict[int, tuple[int, float]] = {}
        people = len(set(person_of_manual.tolist()))
        if people and len(candidates):
            prototypes = PersonPrototypes.build(
                vectors[manual], [str(p) for p in person_of_manual.tolist()]
            )
            found = match_faces(
                vectors[candidates], prototypes, person_threshold, assets[candidates].tolist()
            )
            for row, match in zip(candidates.tolist(), found, strict=True):
                if (
                    match.person_id is not None
                    and (int(assets[row]), int(match.person_id)) not in taken
                ):
                    matches[int(ids[row])] = (int(match.person_id), match.similarity)
        unknown = [r for r in candidates.tolist() if int(ids[r]) not in matches]
        names: dict[int, str | None] = {}
        noise = 0
        if cluster_unknown and unknown:
            rows_u = np.asarray(unknown)
            labels = cluster_faces(
                vectors[rows_u], assets[rows_u].tolist(), method, min_cluster_size
            )
            previous = {
                int(ids[r]): str(info[int(ids[r])][3]) for r in unknown if info[int(ids[r])][3]
            }
            naming = stable_cluster_ids(labels, [int(ids[r]) for r in unknown], previous)
            for row, label in zip(unknown, labels.tolist(), strict=True):
                names[int(ids[row])] = naming.get(label) if label >= 0 else None
            noise = int((labels < 0).sum())
        with self._sessions.begin() as s:
            for row in candidates.tolist():
                face = s.get(Face, int(ids[row]))
                if face is None or face.person_source == MANUAL:
                    continue  # deleted or named by a user meanwhile
                if face.id in matches:
                    face.person_id, face.match_score = matches[face.id]
                    face.person_source, face.cluster_id = AUTO, None
                else:
                    face.person_id = face.person_source = face.match_score = None
                    if cluster_unknown:
                        face.cluster_id = names.get(face.id)
        clusters = {n for n in names.values() if n}
        report = DualReport(
            faces=len(ids),
            known_people=people,
            assigned=len(matches),
            unknown_clusters=len(clusters),
            clustered_faces=sum(1 for n in names.values() if n),
            noise_faces=noise,
            head_version=head_version,
        )
        log.info("dual-mode clustering: %s", asdict(report))
        return report

    # --- training -----------------------------------------------------------------------------

    def _training_set(
        self,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
        """The faces users named: ids, assets, embeddings, person ids. InvalidInputError when
        they cannot train a head (fewer than two people with two named faces each)."""
        with self._sessions() as s:
            rows = s.execute(
                select(Face.id, Face.person_id)
                .where(Face.person_source == MANUAL, Face.person_id.is_not(None))
                .order_by(Face.id)
            ).all()
            ids, assets, vectors = faces_repo.face_embeddings(s, [int(r[0]) for r in rows])
        person = {int(r[0]): int(r[1] or 0) for r in rows}
        labels = np.array([person[i] for i in ids.tolist()], dtype=np.int64)
        counts = np.unique(labels, return_counts=True)[1]
        if len(counts) < 2 or int((counts >= 2).sum()) < 2:
            raise InvalidInputError(
                "training needs at least two people with two or more labelled faces each; "
                "label more clusters first"
            )
        return ids, assets, vectors, labels

    def check_trainable(self) -> None:
        """Raise InvalidInputError now if ``train`` would: a queued run is refused up front
        instead of being accepted and failing in the background."""
        self._training_set()

    def train(self, epochs: int, margin: float, seed: int = 0) -> TrainReport:
        ids, assets, vectors, labels = self._training_set()
        counts = np.unique(labels, return_counts=True)[1]
        result = train_and_evaluate(
            vectors, labels, assets, epochs=epochs, margin=margin, seed=seed
        )
        head = result.head
        with self._sessions.begin() as s:
            if result.keep:
                s.execute(update(FaceHead).values(active=False))
            existing = s.scalars(select(FaceHead).where(FaceHead.version == head.version)).first()
            metrics: dict[str, Any] = {
                "auc_before": result.before.auc,
                "auc_after": result.after.auc,
                "gap_before": result.before.gap,
                "gap_after": result.after.gap,
                "epochs": epochs,
                "margin": margin,
            }
            if existing is None:
                s.add(
                    FaceHead(
                        version=head.version,
                        active=result.keep,
                        weights=_head_to_bytes(head),
                        metrics=metrics,
                    )
                )
            else:
                existing.active = existing.active or result.keep
        return TrainReport(
            version=head.version,
            kept=result.keep,
            labelled_faces=len(ids),
            people=len(counts),
            train_faces=result.train_faces,
            heldout_faces=result.heldout_faces,
            auc_before=result.before.auc,
            auc_after=result.after.auc,
            gap_before=result.before.gap,
            gap_after=result.after.gap,
        )

    # --- statistics ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._sessions() as s:
            total = int(s.scalar(select(func.count()).select_from(Face)) or 0)
            clusterable = int(
                s.scalar(select(func.count()).select_from(Face).where(Face.clusterable.is_(True)))
                or 0
            )
            by_source = dict(
                s.execute(
                    select(Face.person_source, func.count())
                    .where(Face.person_id.is_not(None))
                    .group_by(Face.person_source)
                ).all()
            )
            clusters = int(s.scalar(select(func.count(func.distinct(Face.cluster_id)))) or 0)
            in_clusters = int(
                s.scalar(select(func.count()).select_from(Face).where(Face.cluster_id.is_not(None)))
                or 0
            )
            people = int(s.scalar(select(func.count()).select_from(Person)) or 0)
        head = self.active_head()
        return {
            "faces": total,
            "clusterable_faces": clusterable,
            "assigned_manual": int(by_source.get(MANUAL, 0)),
            "assigned_auto": int(by_source.get(AUTO, 0)),
            "unknown_clusters": clusters,
            "faces_in_unknown_clusters": in_clusters,
            "people": people,
            "active_head": head.version if head else None,
        }


def _head_to_bytes(head: TrainedHead) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.safetensors"
        head.save(path)
        return path.read_bytes()


def _head_from_bytes(data: bytes) -> TrainedHead:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.safetensors"
        path.write_bytes(data)
        return TrainedHead.load(path)
