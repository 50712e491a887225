"""Supervised matching: faces to known people through per-person prototypes.

A person is represented by the centroid of their labelled faces plus up to K medoid-like
prototypes (real faces, one per k-means group of their faces), so a person seen with and
without glasses, young and old, is matched by the closest of those looks rather than by one
average that resembles none of them. A face's similarity to a person is its best cosine over
that person's prototypes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from viewfinder.faces.clustering import normalise_rows

DEFAULT_MAX_PROTOTYPES = 5
# FACE_PERSON_MATCH_THRESHOLD's documented default (seed 001).
DEFAULT_MATCH_THRESHOLD = 0.7


@dataclass(frozen=True)
class PersonMatch:
    """The person a face was assigned to (None: no one above the threshold) and the cosine
    similarity behind the decision (for None: the best similarity seen, for diagnostics)."""

    person_id: str | None
    similarity: float


@dataclass(frozen=True)
class PersonPrototypes:
    """Unit vectors (m, d) and, per vector, the index of its person in ``person_ids``."""

    person_ids: tuple[str, ...]
    vectors: NDArray[np.float32]
    owners: NDArray[np.int64]

    @classmethod
    def build(
        cls,
        embeddings: ArrayLike,
        person_ids: Sequence[str],
        max_prototypes: int = DEFAULT_MAX_PROTOTYPES,
        seed: int = 0,
    ) -> PersonPrototypes:
        """Prototypes from labelled faces: per person the centroid, plus up to
        ``max_prototypes`` medoids when the person has enough faces to tell looks apart."""
        vectors = normalise_rows(embeddings)
        if len(vectors) != len(person_ids):
            raise ValueError(f"{len(vectors)} embeddings but {len(person_ids)} person ids")
        by_person: dict[str, list[int]] = defaultdict(list)
        for index, person in enumerate(person_ids):
            by_person[person].append(index)
        names = tuple(sorted(by_person))
        rows: list[NDArray[np.float64]] = []
        owners: list[int] = []
        for owner, person in enumerate(names):
            faces = vectors[by_person[person]]
            for prototype in person_prototypes(faces, max_prototypes, seed):
                rows.append(prototype)
                owners.append(owner)
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        stacked = np.stack(rows) if rows else np.zeros((0, dim))
        return cls(names, stacked.astype(np.float32), np.asarray(owners, dtype=np.int64))

    def similarities(self, embeddings: ArrayLike) -> NDArray[np.float32]:
        """(n, persons): each face's best cosine over each person's prototypes."""
        queries = normalise_rows(embeddings).astype(np.float32)
        per_prototype = queries @ self.vectors.T
        result = np.full((len(queries), len(self.person_ids)), -np.inf, dtype=np.float32)
        for owner in range(len(self.person_ids)):
            columns = per_prototype[:, self.owners == owner]
            result[:, owner] = columns.max(axis=1)
        return result


def medoid(faces: NDArray[np.float64]) -> NDArray[np.float64]:
    """The member with the highest mean similarity to the others: a real, typical face."""
    return np.asarray(faces[int((faces @ faces.T).sum(axis=1).argmax())], dtype=np.float64)


def person_prototypes(
    faces: NDArray[np.float64], max_prototypes: int, seed: int
) -> list[NDArray[np.float64]]:
    """The normalised centroid, then one medoid per k-means group. Each group needs at least
    two faces, so a single odd photo cannot become a look of its own."""
    mean = faces.mean(axis=0)
    prototypes = [mean / max(float(np.linalg.norm(mean)), 1e-12)]
    distinct = len(np.unique(faces.round(6), axis=0))
    groups = min(max_prototypes, len(faces) // 2, distinct)
    if groups < 2:
        return prototypes
    from sklearn.cluster import KMeans

    assignment = KMeans(n_clusters=groups, n_init=4, random_state=seed).fit_predict(faces)
    for group in range(groups):
        members = faces[assignment == group]
        if len(members) > 0:
            prototypes.append(medoid(members))
    return prototypes


def match_faces(
    embeddings: ArrayLike,
    prototypes: PersonPrototypes,
    threshold: float = DEFAULT_MATCH_THRESHOLD,
    photo_ids: Sequence[Hashable] | None = None,
    excluded: Mapping[int, Collection[str]] | None = None,
) -> list[PersonMatch]:
    """Each face's person, or None below ``threshold``.

    ``excluded`` maps a face's index to people it must never be given (a user said "not this
    person"): for that face they do not exist.

    With ``photo_ids``, two faces of one photo are never given the same person: within a
    photo the (face, person) pairs above the threshold are taken best first, each face and
    each person at most once, so the better face keeps the person and the other face falls
    back to its next best person above the threshold, or to None.
    """
    scores = prototypes.similarities(embeddings)
    count = len(scores)
    if excluded:
        column = {person: owner for owner, person in enumerate(prototypes.person_ids)}
        for face, people in excluded.items():
            for person in people:
                if person in column and 0 <= face < count:
                    scores[face, column[person]] = -np.inf
    if photo_ids is not None and len(photo_ids) != count:
        raise ValueError(f"{count} embeddings but {len(photo_ids)} photo ids")
    best_seen = scores.max(axis=1) if scores.shape[1] else np.full(count, -1.0, dtype=np.float32)
    matches = [PersonMatch(None, float(best_seen[i])) for i in range(count)]
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for face in range(count):
        groups[photo_ids[face] if photo_ids is not None else ("face", face)].append(face)
    for faces in groups.values():
        candidates = sorted(
            (-float(scores[face, owner]), face, owner)
            for face in faces
            for owner in np.flatnonzero(scores[face] >= threshold).tolist()
        )
        taken_faces: set[int] = set()
        taken_people: set[int] = set()
        for negative_similarity, face, owner in candidates:
            if face in taken_faces or owner in taken_people:
                continue
            matches[face] = PersonMatch(prototypes.person_ids[owner], -negative_similarity)
            taken_faces.add(face)
            taken_people.add(owner)
    return matches
