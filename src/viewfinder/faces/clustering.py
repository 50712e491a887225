"""Unsupervised grouping of face embeddings, under the rule that one photo shows a person once.

``cluster_faces`` runs HDBSCAN, DBSCAN or average-linkage agglomerative clustering on cosine
distance, then enforces the same-photo constraint: two faces of one photo never share a
cluster (a person does not appear twice in a photo; mirrors and posters are rare enough that
a wrong split costs less than a wrong merge).

``stable_cluster_ids`` gives clusters names that survive re-clustering, so labels and links a
user attached to ``clu_...`` keep pointing at the same group of faces.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

ClusterMethod = Literal["hdbscan", "dbscan", "agglomerative"]
NOISE = -1
# Cosine distance (1 - similarity) under which DBSCAN neighbours / agglomerative merges happen.
# MobileFaceNet on the ../shared face photos: same person similarity >= 0.51 (mean 0.77),
# different people <= 0.48 (mean 0.02); 0.5 sits in that gap. SFace's published same-person
# cosine threshold is 0.363, i.e. a distance of about 0.64.
DEFAULT_DISTANCE_THRESHOLD = 0.5
# Two clusters merge when their members are this far apart on average (cosine distance), a
# little looser than the pairwise threshold: an average over many pairs is steadier than one
# pair. Tuned on surrogate 10 x 10 sets built from ../shared's faces (benchmarks/faces.py,
# seeds 100-111): 0.55 kept BCubed precision at 1.0 on every set and raised recall from 0.89
# (0.5) to 0.95; 0.6 merged two people in one set (precision 0.91). Different people's whole
# clusters averaged at most 0.40 similarity (distance 0.60) on the real photos.
DEFAULT_MERGE_DISTANCE = 0.55

FaceId = TypeVar("FaceId", int, str)


def normalise_rows(vectors: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.asarray(array / np.maximum(norms, 1e-12), dtype=np.float64)


def cosine_distance_matrix(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pairwise 1 - cosine similarity of unit rows, exactly symmetric with a zero diagonal
    (HDBSCAN's and DBSCAN's precomputed metrics need both)."""
    distances = 1.0 - vectors @ vectors.T
    distances = np.clip((distances + distances.T) / 2.0, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    return distances


def raw_labels(
    distances: NDArray[np.float64],
    method: ClusterMethod,
    min_cluster_size: int,
    distance_threshold: float,
    min_samples: int | None,
) -> NDArray[np.int64]:
    """The chosen algorithm's labels, -1 for noise, before any constraint."""
    from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering

    if method == "hdbscan":
        model = HDBSCAN(
            min_cluster_size=max(2, min_cluster_size),
            min_samples=min_samples,
            metric="precomputed",
            copy=True,
        )
        return np.asarray(model.fit_predict(distances), dtype=np.int64)
    if method == "dbscan":
        model = DBSCAN(
            eps=distance_threshold,
            min_samples=min_samples or min_cluster_size,
            metric="precomputed",
        )
        return np.asarray(model.fit_predict(distances), dtype=np.int64)
    if method == "agglomerative":
        # Average linkage: a merge needs the two groups to be close on average, which resists
        # the chaining (A~B~C, A far from C) that single linkage suffers on faces.
        model = AgglomerativeClustering(
            n_clusters=None,
            metric="precomputed",
            linkage="average",
            distance_threshold=distance_threshold,
        )
        return np.asarray(model.fit_predict(distances), dtype=np.int64)
    raise ValueError(f"unknown clustering method {method!r}")


def cap_cluster_spread(
    distances: NDArray[np.float64], labels: NDArray[np.int64], max_distance: float
) -> NDArray[np.int64]:
    """Cut each cluster by average linkage at ``max_distance``; the parts get new labels.

    Density-based methods have no absolute limit: HDBSCAN happily groups two strangers who are
    each other's nearest faces when a library holds few photos of each (on the ../shared
    faces, min_cluster_size=3, it merged different people: BCubed precision 0.77; with this cut,
    1.0), and DBSCAN chains A~B~C. The cut keeps what density found but forbids members that
    are farther apart on average than the threshold the other methods use.
    """
    from sklearn.cluster import AgglomerativeClustering

    result = labels.copy()
    next_label = int(labels.max(initial=NOISE)) + 1
    for cluster in sorted(set(labels.tolist()) - {NOISE}):
        members = np.flatnonzero(labels == cluster)
        if len(members) < 2:
            continue
        parts = AgglomerativeClustering(
            n_clusters=None,
            metric="precomputed",
            linkage="average",
            distance_threshold=max_distance,
        ).fit_predict(distances[np.ix_(members, members)])
        for part in sorted(set(parts.tolist()) - {int(parts[0])}):
            result[members[parts == part]] = next_label
            next_label += 1
    return result


def _centroid(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    mean = vectors.mean(axis=0)
    return np.asarray(mean / max(float(np.linalg.norm(mean)), 1e-12), dtype=np.float64)


def enforce_one_face_per_photo(
    vectors: NDArray[np.float64],
    photo_ids: NDArray[np.object_],
    labels: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Split clusters holding several faces of one photo.

    For each such photo the member most similar to the cluster centroid stays; the centroid is
    computed from the members whose photo is in the cluster only once (they are unambiguous),
    or from all members if there are none. Keeping the most typical face is the best guess at
    which of the photo's faces is the person the cluster is about; the others were most likely
    pulled in by chaining through look-alikes.

    Each evicted face then moves to its next best cluster: the one whose centroid it is most
    similar to, among clusters without a face of its photo, and only if it is at least as
    similar to that centroid as that cluster's own least typical member (so a move never
    loosens a cluster). Otherwise it becomes noise.
    """
    labels = labels.copy()
    clusters = sorted(set(labels.tolist()) - {NOISE})
    centroids: dict[int, NDArray[np.float64]] = {}
    admission: dict[int, float] = {}
    photos_in: dict[int, set[Hashable]] = {}
    evicted: list[int] = []
    for cluster in clusters:
        members = np.flatnonzero(labels == cluster)
        counts = Counter(photo_ids[members].tolist())
        unambiguous = [m for m in members if counts[photo_ids[m]] == 1]
        centroid = _centroid(vectors[unambiguous] if unambiguous else vectors[members])
        similarity = vectors[members] @ centroid
        best_of_photo: dict[Hashable, int] = {}
        for member, sim in sorted(zip(members.tolist(), similarity.tolist(), strict=True)):
            photo = photo_ids[member]
            kept = best_of_photo.get(photo)
            if kept is None:
                best_of_photo[photo] = member
            elif sim > float(vectors[kept] @ centroid):
                evicted.append(kept)
                best_of_photo[photo] = member
            else:
                evicted.append(member)
        kept_members = sorted(best_of_photo.values())
        centroids[cluster] = centroid
        admission[cluster] = float((vectors[kept_members] @ centroid).min())
        photos_in[cluster] = set(best_of_photo)
    for face in evicted:
        labels[face] = NOISE
    # Place the most confident moves first, so contested slots go to the closest face.
    moves: list[tuple[float, int, int]] = []
    for face in evicted:
        for cluster in clusters:
            closeness = float(vectors[face] @ centroids[cluster])
            if closeness >= admission[cluster]:
                moves.append((-closeness, face, cluster))
    for _, face, cluster in sorted(moves):
        if labels[face] == NOISE and photo_ids[face] not in photos_in[cluster]:
            labels[face] = cluster
            photos_in[cluster].add(photo_ids[face])
    return labels


K = TypeVar("K", bound=Hashable)


def attach_to_clusters(
    vectors: NDArray[np.floating],
    photo_ids: Sequence[Hashable] | NDArray[np.generic],
    clusters: Mapping[K, NDArray[np.int64]],
    loose: Sequence[int],
    max_distance: float,
    kept_out: Mapping[int, Collection[K]] | None = None,
) -> dict[int, K]:
    """Loose faces (rows of ``vectors``) that join a cluster: row -> cluster key.

    A face may join a cluster when its average cosine distance to the cluster's members is
    within ``max_distance`` (the average-linkage rule the clustering itself obeys, so a join
    never loosens a cluster past it), the cluster holds no face of its photo, and it was not
    taken out of that cluster (``kept_out``). Joins are made closest first; the members are the
    cluster's faces before any join, so the result does not depend on the order of ``loose``.
    The average similarity to a cluster is the face's dot product with the sum of the
    members over their count: linear in the faces, not quadratic."""
    keys = [key for key in clusters if len(clusters[key])]
    if not keys or not len(loose):
        return {}
    unit = normalise_rows(vectors)
    sums = np.stack([unit[clusters[key]].sum(axis=0) for key in keys])
    sizes = np.asarray([len(clusters[key]) for key in keys], dtype=np.float64)
    rows = np.asarray(loose, dtype=np.int64)
    distance = 1.0 - (unit[rows] @ sums.T) / sizes  # (loose, clusters)
    photos_in = [{photo_ids[m] for m in clusters[key].tolist()} for key in keys]
    near_rows, near_clusters = np.nonzero(distance <= max_distance)
    proposals = sorted(
        zip(
            distance[near_rows, near_clusters].tolist(),
            rows[near_rows].tolist(),
            near_clusters.tolist(),
            strict=True,
        )
    )
    joined: dict[int, K] = {}
    for _, row, index in proposals:
        key = keys[index]
        if row in joined or photo_ids[row] in photos_in[index]:
            continue
        if kept_out is not None and key in kept_out.get(row, ()):
            continue
        joined[row] = key
        photos_in[index].add(photo_ids[row])
    return joined


def merge_close_clusters(
    vectors: NDArray[np.float64],
    photo_ids: NDArray[np.object_],
    labels: NDArray[np.int64],
    max_distance: float,
) -> NDArray[np.int64]:
    """Merge clusters whose average linkage (mean cosine distance between their members) is
    within ``max_distance`` and that share no photo, closest pair first, until none is left:
    density methods split one person's looks into several clusters that average linkage,
    the rule the other steps obey, would have kept together."""
    labels = labels.copy()
    keys = sorted(set(labels.tolist()) - {NOISE})
    if len(keys) < 2:
        return labels
    sums = {k: vectors[labels == k].sum(axis=0) for k in keys}
    sizes = {k: int((labels == k).sum()) for k in keys}
    photos = {k: set(photo_ids[labels == k].tolist()) for k in keys}
    while len(keys) > 1:
        matrix = np.stack([sums[k] for k in keys])
        counts = np.asarray([sizes[k] for k in keys], dtype=np.float64)
        distance = 1.0 - (matrix @ matrix.T) / np.outer(counts, counts)
        np.fill_diagonal(distance, np.inf)
        best: tuple[float, int, int] | None = None
        for i, j in zip(*np.nonzero(distance <= max_distance), strict=True):
            if i < j and not (photos[keys[i]] & photos[keys[j]]):
                candidate = (float(distance[i, j]), int(i), int(j))
                if best is None or candidate < best:
                    best = candidate
        if best is None:
            break
        _, i, j = best
        keep, gone = keys[i], keys[j]
        labels[labels == gone] = keep
        sums[keep] = sums[keep] + sums.pop(gone)
        sizes[keep] += sizes.pop(gone)
        photos[keep] |= photos.pop(gone)
        keys.remove(gone)
    return labels


def refine_clusters(
    vectors: NDArray[np.float64],
    distances: NDArray[np.float64],
    photo_ids: NDArray[np.object_],
    labels: NDArray[np.int64],
    max_distance: float,
    merge_distance: float = DEFAULT_MERGE_DISTANCE,
) -> NDArray[np.int64]:
    """Win back the recall density clustering leaves on the table, under one strict rule (the
    average cosine distance within a group stays within ``max_distance``) and the
    one-face-per-photo rule:

    1. clusters within ``merge_distance`` on average are merged (``merge_close_clusters``);
    2. noise faces join the cluster they are closest to on average (``attach_to_clusters``);
    3. the noise left is grouped by average linkage (pairs included: the final size filter
       decides what is big enough)."""
    labels = merge_close_clusters(vectors, photo_ids, labels, merge_distance)
    clusters = {k: np.flatnonzero(labels == k) for k in sorted(set(labels.tolist()) - {NOISE})}
    noise = np.flatnonzero(labels == NOISE)
    for row, cluster in attach_to_clusters(
        vectors, photo_ids, clusters, noise.tolist(), max_distance
    ).items():
        labels[row] = cluster
    rest = np.flatnonzero(labels == NOISE)
    if len(rest) >= 2:
        grouped = raw_labels(distances[np.ix_(rest, rest)], "agglomerative", 2, max_distance, None)
        grouped = enforce_one_face_per_photo(vectors[rest], photo_ids[rest], grouped)
        sizes = Counter(grouped.tolist())
        offset = int(labels.max(initial=NOISE)) + 1
        for row, group in zip(rest.tolist(), grouped.tolist(), strict=True):
            if group != NOISE and sizes[group] >= 2:
                labels[row] = offset + group
    return labels


def drop_small_and_renumber(labels: NDArray[np.int64], min_cluster_size: int) -> NDArray[np.int64]:
    """Clusters under ``min_cluster_size`` become noise; the rest are numbered 0.. in order of
    their first member, so equal inputs always give equal labels."""
    sizes = Counter(labels.tolist())
    result = np.full(len(labels), NOISE, dtype=np.int64)
    numbering: dict[int, int] = {}
    for index, label in enumerate(labels.tolist()):
        if label == NOISE or sizes[label] < min_cluster_size:
            continue
        result[index] = numbering.setdefault(label, len(numbering))
    return result


def cluster_faces(
    embeddings: ArrayLike,
    photo_ids: Sequence[Hashable] | NDArray[np.generic],
    method: ClusterMethod = "hdbscan",
    min_cluster_size: int = 3,
    distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
    min_samples: int | None = None,
    refine: bool = True,
    merge_distance: float | None = None,
) -> NDArray[np.int64]:
    """Cluster labels (n,) for face embeddings (n, d), -1 for noise, on cosine distance.

    ``distance_threshold`` is DBSCAN's eps, the agglomerative merge limit, and for HDBSCAN and
    DBSCAN a cap on a cluster's average internal distance (``cap_cluster_spread``). No two
    faces with the same ``photo_ids`` entry end up in one cluster (see
    ``enforce_one_face_per_photo``), and every cluster has at least ``min_cluster_size``
    faces. ``refine`` (the default) adds ``refine_clusters``'s merge-and-attach pass, merging
    clusters within ``merge_distance`` (default: ``DEFAULT_MERGE_DISTANCE`` plus however much
    ``distance_threshold`` differs from its default); False gives the clustering alone (the
    benchmark's "before").
    """
    vectors = normalise_rows(embeddings)
    photos = np.empty(len(photo_ids), dtype=object)
    photos[:] = list(photo_ids)
    if vectors.ndim != 2 or len(photos) != len(vectors):
        raise ValueError(f"{vectors.shape} embeddings but {len(photos)} photo ids")
    if min_cluster_size < 1:
        raise ValueError("min_cluster_size must be at least 1")
    if len(vectors) < max(2, min_cluster_size):
        return np.full(len(vectors), NOISE, dtype=np.int64)
    distances = cosine_distance_matrix(vectors)
    labels = raw_labels(distances, method, min_cluster_size, distance_threshold, min_samples)
    if method != "agglomerative":  # average linkage already respects the threshold
        labels = cap_cluster_spread(distances, labels, distance_threshold)
    labels = enforce_one_face_per_photo(vectors, photos, labels)
    if refine:
        merge = (
            merge_distance
            if merge_distance is not None
            else DEFAULT_MERGE_DISTANCE + distance_threshold - DEFAULT_DISTANCE_THRESHOLD
        )
        labels = refine_clusters(vectors, distances, photos, labels, distance_threshold, merge)
    return drop_small_and_renumber(labels, min_cluster_size)


def fresh_cluster_id(smallest_member: FaceId, taken: set[str]) -> str:
    """``clu_<12 hex>`` derived from the cluster's smallest face id: the same new cluster gets
    the same id on every run. A clash with an id in use is resolved by a counter salt."""
    salt = 0
    while True:
        key = f"{smallest_member}" if salt == 0 else f"{smallest_member}#{salt}"
        candidate = "clu_" + hashlib.sha256(key.encode()).hexdigest()[:12]
        if candidate not in taken:
            return candidate
        salt += 1


def stable_cluster_ids(
    new_labels: ArrayLike,
    face_ids: Sequence[FaceId],
    previous: Mapping[FaceId, str],
    min_overlap: float = 0.5,
) -> dict[int, str]:
    """Names for this run's clusters (label -> id), reusing the previous run's ids.

    A new cluster inherits an old id when they share more than ``min_overlap`` of the larger
    of the two (the old one counted over faces present in this run, so deleted faces do not
    break continuity). Pairs are matched greedily by overlap, largest first, each old id used
    once: a cluster that gained a face or lost one keeps its id; of two halves of a split,
    the bigger one keeps it if it holds most of the old members; a merge of equals gets a new
    id. Other clusters get ``fresh_cluster_id`` of their smallest member.
    """
    labels = np.asarray(new_labels, dtype=np.int64)
    if len(labels) != len(face_ids):
        raise ValueError(f"{len(labels)} labels but {len(face_ids)} face ids")
    members: dict[int, list[FaceId]] = defaultdict(list)
    for label, face in zip(labels.tolist(), face_ids, strict=True):
        if label != NOISE:
            members[label].append(face)
    present = set(face_ids)
    old_sizes = Counter(cid for face, cid in previous.items() if face in present)
    overlaps: Counter[tuple[int, str]] = Counter()
    for label, faces in members.items():
        for face in faces:
            old = previous.get(face)
            if old is not None:
                overlaps[(label, old)] += 1
    candidates = sorted(overlaps.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    names: dict[int, str] = {}
    used: set[str] = set()
    for (label, old), shared in candidates:
        if label in names or old in used:
            continue
        if shared > min_overlap * max(len(members[label]), old_sizes[old]):
            names[label] = old
            used.add(old)
    taken = used | set(previous.values())
    for label in sorted(members):
        if label not in names:
            names[label] = fresh_cluster_id(min(members[label]), taken)
            taken.add(names[label])
    return names
