"""Which server folders and S3 buckets an API caller may make Viewfinder read.

Reading a server path on a caller's behalf is a file-read primitive, so it is off until
``VIEWFINDER_IMPORT_ROOTS`` names the folders that may be read; reading a bucket with the server's
AWS credentials is the same, so it is off until ``VIEWFINDER_IMPORT_BUCKETS`` names the buckets.
The CLI runs as the operator at the console and is not limited.
"""

from __future__ import annotations

from pathlib import Path

from viewfinder.errors import InvalidInputError
from viewfinder.storage.s3_source import S3Location, parse_s3_url


def allowed_server_folder(path: str, allowed: list[Path]) -> Path:
    """``path`` resolved (symlinks and ``..`` followed), if it is a folder inside one of
    ``allowed``; otherwise ``InvalidInputError`` saying what to set or fix."""
    if not allowed:
        raise InvalidInputError(
            "reading server folders over the API is off: set VIEWFINDER_IMPORT_ROOTS to the "
            "server folders that may be read (or use the viewfinder CLI on the server)"
        )
    root = Path(path).expanduser().resolve()
    if not any(root.is_relative_to(base.expanduser().resolve()) for base in allowed):
        raise InvalidInputError(f"{path!r} is not inside VIEWFINDER_IMPORT_ROOTS")
    if not root.is_dir():
        raise InvalidInputError(f"{path!r} is not a folder on the server")
    return root


def allowed_bucket(url: str, allowed: list[str]) -> S3Location:
    """``s3://bucket/prefix`` parsed, if the bucket is one of ``allowed``; otherwise
    ``InvalidInputError`` saying what to set."""
    location = parse_s3_url(url)
    if not allowed:
        raise InvalidInputError(
            "indexing S3 buckets over the API is off: set VIEWFINDER_IMPORT_BUCKETS to the "
            "buckets that may be read (or use `viewfinder index s3://...` on the server)"
        )
    if location.bucket not in allowed:
        raise InvalidInputError(f"bucket {location.bucket!r} is not in VIEWFINDER_IMPORT_BUCKETS")
    return location
