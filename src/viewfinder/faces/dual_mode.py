"""Seed 001's dual-mode clustering: faces matched to the people users named, the rest grouped.

Every clusterable face a user has not named is matched against the people's prototypes (built
from their named faces) and assigned above the threshold (``person_source = auto``); the others
are clustered into ``unknown`` clusters whose ids stay stable across runs. Faces named by a user
are never changed. Everything is computed in the active head's space when there is one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import get_args

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import faces as faces_repo
from viewfinder.db import people as repo
from viewfinder.db.people import AUTO, MANUAL
from viewfinder.errors import InvalidInputError
from viewfinder.faces.clustering import ClusterMethod, cluster_faces, stable_cluster_ids
from viewfinder.faces.matching import PersonPrototypes, match_faces
from viewfinder.settings import Settings

log = logging.getLogger(__name__)

Space = Callable[[NDArray[np.float32]], tuple[NDArray[np.float32], str | None]]


@dataclass(frozen=True)
class DualOptions:
    """One run's parameters; a job stores them as its params (``asdict``)."""

    person_threshold: float
    method: ClusterMethod
    min_cluster_size: int
    max_faces: int | None = None
    cluster_unknown: bool = True  # False: only match faces to known people ("assign")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        person_threshold: float | None = None,
        method: str | None = None,
        min_cluster_size: int | None = None,
        max_faces: int | None = None,
        cluster_unknown: bool = True,
    ) -> DualOptions:
        """What the request or command gave, the configured value for the rest."""
        chosen = method or settings.face_unknown_clustering_method
        if chosen not in get_args(ClusterMethod):
            raise InvalidInputError(
                f"unknown clustering method {chosen!r}; use one of {list(get_args(ClusterMethod))}"
            )
        return cls(
            settings.face_person_match_threshold if person_threshold is None else person_threshold,
            chosen,  # type: ignore[arg-type]  # checked against ClusterMethod above
            min_cluster_size or settings.face_unknown_min_cluster_size,
            max_faces,
            cluster_unknown,
        )


@dataclass(frozen=True)
class DualReport:
    faces: int
    known_people: int
    assigned: int
    unknown_clusters: int
    clustered_faces: int
    noise_faces: int
    head_version: str | None


def cluster_dual(sessions: sessionmaker[Session], space: Space, options: DualOptions) -> DualReport:
    person_threshold, method, min_cluster_size, max_faces, cluster_unknown = (
        options.person_threshold,
        options.method,
        options.min_cluster_size,
        options.max_faces,
        options.cluster_unknown,
    )
    with sessions() as s:
        ids, assets, raw = faces_repo.face_embeddings(s)
        info = repo.face_states(s)
    vectors, head_version = space(raw)
    states = [info[i] for i in ids.tolist()]
    manual = np.array(
        [f.person_source == MANUAL and f.person_id is not None for f in states], dtype=np.bool_
    )
    open_faces = np.array(
        [f.person_source != MANUAL and bool(f.clusterable) for f in states], dtype=np.bool_
    )
    candidates = np.flatnonzero(open_faces)
    if max_faces is not None:
        candidates = candidates[:max_faces]
    person_of_manual = np.array([info[i].person_id for i in ids[manual].tolist()], dtype=np.int64)
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
        labels = cluster_faces(vectors[rows_u], assets[rows_u].tolist(), method, min_cluster_size)
        unknown_ids = [int(ids[r]) for r in unknown]
        previous = {i: str(info[i].cluster_id) for i in unknown_ids if info[i].cluster_id}
        naming = stable_cluster_ids(labels, unknown_ids, previous)
        for row, label in zip(unknown, labels.tolist(), strict=True):
            names[int(ids[row])] = naming.get(label) if label >= 0 else None
        noise = int((labels < 0).sum())
    with sessions.begin() as s:
        for row in candidates.tolist():
            face = faces_repo.get_face(s, int(ids[row]))
            if face is None or face.person_source == MANUAL:
                continue  # deleted or named by a user meanwhile
            if face.id in matches:
                face.person_id, face.match_score = matches[face.id]
                face.person_source, face.cluster_id = AUTO, None
            else:
                face.person_id = face.person_source = face.match_score = None
                if cluster_unknown:
                    face.cluster_id = names.get(face.id)
    report = DualReport(
        faces=len(ids),
        known_people=people,
        assigned=len(matches),
        unknown_clusters=len({n for n in names.values() if n}),
        clustered_faces=sum(1 for n in names.values() if n),
        noise_faces=noise,
        head_version=head_version,
    )
    log.info("dual-mode clustering: %s", asdict(report))
    return report
