"""Objects in S3 buckets that Viewfinder reads but does not own: a prefix listed page by page
(for indexing a bucket in place) and one object read whole (the original of an asset indexed
in place). Nothing here writes or deletes.

Needs the optional ``boto3`` (``pip install 'viewfinder[s3]'``); the client is built on first use
from the same settings as the S3 blob store (``VIEWFINDER_S3_ENDPOINT_URL``, ``_REGION`` and
boto3's credential chain), so a library that never reads a bucket never imports boto3.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from viewfinder.errors import InvalidInputError, NotFoundError, StorageError, TooLargeError
from viewfinder.storage.s3 import (
    boto_errors,
    bucket_description,
    is_missing,
    make_client,
    storage_error,
)

SCHEME = "s3://"
# S3's bucket naming rules, loosened to what older buckets and S3-compatible servers allow.
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
LIST_PAGE_SIZE = 1000  # ListObjectsV2's largest page


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix: ``""`` (the whole bucket) or a folder ending in ``/``."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class BucketObject:
    key: str
    size: int
    etag: str


def is_s3_url(text: str) -> bool:
    return text.startswith(SCHEME)


def _check_bucket(bucket: str, url: str) -> str:
    if not _BUCKET.match(bucket):
        raise InvalidInputError(f"{url!r} does not name a bucket: expected s3://bucket/prefix")
    return bucket


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/prefix`` as a location. The prefix is a folder: ``s3://b/nature`` is every
    key under ``nature/`` (not ``nature-old/...``); ``s3://b`` is the whole bucket."""
    if not is_s3_url(url):
        raise InvalidInputError(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url.removeprefix(SCHEME).partition("/")
    parts = [p for p in prefix.split("/") if p]
    return S3Location(_check_bucket(bucket, url), "/".join(parts) + "/" if parts else "")


def object_uri(bucket: str, key: str) -> str:
    """Where an object is, as stored in ``Asset.original_uri``: the key exactly as listed."""
    return f"{SCHEME}{bucket}/{key}"


def split_object_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``object_uri``; the key is kept byte for byte."""
    bucket, _, key = uri.removeprefix(SCHEME).partition("/")
    if not is_s3_url(uri) or not key:
        raise StorageError(f"{uri!r} is not an s3://bucket/key object address")
    return _check_bucket(bucket, uri), key


class S3Objects:
    """Reads objects of any bucket the credentials allow, through one lazily built client."""

    def __init__(
        self, endpoint_url: str | None = None, region: str | None = None, client: Any = None
    ) -> None:
        self.endpoint_url = endpoint_url
        self._region = region
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self.endpoint_url, self._region)
            return self._client

    def _where(self, bucket: str) -> str:
        return bucket_description(bucket, self.endpoint_url)

    def pages(
        self, location: S3Location, page_size: int = LIST_PAGE_SIZE
    ) -> Iterator[list[BucketObject]]:
        """Every object under the location, one ListObjectsV2 page at a time, in key order."""
        client = self.client
        request: dict[str, Any] = {
            "Bucket": location.bucket,
            "Prefix": location.prefix,
            "MaxKeys": max(1, min(page_size, LIST_PAGE_SIZE)),
        }
        while True:
            try:
                page = client.list_objects_v2(**request)
            except boto_errors() as exc:
                raise storage_error(
                    exc, self._where(location.bucket), f"listing {location.url}"
                ) from exc
            yield [
                BucketObject(o["Key"], int(o.get("Size", 0)), str(o.get("ETag", "")).strip('"'))
                for o in page.get("Contents", [])
            ]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            request["ContinuationToken"] = token

    def read(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        """One object's bytes; ``NotFoundError`` when it is gone, ``TooLargeError`` over
        ``max_bytes`` (checked before the body is read)."""
        uri = object_uri(bucket, key)
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                size = int(response.get("ContentLength", 0))
                if max_bytes is not None and size > max_bytes:
                    raise TooLargeError(f"{uri} is {size} bytes, over the {max_bytes} byte limit")
                data: bytes = body.read()
            finally:
                body.close()
        except boto_errors() as exc:
            if is_missing(exc):
                raise NotFoundError(f"{uri} does not exist (any more)") from None
            raise storage_error(exc, self._where(bucket), f"reading {uri}") from exc
        return data
