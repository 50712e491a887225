"""Where an asset's original bytes are: the blob store's ``original_key(sha256)`` for what was
uploaded or copied, or the bucket object its ``original_uri`` names for what was indexed in place.

A referenced original belongs to the user's bucket: it is read, never written or deleted, and
read bytes are checked against the asset's SHA-256, so an object overwritten since it was indexed
is an error that says so instead of another image under this asset's name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from viewfinder.errors import ConflictError
from viewfinder.storage.blobs import BlobStore, original_key
from viewfinder.storage.s3_source import S3Objects, split_object_uri


class Originals:
    def __init__(
        self, blobs: BlobStore, objects: S3Objects | None = None, max_bytes: int | None = None
    ) -> None:
        self._blobs = blobs
        self._objects = objects or S3Objects()
        self._max_bytes = max_bytes

    def read(self, sha256: str, uri: str | None) -> bytes:
        """The original of the asset with this digest and ``original_uri``."""
        if uri is None:
            return self._blobs.get(original_key(sha256))
        data = self._objects.read(*split_object_uri(uri), max_bytes=self._max_bytes)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ConflictError(
                f"{uri} has changed since it was indexed: delete the asset and index it again"
            )
        return data

    def uri(self, sha256: str, uri: str | None) -> str:
        """Where the original lives, for users (``s3://bucket/key``, ``file:///...``)."""
        return uri if uri is not None else self._blobs.uri(original_key(sha256))

    def local_path(self, sha256: str, uri: str | None) -> Path | None:
        """A file the server can stream the original from, when there is one."""
        return None if uri is not None else self._blobs.local_path(original_key(sha256))
