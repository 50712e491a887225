"""Blobs as objects in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, ...).

Needs the optional ``boto3`` (``pip install 'viewfinder[s3]'``). Credentials come from boto3's
usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role).
Keys are the local store's content-addressed keys, checked by the same pattern before any
request, under an optional prefix. A PutObject is atomic in S3: readers see the whole object or
none, so ``put`` needs no temp-and-rename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from viewfinder.errors import NotFoundError, StorageError
from viewfinder.storage.blobs import check_key

INSTALL_HINT = "pip install 'viewfinder[s3]'"
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise StorageError(
            f"S3 storage (VIEWFINDER_S3_BUCKET) needs boto3: {INSTALL_HINT}"
        ) from None
    return boto3


def make_client(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 S3 client with short connect timeouts and bounded retries (thread-safe)."""
    boto3 = _boto3()
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
    )
    try:
        return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    except (BotoCoreError, ValueError) as exc:  # a bad endpoint URL or region name
        raise StorageError(f"cannot configure the S3 client: {exc}") from exc


def boto_errors() -> tuple[type[Exception], ...]:
    """What an S3 request can raise: these become Viewfinder errors, anything else is a bug."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def bucket_description(bucket: str, endpoint_url: str | None) -> str:
    endpoint = f" at {endpoint_url}" if endpoint_url else ""
    return f"S3 bucket {bucket!r}{endpoint}"


def storage_error(exc: Exception, where: str, doing: str) -> StorageError:
    """A boto error as a Viewfinder error that says what to fix; ``where`` names the bucket."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket"}:
            return StorageError(f"{where} does not exist (while {doing})")
        if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            return StorageError(
                f"access to {where} was denied (while {doing}): check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions"
            )
        return StorageError(f"{where} refused {doing}: {code or exc}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"no usable AWS credentials for {where}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or another source boto3 reads)"
        )
    if isinstance(exc, EndpointConnectionError):
        return StorageError(f"cannot reach {where} (while {doing}): {exc}")
    return StorageError(f"{where} failed while {doing}: {exc}")


def is_missing(exc: Exception) -> bool:
    """Whether a boto error says the object (not the bucket) does not exist."""
    from botocore.exceptions import ClientError

    return (
        isinstance(exc, ClientError)
        and str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES
    )


def clean_prefix(prefix: str) -> str:
    """``"a/b"`` and ``"/a/b/"`` both become ``"a/b/"``; an empty prefix stays empty."""
    parts = [p for p in prefix.strip().split("/") if p]
    if any(p in {".", ".."} for p in parts):
        raise StorageError(f"invalid S3 prefix {prefix!r}")
    return "/".join(parts) + "/" if parts else ""


class S3BlobStore:
    """Content-addressed blobs in one bucket; ``check()`` once before use."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = clean_prefix(prefix)
        self.endpoint_url = endpoint_url
        if client is None:
            client = self._make_client(endpoint_url, region)
        self._boto_errors = boto_errors()
        self._client = client

    @staticmethod
    def _make_client(endpoint_url: str | None, region: str | None) -> Any:
        return make_client(endpoint_url, region)

    # --- errors -----------------------------------------------------------------------------

    def _where(self) -> str:
        return bucket_description(self.bucket, self.endpoint_url)

    def _error(self, exc: Exception, doing: str) -> StorageError:
        return storage_error(exc, self._where(), doing)

    @staticmethod
    def _missing(exc: Exception) -> bool:
        return is_missing(exc)

    # --- the protocol ------------------------------------------------------------------------

    def check(self) -> None:
        """Fail now, with a clear message, if the bucket cannot be used."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except self._boto_errors as exc:
            raise self._error(exc, "checking the bucket at start-up") from exc

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _size(self, name: str) -> int | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=name)
        except self._boto_errors as exc:
            if self._missing(exc):
                return None
            raise self._error(exc, f"reading {name}") from exc
        size: int = head["ContentLength"]
        return size

    def put(self, key: str, data: bytes) -> None:
        name = self._key(key)
        if self._size(name) == len(data):
            return  # content-addressed: the same key already holds the same bytes
        media = "image/jpeg" if name.endswith(".jpg") else "application/octet-stream"
        try:
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data, ContentType=media)
        except self._boto_errors as exc:
            raise self._error(exc, f"writing {name}") from exc

    def get(self, key: str) -> bytes:
        name = self._key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            data: bytes = response["Body"].read()
        except self._boto_errors as exc:
            if self._missing(exc):
                raise NotFoundError(f"blob {key} is missing from the store") from None
            raise self._error(exc, f"reading {name}") from exc
        return data

    def exists(self, key: str) -> bool:
        return self._size(self._key(key)) is not None

    def delete(self, key: str) -> None:
        name = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)  # no error when absent
        except self._boto_errors as exc:
            raise self._error(exc, f"deleting {name}") from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def local_path(self, key: str) -> Path | None:
        check_key(key)
        return None
