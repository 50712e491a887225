"""Near-duplicates: re-encoded, resized or lightly edited copies, found by embedding similarity.
(Exact duplicates never become two assets: ingest deduplicates by SHA-256.)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import embeddings as embeddings_repo
from viewfinder.library.processing import CLIP_MODEL
from viewfinder.library.stores import VectorStore

NEIGHBOURS = 8


@dataclass(frozen=True)
class DuplicateGroup:
    asset_ids: list[int]
    min_score: float  # the weakest similarity that joined this group


class DuplicateFinder:
    def __init__(self, sessions: sessionmaker[Session], index: VectorStore) -> None:
        self._sessions = sessions
        self._index = index

    def groups(self, min_score: float = 0.95) -> list[DuplicateGroup]:
        """Groups of two or more assets whose embeddings are at least ``min_score`` similar
        (linked transitively), largest first, then by smallest asset id."""
        parent: dict[int, int] = {}
        weakest: dict[int, float] = {}

        def find(x: int) -> int:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        with self._sessions() as session:
            chunks = list(embeddings_repo.iter_embeddings(session, CLIP_MODEL))
        for ids, vectors in chunks:
            for asset_id, vector in zip(ids.tolist(), vectors, strict=True):
                for hit in self._index.search(vector, NEIGHBOURS):
                    if hit.id == asset_id or hit.score < min_score:
                        continue
                    a, b = find(asset_id), find(hit.id)
                    score = min(weakest.get(a, 1.0), weakest.get(b, 1.0), hit.score)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                    weakest[min(a, b)] = score
        members: dict[int, list[int]] = {}
        for node in parent:
            members.setdefault(find(node), []).append(node)
        groups = [
            DuplicateGroup(sorted(ids), float(np.float32(weakest.get(root, 1.0))))
            for root, ids in members.items()
            if len(ids) > 1
        ]
        return sorted(groups, key=lambda g: (-len(g.asset_ids), g.asset_ids[0]))
