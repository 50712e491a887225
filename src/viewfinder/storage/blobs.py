"""Blob stores. Keys are made by Viewfinder from SHA-256 digests, never from user input, and are
checked against one pattern anyway, so no key can name a path outside the store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from viewfinder.atomic import write_atomically
from viewfinder.errors import NotFoundError

_KEY = re.compile(r"^(originals|thumbnails|previews)/[0-9a-f]{2}/[0-9a-f]{64}(\.jpg)?$")


def original_key(sha256: str) -> str:
    return f"originals/{sha256[:2]}/{sha256}"


def thumbnail_key(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


def preview_key(sha256: str) -> str:
    return f"previews/{sha256[:2]}/{sha256}.jpg"


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store atomically: readers see the old bytes or the new, never a partial file."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def uri(self, key: str) -> str:
        """Where the blob lives, for users (``file:///...``, ``s3://bucket/key``)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A file path the server can stream from, when the store is local."""
        ...


class LocalBlobStore:
    """Blobs as files under one directory, written via temp file + fsync + rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.is_file() and path.stat().st_size == len(data):
            return  # content-addressed: the same key already holds the same bytes
        write_atomically(path, data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} is missing from the store") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)
