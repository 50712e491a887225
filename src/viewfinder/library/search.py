"""Search the library by meaning: text -> image (CLIP text tower), image -> image (an upload or a
stored asset). Filters are applied inside the vector store's search (see ``library.filters``), so a
filtered query still returns k hits when k matching assets exist."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import collections as collections_repo
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.models import Asset
from viewfinder.errors import InvalidInputError, NotFoundError
from viewfinder.imaging.decode import EMBED_MIN_SIDE, decode_image
from viewfinder.library.captions import caption_matches
from viewfinder.library.filters import (
    SearchFilters,
    asset_conditions,
    count_matching,
    count_matching_embedded,
)
from viewfinder.library.objects import OBJECTS_TASK
from viewfinder.library.ocr import OCR_TASK, text_matches
from viewfinder.library.processing import CLIP_MODEL, EMBED_TASK
from viewfinder.library.stores import VectorStore
from viewfinder.runtime.pool import ModelPool

MAX_QUERY_CHARS = 1000
MAX_RESULTS = 1000
# A caption naming every word of the query lifts a hit by this much: about the spread between a
# good and a mediocre CLIP text-image match, so captions reorder close calls, not everything.
CAPTION_WEIGHT = 0.1
# The query's words read in the image itself (OCR) lift it by TEXT_WEIGHT x text_match squared:
# all of them (+0.3) puts a photo of the sign a query quotes above photos that merely look alike
# (more than CLIP's spread between a good and a poor match); part of them lifts it much less
# (half the words: +0.075), so a natural query ("a dog on the beach") is not taken over by any
# photo of a sign saying "beach".
TEXT_WEIGHT = 0.3
# The order of the hits: ``relevance`` (score, then id), or by when each photo was taken (capture
# date, else upload date, then id: the timeline's order), ``newest`` or ``oldest`` first.
SearchSort = Literal["relevance", "newest", "oldest"]
SORTS: tuple[SearchSort, ...] = ("relevance", "newest", "oldest")
# What a date sort orders: the best hits by relevance, never every image (a search for "dog"
# sorted newest first should show dogs, not the whole library in date order). CLIP similarities
# have no cut-off that holds across models and queries, so the set is bounded by rank: these many
# hits without ``min_score``; with it, every hit reaching it, up to MAX_RESULTS. A request may
# choose its own bound (``candidates``, 1..MAX_RESULTS).
DATE_SORT_CANDIDATES = 100


@dataclass(frozen=True)
class SearchHit:
    asset: Asset
    score: float  # similarity + CAPTION_WEIGHT * caption_match + TEXT_WEIGHT * text_match**2
    similarity: float  # cosine similarity of unit CLIP vectors, 1 = identical direction
    caption_match: float = 0.0  # fraction of the text query's words in the asset's caption
    text_match: float = 0.0  # fraction of the text query's words in the text read in the image


# Why a search found nothing, when it can tell:
# nothing_indexed: no image (other than the query's) has a vector yet;
# no_match_filters: no image matches the filters (folder, dates, people, collection);
# filtered_not_indexed: images match the filters but none of them has a vector yet;
# below_min_score: there were candidates, none reached ``min_score``;
# past_the_end: there were hits, all before ``offset``;
# no_results: none of the above (e.g. every candidate was the query image itself).
EmptyReason = Literal[
    "nothing_indexed",
    "no_match_filters",
    "filtered_not_indexed",
    "below_min_score",
    "past_the_end",
    "no_results",
]


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    empty_reason: EmptyReason | None = None  # None when there are hits
    empty_message: str | None = None  # the reason in a sentence for a person
    # A date sort only: how many hits are in the ordered list (pages past it are empty), and the
    # most it could hold (``total == candidates``: more images may match than were ordered).
    total: int | None = None
    candidates: int | None = None
    sort: SearchSort | None = None  # the order the hits are in, when not the one asked for


class SearchService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        pool: ModelPool,
        index: VectorStore,
        max_image_pixels: int = 50_000_000,
        task_kinds: tuple[str, ...] = (),
    ) -> None:
        self._sessions = sessions
        self._pool = pool
        self._index = index
        self._max_pixels = max_image_pixels
        # The background kinds this library runs: a filter on what a kind that is switched off
        # would produce (text, objects) says so when it finds nothing.
        self._task_kinds = task_kinds

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

    def find_filtered(
        self,
        filters: SearchFilters,
        *,
        k: int = 10,
        offset: int = 0,
        sort: SearchSort = "newest",
        min_score: float | None = None,
        candidates: int | None = None,
    ) -> SearchResult:
        """A search by filters alone (no query, no image): the images that pass them, such as
        those whose text has every word of ``filters.text_words`` or that show a dog
        (``filters.objects``), newest first unless ``sort`` is ``oldest`` (capture date, else
        upload date, then id; there is no relevance to sort by). Every hit passes every filter,
        so ``score`` is 1, ``text_match`` 1 when words were asked for, and there is no
        similarity (0): ``min_score`` and ``candidates`` have nothing to bound."""
        if not filters.active:
            raise InvalidInputError(
                "give 'query' (text), 'asset_id' (an image), or filters such as 'text' (words "
                "the images contain) or 'objects'"
            )
        if min_score is not None or candidates is not None:
            raise InvalidInputError(
                "min_score and candidates bound the similarity to a 'query' or 'asset_id'"
            )
        _check_page(k, offset)
        order: Literal["newest", "oldest"] = "oldest" if sort == "oldest" else "newest"
        _check_people(filters)
        if filters.collection_id is not None:
            self._require_collection(filters.collection_id)
        text_match = 1.0 if filters.text_words else 0.0
        with self._sessions() as session:
            conditions = asset_conditions(filters)
            assets = assets_repo.assets_where(session, conditions, order, limit=k, offset=offset)
            hits = [SearchHit(a, 1.0, 0.0, 0.0, text_match) for a in assets]
            if hits:
                return SearchResult(hits, sort=order)
            matching = count_matching(session, filters)
            if matching and offset > 0:
                return SearchResult(
                    [], "past_the_end", f"no more results after offset {offset}", sort=order
                )
            unread = _unprocessed(session, filters) + self._switched_off(filters)
        if filters.text_words:
            words = ", ".join(filters.text_words)
            return SearchResult(
                [], "no_match_filters", f"no image's text has all of: {words}{unread}", sort=order
            )
        return SearchResult(
            [], "no_match_filters", f"no image matches the filters{unread}", sort=order
        )

    def _switched_off(self, filters: SearchFilters) -> str:
        """ "; ... is off" for a filter on what a switched-off kind would produce, else ""."""
        off = [
            hint
            for wanted, kind, hint in (
                (
                    filters.text_words,
                    OCR_TASK,
                    "reading the text in images is off: VIEWFINDER_OCR=1",
                ),
                (filters.objects, OBJECTS_TASK, "object detection is off: VIEWFINDER_OBJECTS=1"),
            )
            if wanted and kind not in self._task_kinds
        ]
        return "".join(f"; {hint}" for hint in off)

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
        return self.find(
            query,
            k=k,
            offset=offset,
            filters=filters,
            min_score=min_score,
            exclude=exclude,
            text=text,
        ).hits

    def find(
        self,
        query: NDArray[np.float32],
        *,
        k: int = 10,
        offset: int = 0,
        filters: SearchFilters | None = None,
        min_score: float | None = None,
        exclude: int | None = None,
        text: str | None = None,
        sort: SearchSort = "relevance",
        candidates: int | None = None,
    ) -> SearchResult:
        """``search``, and when it finds nothing, why (see ``EmptyReason``). A collection
        filter naming no collection is a NotFoundError.

        ``sort`` ``newest`` or ``oldest`` orders the candidates (see ``DATE_SORT_CANDIDATES``)
        that pass the filters and ``min_score`` by when they were taken, then pages that list
        with ``offset`` and ``k``; the result says how long it is (``total``)."""
        _check_page(k, offset)
        depth = self._date_sort_depth(sort, candidates, min_score)
        if filters is not None:
            _check_people(filters)
        if filters is not None and filters.collection_id is not None:
            self._require_collection(filters.collection_id)
        active = filters if filters is not None and filters.active else None
        want = (offset + k if depth is None else depth) + (1 if exclude is not None else 0)
        similarity = {
            h.id: h.score for h in self._index.search(query, want, active) if h.id != exclude
        }
        boosts, reads = self._word_boosts(text, query, similarity, active, exclude)
        ranked = sorted(
            similarity,
            key=lambda i: (-_score(similarity[i], boosts.get(i, 0.0), reads.get(i, 0.0)), i),
        )
        total: int | None = None  # the length of a date sort's list
        if depth is None:
            ranked = ranked[offset : offset + k]
            in_page = bool(ranked)
            if min_score is not None:
                ranked = [i for i in ranked if similarity[i] >= min_score]
        else:
            passed = [i for i in ranked[:depth] if min_score is None or similarity[i] >= min_score]
            in_page = bool(ranked) and not passed  # candidates, none reaching min_score
            ordered = self._in_date_order(passed, sort)
            ranked = ordered[offset : offset + k]
            total = len(ordered)
        assets = self._assets(ranked)
        hits = [
            SearchHit(
                assets[i],
                _score(similarity[i], boosts.get(i, 0.0), reads.get(i, 0.0)),
                similarity[i],
                boosts.get(i, 0.0),
                reads.get(i, 0.0),
            )
            for i in ranked
            if i in assets
        ]
        if hits:
            return SearchResult(hits, total=total, candidates=depth)
        if in_page and min_score is not None:
            best = max(similarity.values())
            return SearchResult(
                [],
                "below_min_score",
                f"no image reaches min_score {min_score:g} (the best similarity was {best:.3f})",
                total=total,
                candidates=depth,
            )
        if similarity and offset > 0:
            return SearchResult(
                [],
                "past_the_end",
                f"no more results after offset {offset}",
                total=total,
                candidates=depth,
            )
        reason, message = self._why_nothing(active, exclude)
        return SearchResult([], reason, message, total=total, candidates=depth)

    @staticmethod
    def _date_sort_depth(
        sort: SearchSort, candidates: int | None, min_score: float | None
    ) -> int | None:
        """How many of the best hits a date sort orders; None for the relevance order."""
        if sort not in SORTS:
            raise InvalidInputError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        if candidates is not None and not 1 <= candidates <= MAX_RESULTS:
            raise InvalidInputError(f"candidates must be 1..{MAX_RESULTS}")
        if sort == "relevance":
            if candidates is not None:
                raise InvalidInputError("candidates bounds a date sort: give sort newest or oldest")
            return None
        if candidates is not None:
            return candidates
        return DATE_SORT_CANDIDATES if min_score is None else MAX_RESULTS

    def _in_date_order(self, ids: list[int], sort: SearchSort) -> list[int]:
        with self._sessions() as session:
            return assets_repo.ids_in_order(
                session, ids, "newest" if sort == "newest" else "oldest"
            )

    def _why_nothing(
        self, filters: SearchFilters | None, exclude: int | None
    ) -> tuple[EmptyReason, str]:
        """Why the vector store had no candidate at all."""
        with self._sessions() as session:
            indexed = self._index.count() - (1 if exclude is not None else 0)
            if indexed <= 0:
                waiting = tasks_repo.task_counts(session, EMBED_TASK)
                pending = waiting["pending"] + waiting["running"]
                other = "no other image" if exclude is not None else "no image"
                more = f"; {pending} waiting to be embedded" if pending else ""
                return "nothing_indexed", f"{other} is indexed yet{more}"
            if filters is not None:
                matching = count_matching(session, filters)
                if matching == 0:
                    return "no_match_filters", "no image matches the filters" + self._switched_off(
                        filters
                    )
                if count_matching_embedded(session, filters, CLIP_MODEL) == 0:
                    return (
                        "filtered_not_indexed",
                        f"{_images(matching)} the filters, none of them is indexed yet",
                    )
        return "no_results", "nothing found"

    def _require_collection(self, collection_id: int) -> None:
        with self._sessions() as session:
            if collections_repo.get_collection(session, collection_id) is None:
                raise NotFoundError(f"collection {collection_id} does not exist")

    def _word_boosts(
        self,
        text: str | None,
        query: NDArray[np.float32],
        similarity: dict[int, float],
        filters: SearchFilters | None,
        exclude: int | None,
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Caption matches and image-text (OCR) matches of a text query; assets found only by
        their words join the candidates with their stored CLIP similarity, so every signal
        ranks one list."""
        if not text:
            return {}, {}
        # The filters go into the word queries: their candidates are the best-matching images
        # the search may return, not the first ones of the whole library.
        conditions = asset_conditions(filters) if filters is not None else []
        with self._sessions() as session:
            boosts = caption_matches(session, text, conditions)
            reads = text_matches(session, text, conditions)
            for found in (boosts, reads):
                if exclude is not None:
                    found.pop(exclude, None)
            extra = [i for i in dict.fromkeys([*boosts, *reads]) if i not in similarity]
            vectors = embeddings_repo.get_embeddings(session, CLIP_MODEL, extra) if extra else {}
        for asset_id, vector in vectors.items():
            similarity[asset_id] = float(np.dot(vector, query))
        return (
            {i: b for i, b in boosts.items() if i in similarity},
            {i: b for i, b in reads.items() if i in similarity},
        )

    def _assets(self, ids: list[int]) -> dict[int, Asset]:
        with self._sessions() as session:
            return assets_repo.assets_by_id(session, ids)


def _check_page(k: int, offset: int) -> None:
    if not 1 <= k <= MAX_RESULTS or offset < 0 or offset + k > 10 * MAX_RESULTS:
        raise InvalidInputError(
            f"k must be 1..{MAX_RESULTS} and offset + k at most {10 * MAX_RESULTS}"
        )


def _check_people(filters: SearchFilters) -> None:
    """People filters that cannot mean anything are refused (InvalidInputError)."""
    if filters.only_people and not (filters.person_ids or filters.any_person_ids):
        raise InvalidInputError(
            "only_people needs the people it means: give person_ids or any_person_ids"
        )
    wanted = set(filters.person_ids) | set(filters.any_person_ids)
    both = sorted(wanted & set(filters.exclude_person_ids))
    if both:
        named = ", ".join(str(p) for p in both)
        raise InvalidInputError(f"person {named} is both wanted and in exclude_person_ids")


def _score(similarity: float, caption_match: float, text_match: float) -> float:
    """The ranking key of a hit (see CAPTION_WEIGHT and TEXT_WEIGHT)."""
    return similarity + CAPTION_WEIGHT * caption_match + TEXT_WEIGHT * text_match**2


def _unprocessed(session: Session, filters: SearchFilters) -> str:
    """ "; N images not read yet" (and/or not looked at for objects) when the filters ask for
    what background work has not produced for every image yet, else ""."""
    waits = []
    for wanted, kind, what in (
        (filters.text_words, OCR_TASK, "read"),
        (filters.objects, OBJECTS_TASK, "looked at for objects"),
    ):
        if wanted:
            counts = tasks_repo.task_counts(session, kind)
            pending = counts["pending"] + counts["running"]
            if pending:
                waits.append(f"{pending} image{'' if pending == 1 else 's'} not {what} yet")
    return "; " + ", ".join(waits) if waits else ""


def _images(n: int) -> str:
    return "1 image matches" if n == 1 else f"{n} images match"
