"""Ingest: bytes, a URL or a server-side folder become assets.

The order of writes makes a crash harmless: blobs first (content-addressed, atomic), then the asset
row and its pending processing tasks in one transaction. A crash before the commit leaves at most an
unreferenced blob that the same bytes will reuse; a committed row always has its files. The row is
added under the content's lock, after checking the blobs are still there: a delete of an earlier
asset with the same bytes may have removed them since they were written (``db.content_lock``)."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db.content_lock import lock_content
from viewfinder.db.models import Asset
from viewfinder.errors import InvalidInputError, TooLargeError, ViewfinderError
from viewfinder.imaging.decode import decode_image, upright_size_of
from viewfinder.imaging.fetch import FetchPolicy, fetch_image_bytes
from viewfinder.imaging.sniff import is_not_an_image
from viewfinder.library.metadata import (
    PREVIEW_SIZE,
    ImageFacts,
    image_facts,
    preview_and_thumbnail,
)
from viewfinder.storage.blobs import BlobStore, original_key, preview_key, thumbnail_key

log = logging.getLogger(__name__)

MAX_FOLDER_LENGTH = 1024
# Why a file that is plainly no image was skipped (a README, a CSV, a sidecar .txt): a folder's
# own content, not a problem, so the CLI counts these in one line instead of naming each.
NOT_AN_IMAGE = "not an image (neither its name nor its first bytes are an image format's)"
NOT_AN_IMAGE_NAME = "not an image file name (no image extension)"  # bucket keys: by name only
NOT_IMAGE_REASONS = frozenset({NOT_AN_IMAGE, NOT_AN_IMAGE_NAME})


@dataclass(frozen=True)
class IngestResult:
    asset: Asset
    created: bool  # False: the same bytes were already an asset


@dataclass(frozen=True)
class PreparedImage:
    """A decoded upload, ready to store: the bytes and what was derived from them."""

    data: bytes
    sha256: str
    filename: str
    width: int
    height: int
    facts: ImageFacts
    thumbnail: bytes
    preview: bytes


@dataclass
class FolderReport:
    created: int = 0
    existing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)

    @property
    def seen(self) -> int:
        return self.created + self.existing + len(self.skipped)

    @property
    def not_images(self) -> list[str]:
        """The skipped files that are no images at all (READMEs, CSVs, ...)."""
        return [path for path, why in self.skipped if why in NOT_IMAGE_REASONS]

    @property
    def problems(self) -> list[tuple[str, str]]:
        """The skipped files that looked like images but could not be stored, with why."""
        return [(path, why) for path, why in self.skipped if why not in NOT_IMAGE_REASONS]


def clean_folder(folder: str) -> str:
    """A folder label as stored: "/"-separated, no empty, "." or ".." parts, no leading slash."""
    parts = [p for p in folder.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInputError(f"folder {folder!r} may not contain '..'")
    cleaned = "/".join(parts)
    if len(cleaned) > MAX_FOLDER_LENGTH or any(ord(c) < 32 for c in cleaned):
        raise InvalidInputError("folder is too long or contains control characters")
    return cleaned


def clean_filename(filename: str) -> str:
    """An uploaded file's name as stored: its last part, without control characters (a NUL
    cannot be stored in PostgreSQL text), at most 512 characters; "upload" when nothing is left."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    return "".join(c for c in name if ord(c) >= 32)[:512] or "upload"


class IngestService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        fetch_policy: FetchPolicy,
        max_image_pixels: int,
        task_kinds: tuple[str, ...],
        on_new_assets: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._fetch_policy = fetch_policy
        self._max_pixels = max_image_pixels
        self._task_kinds = task_kinds
        self._on_new_assets = on_new_assets

    def ingest_bytes(
        self,
        data: bytes,
        filename: str,
        folder: str = "",
        source_url: str | None = None,
        original_uri: str | None = None,
    ) -> IngestResult:
        """Store one image; non-images raise InvalidImageError and leave nothing behind. With
        ``original_uri`` (``s3://bucket/key``) the original stays there: only its thumbnail and
        preview are stored, and it is read from there when needed."""
        folder = clean_folder(folder)
        sha = hashlib.sha256(data).hexdigest()
        existing = self._existing(sha)
        if existing is not None:
            return IngestResult(existing, created=False)
        return self._store(self._prepare(data, sha, filename), folder, source_url, original_uri)

    def ingest_many(self, files: list[tuple[str, bytes]], folder: str = "") -> list[IngestResult]:
        """Store several uploaded images, all or none as far as the input goes: every new file is
        decoded (and its thumbnails rendered) before any is stored, so one bad file refuses the
        request, naming the file, with nothing stored."""
        folder = clean_folder(folder)
        pending: list[Asset | PreparedImage] = []
        for number, (filename, data) in enumerate(files, start=1):
            sha = hashlib.sha256(data).hexdigest()
            existing = self._existing(sha)
            if existing is not None:
                pending.append(existing)
                continue
            try:
                pending.append(self._prepare(data, sha, filename))
            except (InvalidInputError, TooLargeError) as exc:
                raise type(exc)(f"file {number} ({clean_filename(filename)!r}): {exc}") from None
        return [
            IngestResult(item, created=False)
            if isinstance(item, Asset)
            else self._store(item, folder, None)
            for item in pending
        ]

    def _existing(self, sha: str) -> Asset | None:
        with self._sessions() as session:
            return assets_repo.get_asset_by_sha(session, sha)

    def _prepare(self, data: bytes, sha: str, filename: str) -> PreparedImage:
        """Everything an asset needs, computed in memory; raises before anything is written."""
        # Decoded no larger than the preview needs (JPEG DCT scaling): PREVIEW_SIZE on the
        # longest side. The stored original keeps every pixel; its size comes from the header.
        width, height = upright_size_of(data)
        needed = math.ceil(PREVIEW_SIZE * min(width, height) / max(width, height, 1))
        image = decode_image(data, self._max_pixels, min_side=max(needed, 1))
        preview, thumbnail = preview_and_thumbnail(image)
        return PreparedImage(
            data=data,
            sha256=sha,
            filename=clean_filename(filename),
            width=width,
            height=height,
            facts=image_facts(data),
            thumbnail=thumbnail,
            preview=preview,
        )

    def _store(
        self,
        item: PreparedImage,
        folder: str,
        source_url: str | None,
        original_uri: str | None = None,
    ) -> IngestResult:
        sha = item.sha256
        files = [(thumbnail_key(sha), item.thumbnail), (preview_key(sha), item.preview)]
        if original_uri is None:
            files.insert(0, (original_key(sha), item.data))
        for key, data in files:  # the slow writes, outside the lock
            self._blobs.put(key, data)
        asset = Asset(
            sha256=sha,
            original_filename=item.filename,
            folder=folder,
            content_type=item.facts.content_type,
            size_bytes=len(item.data),
            width=item.width,
            height=item.height,
            captured_at=item.facts.captured_at,
            source_url=source_url,
            original_uri=original_uri,
        )
        try:
            with self._sessions.begin() as session:
                lock_content(session, sha)
                for key, data in files:
                    if not self._blobs.exists(key):  # removed by a delete of the same bytes
                        self._blobs.put(key, data)
                assets_repo.add_asset(session, asset, self._task_kinds)
        except IntegrityError:  # the same bytes arrived concurrently: theirs won
            with self._sessions() as session:
                winner = assets_repo.get_asset_by_sha(session, sha)
            if winner is None:
                raise
            return IngestResult(winner, created=False)
        self._on_new_assets()
        return IngestResult(asset, created=True)

    def ingest_url(self, url: str, folder: str = "") -> IngestResult:
        data = fetch_image_bytes(url, self._fetch_policy)
        name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
        return self.ingest_bytes(data, name, folder, source_url=url)

    def ingest_folder(
        self,
        root: Path,
        prefix: str = "",
        progress: Callable[[FolderReport], None] = lambda _: None,
    ) -> FolderReport:
        """Every image file under ``root``; folder = prefix + path relative to ``root``. Files
        that are plainly no images (``imaging.sniff.is_not_an_image``: a README, a CSV) are
        skipped as ``NOT_AN_IMAGE`` without being read whole."""
        prefix = clean_folder(prefix)
        root = root.resolve()
        report = FolderReport()
        for path in iter_image_files(root):
            relative = path.relative_to(root)
            folder = "/".join(p for p in (prefix, relative.parent.as_posix()) if p not in ("", "."))
            if is_not_an_image(path):
                report.skipped.append((relative.as_posix(), NOT_AN_IMAGE))
                progress(report)
                continue
            try:
                result = self.ingest_bytes(path.read_bytes(), path.name, folder)
            except (ViewfinderError, OSError) as exc:
                report.skipped.append((relative.as_posix(), str(exc)))
                log.info("skipped %s: %s", path, exc)
            else:
                if result.created:
                    report.created += 1
                else:
                    report.existing += 1
            progress(report)
        return report


def iter_image_files(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` in a stable order, skipping hidden entries and symlinks that
    lead outside ``root`` (a folder import must not become a way to read other directories)."""
    base = root.resolve()
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                continue
            if path.is_file():
                yield path
