"""Seed 002's automatic folder detection: "show me nature photos" searches the ``nature`` folder.

A query word matches a folder when their singular forms agree, case-insensitively ("animal"
finds ``animals``, "Cities" finds ``city``). The first matching word of the query wins; among
folders with the same name the shortest path wins. No match means no folder filter."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9]+")


def singular(word: str) -> str:
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 1 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def detect_folder(query: str, folders: Iterable[str]) -> str | None:
    by_name: dict[str, str] = {}
    for folder in sorted((f for f in folders if f), key=lambda f: (f.count("/"), len(f), f)):
        for segment in folder.lower().split("/"):
            by_name.setdefault(singular(segment), folder)
    for word in _WORD.findall(query.lower()):
        match = by_name.get(singular(word))
        if match is not None:
            return match
    return None
