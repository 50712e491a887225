"""Captions as searchable text: which stored captions mention the words of a query.

A caption's match is the fraction of the query's content words (stopwords dropped, plural and
singular alike) that it contains as whole words."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from viewfinder.db.models import Asset
from viewfinder.library.folders import singular

MAX_CAPTION_CANDIDATES = 2000
_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "and",
        "or",
        "by",
        "from",
        "is",
        "are",
        "this",
        "that",
        "these",
        "those",
        "some",
        "any",
        "photo",
        "photos",
        "picture",
        "pictures",
        "image",
        "images",
        "show",
        "me",
        "find",
    ]
)


def content_words(text: str) -> list[str]:
    words = [singular(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]
    return list(dict.fromkeys(words))


def caption_match(caption: str, words: list[str]) -> float:
    if not words:
        return 0.0
    present = {singular(w) for w in _WORD.findall(caption.lower())}
    return sum(1 for w in words if w in present) / len(words)


def caption_matches(session: Session, text: str) -> dict[int, float]:
    """Asset id -> match fraction for captions mentioning at least one content word."""
    words = content_words(text)
    if not words:
        return {}
    lowered = func.lower(Asset.caption)
    stmt = (
        select(Asset.id, Asset.caption)
        .where(Asset.caption.is_not(None), or_(*(lowered.contains(w) for w in words)))
        .order_by(Asset.id)
        .limit(MAX_CAPTION_CANDIDATES)
    )
    matches = {int(i): caption_match(c or "", words) for i, c in session.execute(stmt)}
    return {i: m for i, m in matches.items() if m > 0}
