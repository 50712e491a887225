"""Seed 004's clusters: MiniBatchKMeans over the stored CLIP embeddings, computed on demand and
cached until the set of embedded assets changes."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import embeddings as embeddings_repo
from viewfinder.index import digest_ids
from viewfinder.library.processing import CLIP_MODEL


@dataclass(frozen=True)
class Cluster:
    cluster_id: int
    centroid: list[float]
    image_ids: list[int]


class ClusterService:
    def __init__(
        self, sessions: sessionmaker[Session], n_clusters: int = 8, batch_size: int = 64
    ) -> None:
        self._sessions = sessions
        self._n_clusters = n_clusters
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int], list[Cluster]] | None = None

    def clusters(self) -> list[Cluster]:
        with self._sessions() as session:
            chunks = list(embeddings_repo.iter_embeddings(session, CLIP_MODEL))
        if not chunks:
            return []
        ids = np.concatenate([c[0] for c in chunks])
        vectors = np.concatenate([c[1] for c in chunks])
        key = (len(ids), digest_ids(ids))
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            result = self._compute(ids, vectors)
            self._cache = (key, result)
            return result

    def _compute(self, ids: np.ndarray, vectors: np.ndarray) -> list[Cluster]:
        """At most ``n_clusters`` clusters, none of them empty: k is also capped at the number
        of distinct embeddings (identical pixels saved as PNG and BMP embed identically), and a
        cluster MiniBatchKMeans leaves without members is dropped; ids are numbered 0.. in the
        order of their labels."""
        from sklearn.cluster import MiniBatchKMeans

        n = min(self._n_clusters, len(np.unique(vectors, axis=0)))
        kmeans = MiniBatchKMeans(
            n_clusters=n, batch_size=self._batch_size, random_state=0, n_init=3
        ).fit(vectors)
        labels = kmeans.labels_
        clusters: list[Cluster] = []
        for label in range(n):
            members = ids[labels == label]
            if len(members) == 0:
                continue
            centroid = [float(v) for v in kmeans.cluster_centers_[label]]
            clusters.append(Cluster(len(clusters), centroid, members.tolist()))
        return clusters
