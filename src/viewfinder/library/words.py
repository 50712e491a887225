"""Text as words, one way everywhere: what is stored of an image's text (``assets.text_words``)
and the words a search requires of it are both made here, so they always compare alike."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

# Letters and digits of any script ("café", "1987", "東京"), never punctuation.
_WORD = re.compile(r"[^\W_]+")


def words_of(text: str) -> list[str]:
    """The words of ``text``, case-folded, in order, each once."""
    return list(dict.fromkeys(_WORD.findall(text.casefold())))


def stored_words(text: str) -> str:
    """``assets.text_words`` for ``text``: its words between single spaces, with one at each end
    (" harbour 1987 "), so a whole word is ``LIKE '% word %'``."""
    words = _WORD.findall(text.casefold())
    return f" {' '.join(words)} " if words else ""


def has_word(column: InstrumentedAttribute[str | None], word: str) -> ColumnElement[bool]:
    """SQL: the stored words (``stored_words``) in ``column`` include ``word`` as a whole word
    (LIKE's wildcards in it escaped, so it matches literally on every database)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"% {escaped} %", escape="\\")
