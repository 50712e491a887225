"""Constraints shared by request parameters, so that input the database cannot hold is refused
with a 422 that names the field, instead of failing inside the database driver."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

DB_INT_MAX = 2**63 - 1

DbInt = Annotated[int, Field(ge=-DB_INT_MAX - 1, le=DB_INT_MAX)]
"""An id (or offset) compared with database integers, which are signed 64-bit: SQLite cannot
even bind a larger Python int."""


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\x00)")
    return value


DbText = Annotated[str, AfterValidator(_no_nul)]
"""A string stored in or looked up in the database, or used as a server path: PostgreSQL text
and file names cannot hold NUL."""
