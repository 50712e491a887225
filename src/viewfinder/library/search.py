"""Search the library by meaning: text -> image (CLIP text tower), image -> image (an upload or a
stored asset). Filters are turned into the set of allowed ids and applied inside the vector search,
so a filtered query still returns k hits when k matching assets exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import repository as repo
from viewfinder.db.models import Asset, Face
from viewfinder.errors import InvalidInputError, NotFoundError
from viewfinder.library.captions import caption_matches
from viewfinder.library.processing import CLIP_MODEL
from viewfinder.library.vectors import LibraryIndex
from viewfinder.runtime.pool import ModelPool

MAX_QUERY_CHARS = 1000
MAX_RESULTS = 1000
# A caption naming every word of the query lifts a hit by this much: about the spread between a
# good and a mediocre CLIP text-image match, so captions reorder close calls, not everything.
CAPTION_WEIGHT = 0.1


@dataclass(frozen=True)
class SearchFilters:
    folder: str | None = None
    include_subfolders: bool = True
    captured_from: datetime | None = None
    captured_to: datetime | None = None
    person_ids: tuple[int, ...] = ()  # every one of these people must appear in the image

    @property
    def active(self) -> bool:
        dated = (self.folder, self.captured_from, self.captured_to)
        return any(v is not None for v in dated) or bool(self.person_ids)


@dataclass(frozen=True)
class SearchHit:
    asset: Asset
    score: float  # similarity + CAPTION_WEIGHT * caption_match; the ranking key
    similarity: float  # cosine similarity of unit CLIP vectors, 1 = identical direction
    caption_match: float = 0.0  # fraction of the text query's words in the asset's caption


class SearchService:
    def __init__(
        self, sessions: sessionmaker[Session], pool: ModelPool, index: LibraryIndex
    ) -> None:
        self._sessions = sessions
        self._pool = pool
        self._index = index

    def assets_with_people(self, person_ids: list[int]) -> NDArray[np.int64]:
        """Assets in which every one of these people appears."""
        wanted = sorted(set(person_ids))
        stmt = (
            select(Face.asset_id)
            .where(Face.person_id.in_(wanted))
            .group_by(Face.asset_id)
            .having(func.count(func.distinct(Face.person_id)) == len(wanted))
            .order_by(Face.asset_id)
        )
        with self._sessions() as session:
            return np.fromiter(session.scalars(stmt), dtype=np.int64)

    def text_vector(self, text: str) -> NDArray[np.float32]:
        text = text.strip()
        if not text:
            raise InvalidInputError("the search query is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise InvalidInputError(f"the search query is longer than {MAX_QUERY_CHARS} characters")
        return np.asarray(self._pool.run("clip_text", text), dtype=np.float32)

    def image_vector(self, image: Image.Image) -> NDArray[np.float32]:
        return np.asarray(self._pool.run("clip_image", image), dtype=np.float32)

    def asset_vector(self, asset_id: int) -> NDArray[np.float32]:
        with self._sessions() as session:
            if repo.get_asset(session, asset_id) is None:
                raise NotFoundError(f"asset {asset_id} does not exist")
            vectors = repo.get_embeddings(session, CLIP_MODEL, [asset_id])
        if asset_id not in vectors:
            raise InvalidInputError(f"asset {asset_id} is not embedded yet; retry when processed")
        return vectors[asset_id]

    def search(
        self,
        query: NDArray[np.float32],
        *,
        k: int = 10,
        offset: int = 0,
        filters: SearchFilters | None = None,
        min_score: float | None = None,
        exclude: int | None = None,
        text: str | None = None,
    ) -> list[SearchHit]:
        """Hits ranked by score (ties by asset id), ``offset`` skipped, at most ``k``.
        ``text`` (the words of a text query) also ranks by the assets' captions; ``min_score``
        bounds the CLIP similarity."""
        if not 1 <= k <= MAX_RESULTS or offset < 0 or offset + k > 10 * MAX_RESULTS:
            raise InvalidInputError(
                f"k must be 1..{MAX_RESULTS} and offset + k at most {10 * MAX_RESULTS}"
            )
        allowed = None
        if filters is not None and filters.active:
            with self._sessions() as session:
                allowed = repo.asset_ids_matching(
                    session,
                    folder=filters.folder,
                    include_subfolders=filters.include_subfolders,
                    captured_from=filters.captured_from,
                    captured_to=filters.captured_to,
                )
            if filters.person_ids:
                with_people = self.assets_with_people(list(filters.person_ids))
                allowed = np.intersect1d(allowed, with_people, assume_unique=True)
            if len(allowed) == 0:
                return []
        want = offset + k + (1 if exclude is not None else 0)
        similarity = {
            h.id: h.score for h in self._index.search(query, want, allowed) if h.id != exclude
        }
        boosts = self._caption_boosts(text, query, similarity, allowed, exclude)
        ranked = sorted(
            similarity,
            key=lambda i: (-(similarity[i] + CAPTION_WEIGHT * boosts.get(i, 0.0)), i),
        )[offset : offset + k]
        if min_score is not None:
            ranked = [i for i in ranked if similarity[i] >= min_score]
        assets = self._assets(ranked)
        return [
            SearchHit(
                assets[i],
                similarity[i] + CAPTION_WEIGHT * boosts.get(i, 0.0),
                similarity[i],
                boosts.get(i, 0.0),
            )
            for i in ranked
            if i in assets
        ]

    def _caption_boosts(
        self,
        text: str | None,
        query: NDArray[np.float32],
        similarity: dict[int, float],
        allowed: NDArray[np.int64] | None,
        exclude: int | None,
    ) -> dict[int, float]:
        """Caption matches of a text query; assets found only by their caption join the
        candidates with their stored CLIP similarity, so both signals rank one list."""
        if not text:
            return {}
        with self._sessions() as session:
            boosts = caption_matches(session, text)
            permitted = set(allowed.tolist()) if allowed is not None else None
            boosts = {
                i: b
                for i, b in boosts.items()
                if i != exclude and (permitted is None or i in permitted)
            }
            extra = [i for i in boosts if i not in similarity]
            vectors = repo.get_embeddings(session, CLIP_MODEL, extra) if extra else {}
        for asset_id, vector in vectors.items():
            similarity[asset_id] = float(np.dot(vector, query))
        return {i: b for i, b in boosts.items() if i in similarity}

    def _assets(self, ids: list[int]) -> dict[int, Asset]:
        if not ids:
            return {}
        with self._sessions() as session:
            rows = session.scalars(select(Asset).where(Asset.id.in_(ids))).all()
        return {a.id: a for a in rows}
