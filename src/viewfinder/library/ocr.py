"""Text in images (OCR) as a background processing kind: each image's text is read once, stored on
the asset (``text``, and its words in ``text_words`` for filters and ranking), and searched by
``library.search``. Images stored before OCR was switched on get their task when a library with
OCR starts (``processing.enqueue_missing``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from PIL import Image
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from viewfinder.db.assets import count_true
from viewfinder.db.models import Asset
from viewfinder.library.captions import STOPWORDS
from viewfinder.library.processing import run_isolated
from viewfinder.library.words import has_word, stored_words, words_of
from viewfinder.models.ocr import OcrResult
from viewfinder.runtime.pool import ModelPool

log = logging.getLogger(__name__)

OCR_TASK = "ocr"
OCR_MODEL = "ocr"
# Originals are decoded at least this large on the shortest side: the recogniser reads each line
# from this decode (the detector sees a smaller copy), so small print stays legible.
OCR_MIN_SIDE = 1024


class OcrProcessor:
    """The text of each image: its lines in reading order, one per row ("" when it has none)."""

    kind = OCR_TASK
    min_side: int | None = OCR_MIN_SIDE

    def __init__(self, pool: ModelPool) -> None:
        self._pool = pool

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        ids = list(images)
        with self._pool.lease(OCR_MODEL) as model:
            outputs = run_isolated(model, [images[i] for i in ids])
        return {
            i: out if isinstance(out, Exception) else _text(out)
            for i, out in zip(ids, outputs, strict=True)
        }

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        asset = session.get(Asset, asset_id)
        if asset is not None:
            asset.text = str(result)
            asset.text_words = stored_words(asset.text)

    def after_commit(self, results: dict[int, Any]) -> None:
        return


def _text(result: OcrResult) -> str:
    return result.text


MAX_TEXT_CANDIDATES = 2000


def query_words(text: str) -> list[str]:
    """The words of a search query that are looked for in images' text: its words (as stored,
    see ``library.words``) less the stopwords a caption match ignores too ("the", "photo")."""
    return [w for w in words_of(text) if w not in STOPWORDS]


def text_matches(
    session: Session, text: str, conditions: Sequence[ColumnElement[bool]] = ()
) -> dict[int, float]:
    """Asset id -> the fraction of the query's words found (as whole words) in the text read
    in the image, for the images whose text has at least one of them and that meet
    ``conditions`` (a search's filters): those with the most words first, at most
    ``MAX_TEXT_CANDIDATES``."""
    words = query_words(text)
    if not words:
        return {}
    found = [has_word(Asset.text_words, w) for w in words]
    stmt = (
        select(Asset.id, Asset.text_words)
        .where(or_(*found), *conditions)
        .order_by(count_true(found).desc(), Asset.id)
        .limit(MAX_TEXT_CANDIDATES)
    )
    matches = {}
    for asset_id, stored in session.execute(stmt):
        present = set((stored or "").split())
        matches[int(asset_id)] = sum(1 for w in words if w in present) / len(words)
    return {i: m for i, m in matches.items() if m > 0}
