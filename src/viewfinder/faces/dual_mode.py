"""Seed 001's dual-mode clustering: faces matched to the people users named, the rest grouped.

Every clusterable face a user has not named is matched against the people's prototypes (built
from their named faces) and assigned above the threshold (``person_source = auto``); the others
are clustered into ``unknown`` clusters whose ids stay stable across runs. Faces named by a user
are never changed. Everything is computed in the active head's space when there is one."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
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
from viewfinder.faces.clustering import (
    DEFAULT_DISTANCE_THRESHOLD,
    ClusterMethod,
    attach_to_clusters,
    cluster_faces,
    stable_cluster_ids,
)
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
    # With more unknown faces than this, faces already in a cluster stay there and only the
    # others are attached to a cluster or grouped among themselves (None: always re-cluster all).
    incremental_above: int | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        person_threshold: float | None = None,
        method: str | None = None,
        min_cluster_size: int | None = None,
        max_faces: int | None = None,
        cluster_unknown: bool = True,
        incremental_above: int | None = None,
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
            incremental_above,
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
    """Match the open faces (not named by a user, clusterable) to the named people, cluster the
    rest, and write the outcome in one transaction. A user's corrections hold: named faces are
    never changed, a face is never given a person it was rejected for, nor put back in a cluster
    it was taken out of."""
    with sessions() as s:
        ids, assets, raw = faces_repo.face_embeddings(s)
        info = repo.face_states(s)
        rejected = repo.rejections(s)
    vectors, head_version = space(raw)
    states = [info[i] for i in ids.tolist()]
    manual = np.array(
        [f.person_source == MANUAL and f.person_id is not None for f in states], dtype=np.bool_
    )
    open_faces = np.array(
        [f.person_source != MANUAL and bool(f.clusterable) for f in states], dtype=np.bool_
    )
    candidates = np.flatnonzero(open_faces)
    if options.max_faces is not None:
        candidates = candidates[: options.max_faces]
    person_of_manual = np.array([info[i].person_id for i in ids[manual].tolist()], dtype=np.int64)
    taken = {(int(a), int(p)) for a, p in zip(assets[manual], person_of_manual, strict=True)}
    matches: dict[int, tuple[int, float]] = {}
    people = len(set(person_of_manual.tolist()))
    if people and len(candidates):
        prototypes = PersonPrototypes.build(
            vectors[manual], [str(p) for p in person_of_manual.tolist()]
        )
        excluded = {
            position: {str(p) for p in rejected.people[int(ids[row])]}
            for position, row in enumerate(candidates.tolist())
            if int(ids[row]) in rejected.people
        }
        found = match_faces(
            vectors[candidates],
            prototypes,
            options.person_threshold,
            assets[candidates].tolist(),
            excluded,
        )
        for row, match in zip(candidates.tolist(), found, strict=True):
            if (
                match.person_id is not None
                and (int(assets[row]), int(match.person_id)) not in taken
            ):
                matches[int(ids[row])] = (int(match.person_id), match.similarity)
    unknown = [r for r in candidates.tolist() if int(ids[r]) not in matches]
    names: dict[int, str | None] = {}
    if options.cluster_unknown and unknown:
        names = _cluster_unknown(vectors, ids, assets, unknown, info, rejected.clusters, options)
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
                if options.cluster_unknown:
                    face.cluster_id = names.get(face.id)
    clustered = [n for n in names.values() if n]
    report = DualReport(
        faces=len(ids),
        known_people=people,
        assigned=len(matches),
        unknown_clusters=len(set(clustered)),
        clustered_faces=len(clustered),
        noise_faces=len(names) - len(clustered) if options.cluster_unknown else 0,
        head_version=head_version,
    )
    log.info("dual-mode clustering: %s", asdict(report))
    return report


def _cluster_unknown(
    vectors: NDArray[np.float32],
    ids: NDArray[np.int64],
    assets: NDArray[np.int64],
    unknown: list[int],
    info: dict[int, repo.FaceState],
    kept_out: dict[int, set[str]],
    options: DualOptions,
) -> dict[int, str | None]:
    """Face id -> its unknown cluster (None: noise) for the rows ``unknown``.

    Up to ``options.incremental_above`` faces (or always, without it) everything is clustered
    again and the clusters keep their ids (``stable_cluster_ids``). Above it, faces already in
    a cluster stay there; each other face joins the cluster it is closest to when it is close
    enough to the members (``attach_to_clusters``), and the rest are clustered among
    themselves into new clusters. A face never lands in a cluster it was taken out of."""
    face_ids = [int(ids[r]) for r in unknown]
    previous = {i: str(info[i].cluster_id) for i in face_ids if info[i].cluster_id}
    limit = options.incremental_above
    if limit is None or len(unknown) <= limit:
        rows = np.asarray(unknown)
        labels = cluster_faces(
            vectors[rows], assets[rows].tolist(), options.method, options.min_cluster_size
        )
        naming = stable_cluster_ids(labels, face_ids, previous)
        names = {
            face: naming.get(label) if label >= 0 else None
            for face, label in zip(face_ids, labels.tolist(), strict=True)
        }
        return _keep_out(names, labels, face_ids, previous, kept_out)
    names = {face: previous.get(face) for face in face_ids}
    for face, cluster in names.items():
        if cluster is not None and cluster in kept_out.get(face, set()):
            names[face] = None
    row_of = dict(zip(face_ids, unknown, strict=True))
    loose = [face for face in face_ids if names[face] is None]
    members: dict[str, list[int]] = {}
    for face, cluster in names.items():
        if cluster is not None:
            members.setdefault(cluster, []).append(row_of[face])
    attached = attach_to_clusters(
        vectors,
        assets,
        {cluster: np.asarray(rows) for cluster, rows in members.items()},
        [row_of[face] for face in loose],
        DEFAULT_DISTANCE_THRESHOLD,
        {row_of[face]: kept_out.get(face, set()) for face in loose},
    )
    for row, cluster in attached.items():
        names[int(ids[row])] = cluster
    rest = [face for face in loose if names[face] is None][-limit:]
    if len(rest) >= max(2, options.min_cluster_size):
        rows = np.asarray([row_of[face] for face in rest])
        labels = cluster_faces(
            vectors[rows], assets[rows].tolist(), options.method, options.min_cluster_size
        )
        taken = {c for c in names.values() if c is not None}
        naming = stable_cluster_ids(labels, rest, {})
        for face, label in zip(rest, labels.tolist(), strict=True):
            cluster = naming.get(label) if label >= 0 else None
            if cluster is not None and cluster in taken:
                cluster = None  # a fresh id that clashes with a live one: leave for next run
            names[face] = cluster
    return names


def _keep_out(
    names: dict[int, str | None],
    labels: NDArray[np.int64],
    face_ids: list[int],
    previous: dict[int, str],
    kept_out: dict[int, set[str]],
) -> dict[int, str | None]:
    """Faces taken out of a cluster become noise when clustering put them back in it: in the
    cluster that now has its id, or in the cluster holding most of its former members."""
    if not kept_out:
        return names
    heirs: dict[int, Counter[str]] = defaultdict(Counter)
    for face, label in zip(face_ids, labels.tolist(), strict=True):
        if label >= 0 and face in previous:
            heirs[label][previous[face]] += 1
    for face, label in zip(face_ids, labels.tolist(), strict=True):
        refused = kept_out.get(face)
        if not refused or label < 0:
            continue
        heir = heirs[label].most_common(1)
        if names[face] in refused or (heir and heir[0][0] in refused):
            names[face] = None
    return names
