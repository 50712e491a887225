"""Indexing an S3 bucket where it is: ``s3://bucket/prefix`` listed page by page, each new image
downloaded once to hash it and render its thumbnail and preview, and stored as an asset whose
original stays in the bucket (``Asset.original_uri``), so a bucket of millions of images is
indexed without a second copy of it.

Folders are the keys' directories, as seed 002 organised its bucket: ``nature/birds/heron.jpg``
is in folder ``nature/birds`` whatever prefix was listed. What is known is skipped with one query
per listed page, before any download, so a re-run costs the listing and nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.errors import StorageError, ViewfinderError
from viewfinder.imaging.sniff import IMAGE_SUFFIXES
from viewfinder.library.ingest import (
    NOT_AN_IMAGE_NAME,
    FolderReport,
    IngestResult,
    IngestService,
    clean_folder,
)
from viewfinder.storage.s3_source import (
    LIST_PAGE_SIZE,
    BucketObject,
    S3Location,
    S3Objects,
    object_uri,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Todo:
    key: str
    uri: str
    folder: str


def folder_of(key: str, prefix: str = "") -> str:
    """The folder of an object: its key's directory, under an optional label prefix."""
    directory = key.rsplit("/", 1)[0] if "/" in key else ""
    return clean_folder("/".join(p for p in (prefix, directory) if p))


class BucketImporter:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        ingest: IngestService,
        objects: S3Objects,
        max_bytes: int,
        threads: int = 4,
    ) -> None:
        self._sessions = sessions
        self._ingest = ingest
        self.objects = objects
        self._max_bytes = max_bytes
        self._threads = threads

    def ingest(
        self,
        location: S3Location,
        folder_prefix: str = "",
        *,
        copy: bool = False,
        page_size: int = LIST_PAGE_SIZE,
        progress: Callable[[FolderReport], None] = lambda _: None,
    ) -> FolderReport:
        """Every image under ``location``: referenced in place, or with ``copy`` copied into the
        blob store (then ``source_url`` records the object). Known objects count as existing."""
        prefix = clean_folder(folder_prefix)
        report = FolderReport()
        with ThreadPoolExecutor(self._threads, thread_name_prefix="bucket-import") as pool:
            for page in self.objects.pages(location, page_size):
                files = [o for o in page if not o.key.endswith("/")]  # "folder" marker objects
                uris = [object_uri(location.bucket, o.key) for o in files]
                known = self._known(uris, copy)
                todo: list[_Todo] = []
                for item, uri in zip(files, uris, strict=True):
                    if uri in known:
                        report.existing += 1
                    elif reason := self._refusal(item):
                        report.skipped.append((item.key, reason))
                    else:
                        try:
                            todo.append(_Todo(item.key, uri, folder_of(item.key, prefix)))
                        except ViewfinderError as exc:  # a folder label that cannot be stored
                            report.skipped.append((item.key, str(exc)))
                progress(report)
                # Downloads and decoding overlap on the pool; results are counted in key order.
                for todo_item, outcome in zip(
                    todo, pool.map(lambda t: self._one(location.bucket, t, copy), todo), strict=True
                ):
                    if isinstance(outcome, str):
                        report.skipped.append((todo_item.key, outcome))
                        log.info("skipped %s: %s", todo_item.uri, outcome)
                    elif outcome.created:
                        report.created += 1
                    else:
                        report.existing += 1
                    progress(report)
        return report

    def _known(self, uris: Sequence[str], copy: bool) -> set[str]:
        """Which of a page's objects are already assets: one query, on ``original_uri`` (in
        place, indexed) or ``source_url`` (copies)."""
        if not uris:
            return set()
        with self._sessions() as session:
            return assets_repo.known_uris(session, uris, "source_url" if copy else "original_uri")

    def _refusal(self, item: BucketObject) -> str | None:
        if "\x00" in item.key:  # legal in a key, but no database stores it in text
            return "the key contains a NUL character"
        # A key is only downloaded when its name says image: other objects cost nothing.
        if PurePosixPath(item.key).suffix.lower() not in IMAGE_SUFFIXES:
            return NOT_AN_IMAGE_NAME
        if item.size > self._max_bytes:
            return (
                f"{item.size} bytes, over the {self._max_bytes} byte limit "
                "(VIEWFINDER_MAX_DOWNLOAD_BYTES)"
            )
        return None

    def _one(self, bucket: str, item: _Todo, copy: bool) -> IngestResult | str:
        """Download and ingest one object; a failure is its reason, never the whole run's.
        StorageError (bucket gone, access denied) stops the run: every other object would fail
        the same way."""
        try:
            data = self.objects.read(bucket, item.key, self._max_bytes)
            name = item.key.rsplit("/", 1)[-1]
            if copy:
                return self._ingest.ingest_bytes(data, name, item.folder, source_url=item.uri)
            return self._ingest.ingest_bytes(data, name, item.folder, original_uri=item.uri)
        except StorageError:
            raise
        except ViewfinderError as exc:
            return str(exc)
