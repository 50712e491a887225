"""Reading the library's images: one asset with its processing state, pages of them, their stored
files (original, thumbnail, preview), and the folders they are in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.models import Asset
from viewfinder.errors import NotFoundError
from viewfinder.library.processing import EMBED_TASK
from viewfinder.storage.blobs import BlobStore, preview_key, thumbnail_key
from viewfinder.storage.originals import Originals

FileKind = Literal["file", "thumbnail", "preview"]


@dataclass(frozen=True)
class AssetView:
    asset: Asset
    processing: dict[str, str]  # task kind -> state (the embedding's, today)


@dataclass(frozen=True)
class StoredFile:
    """Where a file's bytes are: a local path to stream, else ``read`` (a bucket object)."""

    path: Path | None
    read: Callable[[], bytes]
    media_type: str


class AssetService:
    def __init__(
        self, sessions: sessionmaker[Session], blobs: BlobStore, originals: Originals
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._originals = originals

    def get(self, asset_id: int) -> AssetView:
        return self.views([asset_id])[0]

    def views(self, asset_ids: Sequence[int]) -> list[AssetView]:
        """The assets in the order given, each with its embedding state, in one session."""
        views = []
        with self._sessions() as s:
            for asset_id in asset_ids:
                asset = self._asset(s, asset_id)
                task = tasks_repo.task_state(s, asset_id, EMBED_TASK)
                views.append(AssetView(asset, {EMBED_TASK: task.state} if task else {}))
        return views

    def page(
        self,
        limit: int,
        offset: int,
        folder: str | None = None,
        include_subfolders: bool = True,
        captured_from: datetime | None = None,
        captured_to: datetime | None = None,
    ) -> tuple[list[Asset], int]:
        """A page of the assets matching the filters (by id), and how many match in all."""
        with self._sessions() as s:
            items = assets_repo.list_assets(
                s,
                limit=limit,
                offset=offset,
                folder=folder,
                include_subfolders=include_subfolders,
                captured_from=captured_from,
                captured_to=captured_to,
            )
            total = assets_repo.count_assets(
                s,
                folder=folder,
                include_subfolders=include_subfolders,
                captured_from=captured_from,
                captured_to=captured_to,
            )
        return items, total

    def stored_file(self, asset_id: int, which: FileKind) -> StoredFile:
        """The original (from the blob store, or the bucket it was indexed in place from), or
        the JPEG thumbnail or preview; NotFoundError when the asset or the file is gone."""
        with self._sessions() as s:
            asset = self._asset(s, asset_id)
        missing = f"the {which} of asset {asset_id} is missing from storage"
        if which == "file":
            path = self._originals.local_path(asset.sha256, asset.original_uri)
            read = partial(self._originals.read, asset.sha256, asset.original_uri)
            media_type = asset.content_type
        else:
            key = thumbnail_key(asset.sha256) if which == "thumbnail" else preview_key(asset.sha256)
            path = self._blobs.local_path(key)
            read = partial(self._blobs.get, key)
            media_type = "image/jpeg"
        if path is not None and not path.is_file():
            raise NotFoundError(missing)

        def read_or_missing() -> bytes:
            try:
                return read()
            except NotFoundError:
                raise NotFoundError(missing) from None

        return StoredFile(path, read_or_missing, media_type)

    def folders(self) -> list[str]:
        with self._sessions() as s:
            return assets_repo.folders(s)

    def processing_counts(self, kind: str = EMBED_TASK) -> dict[str, int]:
        with self._sessions() as s:
            return tasks_repo.task_counts(s, kind)

    @staticmethod
    def _asset(s: Session, asset_id: int) -> Asset:
        asset = assets_repo.get_asset(s, asset_id)
        if asset is None:
            raise NotFoundError(f"asset {asset_id} does not exist")
        return asset
