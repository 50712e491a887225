"""Search the library by meaning: text -> image (CLIP text tower), image -> image (an upload or a
stored asset). Filters are applied inside the vector store's search (see ``library.filters``), so a
filtered query still returns k hits when k matching assets exist."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.db.models import Asset
from viewfinder.errors import InvalidInputError, NotFoundError
from viewfinder.imaging.decode import EMBED_MIN_SIDE, decode_image
from viewfinder.library.captions import caption_matches
from viewfinder.library.filters import SearchFilters, permitted
from viewfinder.library.processing import CLIP_MODEL
from viewfinder.library.stores import VectorStore
from viewfinder.runtime.pool import ModelPool

MAX_QUERY_CHARS = 1000
MAX_RESULTS = 1000
# A caption naming every word of the query lifts a hit by this much: about the spread between a
# good and a mediocre CLIP text-image match, so captions reorder close calls, not everything.
CAPTION_WEIGHT = 0.1


@dataclass(frozen=True)
class SearchHit:
    asset: Asset
    score: float  # similarity + CAPTION_WEIGHT * caption_match; the ranking key
    similarity: float  # cosine similarity of unit CLIP vectors, 1 = identical direction
    caption_match: float = 0.0  # fraction of the text query's words in the asset's caption


class SearchService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        pool: ModelPool,
        index: VectorStore,
        max_image_pixels: int = 50_000_000,
    ) -> None:
        self._sessions = sessions
        self._pool = pool
        self._index = index
        self._max_pixels = max_image_pixels

    def text_vector(self, text: str) -> NDArray[np.float32]:
        text = text.strip()
        if not text:
            raise InvalidInputError("the search query is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise InvalidInputError(f"the search query is longer than {MAX_QUERY_CHARS} characters")
        return np.asarray(self._pool.run("clip_text", text), dtype=np.float32)

    def image_vector(self, data: bytes) -> NDArray[np.float32]:
        """The CLIP vector of an uploaded image, decoded as library images are embedded (see
        ``EMBED_MIN_SIDE``), so an upload of a library image's bytes finds it at similarity 1."""
        image = decode_image(data, self._max_pixels, min_side=EMBED_MIN_SIDE)
        return np.asarray(self._pool.run("clip_image", image), dtype=np.float32)

    def asset_vector(self, asset_id: int) -> NDArray[np.float32]:
        with self._sessions() as session:
            if assets_repo.get_asset(session, asset_id) is None:
                raise NotFoundError(f"asset {asset_id} does not exist")
            vectors = embeddings_repo.get_embeddings(session, CLIP_MODEL, [asset_id])
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
        active = filters if filters is not None and filters.active else None
        want = offset + k + (1 if exclude is not None else 0)
        similarity = {
            h.id: h.score for h in self._index.search(query, want, active) if h.id != exclude
        }
        boosts = self._caption_boosts(text, query, similarity, active, exclude)
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
        filters: SearchFilters | None,
        exclude: int | None,
    ) -> dict[int, float]:
        """Caption matches of a text query; assets found only by their caption join the
        candidates with their stored CLIP similarity, so both signals rank one list."""
        if not text:
            return {}
        with self._sessions() as session:
            boosts = caption_matches(session, text)
            if exclude is not None:
                boosts.pop(exclude, None)
            if filters is not None and boosts:
                allowed = permitted(session, boosts, filters)
                boosts = {i: b for i, b in boosts.items() if i in allowed}
            extra = [i for i in boosts if i not in similarity]
            vectors = embeddings_repo.get_embeddings(session, CLIP_MODEL, extra) if extra else {}
        for asset_id, vector in vectors.items():
            similarity[asset_id] = float(np.dot(vector, query))
        return {i: b for i, b in boosts.items() if i in similarity}

    def _assets(self, ids: list[int]) -> dict[int, Asset]:
        with self._sessions() as session:
            return assets_repo.assets_by_id(session, ids)
