"""People: creating, renaming, merging and deleting them, and naming faces.

Faces whose ``person_source`` is ``manual`` were named (or un-named) by a user: automatic runs
(``dual_mode``) never change them, never give a face a person it was rejected for, and never put
it back in a cluster it was taken out of. Every correction schedules the debounced organise job
(``organize``) in its own transaction, so the other faces follow. The trained face-matching
head lives in ``heads``."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import faces as faces_repo
from viewfinder.db import people as repo
from viewfinder.db.models import Asset, Face, Job, Person
from viewfinder.db.people import MANUAL, PersonSummary
from viewfinder.errors import ConflictError, InvalidInputError, NotFoundError
from viewfinder.faces.dual_mode import DualOptions, DualReport, cluster_dual
from viewfinder.faces.heads import FaceHeads, TrainReport
from viewfinder.faces.organize import OrganizePolicy
from viewfinder.settings import Settings

MAX_NAME = 200


class ClusterSummary(NamedTuple):
    cluster_id: str
    face_ids: list[int]
    face_id: int  # the face to show for the cluster


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
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._organizing = OrganizePolicy.from_settings(settings)
        self.heads = FaceHeads(sessions)

    # --- people -------------------------------------------------------------------------------

    def create_person(self, name: str) -> Person:
        cleaned = clean_name(name)
        try:
            with self._sessions.begin() as s:
                return repo.add_person(s, cleaned, name_key(cleaned))
        except IntegrityError:
            raise ConflictError(f"a person named {cleaned!r} already exists") from None

    def person_by_name(self, s: Session, name: str, create: bool) -> Person | None:
        cleaned = clean_name(name)
        person = repo.person_by_key(s, name_key(cleaned))
        if person is None and create:
            person = repo.add_person(s, cleaned, name_key(cleaned))
        return person

    def list_persons(self, include_hidden: bool = True) -> list[PersonSummary]:
        """Every person (hidden ones on request) with their face count and the face to show."""
        with self._sessions() as s:
            return repo.summaries(s, include_hidden)

    def person(self, person_id: int) -> PersonSummary:
        """A person, how many faces are theirs, and the face to show for them."""
        with self._sessions() as s:
            return repo.summary(s, self.get_person(s, person_id))

    def get_person(self, s: Session, person_id: int) -> Person:
        person = s.get(Person, person_id)
        if person is None:
            raise NotFoundError(f"person {person_id} does not exist")
        return person

    def update_person(self, person_id: int, name: str | None, hidden: bool | None) -> PersonSummary:
        """Rename and/or hide; the person and their face count."""
        try:
            with self._sessions.begin() as s:
                person = self.get_person(s, person_id)
                if name is not None:
                    person.name = clean_name(name)
                    person.name_key = name_key(person.name)
                if hidden is not None:
                    person.hidden = hidden
                s.flush()
                return repo.summary(s, person)
        except IntegrityError:
            raise ConflictError(f"a person named {name!r} already exists") from None

    def delete_person(self, person_id: int) -> None:
        with self._sessions.begin() as s:
            repo.forget_person(s, self.get_person(s, person_id))
            self._organizing.schedule(s)

    def merge(self, source_id: int, target_id: int) -> PersonSummary:
        """Move every face of ``source`` to ``target`` and delete ``source``. Refused (409) when
        a photo holds faces of both: one photo cannot show the same person twice."""
        if source_id == target_id:
            raise InvalidInputError("a person cannot be merged into themselves")
        with self._sessions.begin() as s:
            source = self.get_person(s, source_id)
            target = self.get_person(s, target_id)
            shared = repo.photos_showing_both(s, source_id, target_id)
            if shared:
                raise ConflictError(
                    f"photos {shared[:10]} show both people; unassign one face first"
                )
            repo.move_faces(s, source_id, target_id)
            s.delete(source)
            s.flush()
            self._organizing.schedule(s)
            return repo.summary(s, target)

    def person_photos(self, person_id: int, limit: int, offset: int) -> list[Asset]:
        with self._sessions() as s:
            self.get_person(s, person_id)
            return repo.photos_of(s, person_id, limit, offset)

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
            other = repo.other_face_in_photo(s, face, person.id)
            if other is not None:
                raise ConflictError(
                    f"face {other} of the same photo is already this person; one photo cannot "
                    "show the same person twice"
                )
            face.person_id, face.person_source, face.match_score = person.id, MANUAL, None
            face.cluster_id = None
            repo.forget_rejection(s, face.id, person.id)  # the user now says it is them
            s.flush()
            self._organizing.schedule(s)
            return face

    def unassign(self, face_id: int) -> Face:
        """The face is nobody known; later automatic runs respect that."""
        with self._sessions.begin() as s:
            face = self._face(s, face_id)
            face.person_id, face.person_source, face.match_score = None, MANUAL, None
            face.cluster_id = None
            s.flush()
            self._organizing.schedule(s)
            return face

    def reject(self, face_id: int, person_id: int) -> Face:
        """ "Not this person": the face loses ``person_id`` if it had it (and is open to
        automatic matching and clustering again), and no automatic run ever gives it that person
        again. Assigning it to that person by hand later lifts the rejection."""
        with self._sessions.begin() as s:
            face = self._face(s, face_id)
            self.get_person(s, person_id)
            repo.reject_person(s, face.id, person_id)
            if face.person_id == person_id:
                face.person_id = face.person_source = face.match_score = None
            s.flush()
            self._organizing.schedule(s)
            return face

    def remove_from_cluster(self, cluster_id: str, face_id: int) -> Face:
        """Take a face out of an unknown cluster; no automatic run puts it back there (nor
        gives it the person the cluster is later named as)."""
        with self._sessions.begin() as s:
            face = self._face(s, face_id)
            if face.cluster_id != cluster_id:
                raise NotFoundError(f"face {face_id} is not in cluster {cluster_id}")
            repo.reject_cluster(s, face.id, cluster_id)
            face.cluster_id = None
            s.flush()
            self._organizing.schedule(s)
            return face

    def label_cluster(self, cluster_id: str, name: str) -> tuple[Person, int, int]:
        """Name every face of an unknown cluster (reusing a person of that name, any case).
        Returns (person, faces labelled, faces skipped because their photo already shows the
        person)."""
        with self._sessions.begin() as s:
            faces = repo.faces_in_cluster(s, cluster_id)
            if not faces:
                raise NotFoundError(f"cluster {cluster_id} does not exist")
            person = self.person_by_name(s, name, create=True)
            assert person is not None
            taken = repo.photo_ids_of(s, person.id)
            labelled = skipped = 0
            for face in faces:
                if face.asset_id in taken and face.person_id != person.id:
                    skipped += 1
                    continue
                face.person_id, face.person_source, face.match_score = person.id, MANUAL, None
                face.cluster_id = None
                taken.add(face.asset_id)
                labelled += 1
            repo.cluster_rejections_to_person(s, cluster_id, person.id)
            s.flush()
            self._organizing.schedule(s)
            return person, labelled, skipped

    def clusters(self) -> list[ClusterSummary]:
        """Unknown clusters (largest first) with their face ids (ascending) and the face that
        shows them best (the highest quality)."""
        with self._sessions() as s:
            rows = repo.cluster_members(s)
        grouped: dict[str, list[int]] = {}
        best: dict[str, tuple[float, int]] = {}
        for cluster_id, face_id, quality in rows:
            grouped.setdefault(cluster_id, []).append(face_id)
            if cluster_id not in best or (-quality, face_id) < (
                -best[cluster_id][0],
                best[cluster_id][1],
            ):
                best[cluster_id] = (quality, face_id)
        ordered = sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))
        return [ClusterSummary(c, faces, best[c][1]) for c, faces in ordered]

    # --- faces --------------------------------------------------------------------------------

    def faces(
        self,
        limit: int,
        offset: int,
        person_id: int | None = None,
        cluster_id: str | None = None,
        unassigned: bool | None = None,
    ) -> tuple[list[Face], int]:
        """A page of faces matching the filters, and how many match in all."""
        with self._sessions() as s:
            page = faces_repo.list_faces(
                s,
                limit=limit,
                offset=offset,
                person_id=person_id,
                cluster_id=cluster_id,
                unassigned=unassigned,
            )
            total = faces_repo.count_faces(
                s, person_id=person_id, cluster_id=cluster_id, unassigned=unassigned
            )
            return page, total

    def face(self, face_id: int) -> Face:
        with self._sessions() as s:
            return self._face(s, face_id)

    def faces_of_asset(self, asset_id: int) -> list[Face]:
        with self._sessions() as s:
            if assets_repo.get_asset(s, asset_id) is None:
                raise NotFoundError(f"asset {asset_id} does not exist")
            return faces_repo.faces_of_asset(s, asset_id)

    def _face(self, s: Session, face_id: int) -> Face:
        face = faces_repo.get_face(s, face_id)
        if face is None:
            raise NotFoundError(f"face {face_id} does not exist")
        return face

    # --- automatic runs -----------------------------------------------------------------------

    def cluster_dual(self, options: DualOptions) -> DualReport:
        return cluster_dual(self._sessions, self.heads.space, options)

    def organize(self) -> DualReport:
        """Match every open face to the named people and group the rest, with the configured
        parameters (``FACE_*``): what the background ``faces_organize`` job runs, and what
        ``viewfinder index`` runs after detecting faces. Incremental above
        ``VIEWFINDER_FACE_ORGANIZE_FULL_LIMIT`` unknown faces."""
        options = DualOptions.from_settings(
            self._settings, incremental_above=self._settings.face_organize_full_limit
        )
        return self.cluster_dual(options)

    def organize_soon(self) -> Job:
        """Queue an organise run now, with no delay (``POST /api/v1/faces/organize`` with
        ``queue``); it takes the place of a pending debounced one, so there is still one."""
        with self._sessions.begin() as s:
            return self._organizing.schedule_now(s)

    def schedule_organize(self) -> None:
        """Schedule (or put off) the debounced organise job, if automatic organising is on."""
        with self._sessions.begin() as s:
            self._organizing.schedule(s)

    def check_trainable(self) -> None:
        self.heads.check_trainable()

    def train(self, epochs: int, margin: float, seed: int = 0) -> TrainReport:
        return self.heads.train(epochs, margin, seed)

    def stats(self) -> dict[str, Any]:
        with self._sessions() as s:
            counts: dict[str, Any] = repo.face_counts(s)
        head = self.heads.active()
        return {**counts, "active_head": head.version if head else None}
