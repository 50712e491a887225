"""Captions as searchable text: which stored captions mention the words of a query.

A caption's match is the fraction of the query's content words (stopwords dropped, plural and
singular alike) that it contains as whole words."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from viewfinder.db import assets as assets_repo
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


def caption_matches(
    session: Session, text: str, conditions: Sequence[ColumnElement[bool]] = ()
) -> dict[int, float]:
    """Asset id -> match fraction for captions mentioning at least one content word, among the
    assets meeting ``conditions`` (a search's filters)."""
    words = content_words(text)
    if not words:
        return {}
    rows = assets_repo.captioned_with_any(session, words, MAX_CAPTION_CANDIDATES, conditions)
    matches = {asset_id: caption_match(caption, words) for asset_id, caption in rows}
    return {i: m for i, m in matches.items() if m > 0}
