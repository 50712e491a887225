"""Reading the library's images: one asset with its processing state, pages of them, their stored
files (original, thumbnail, preview), and the folders they are in."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import faces as faces_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.assets import AssetOrder, Granularity
from viewfinder.db.models import Asset, Face
from viewfinder.errors import InvalidInputError, NotFoundError
from viewfinder.library.metadata import CameraFacts, camera_facts
from viewfinder.library.processing import EMBED_TASK
from viewfinder.storage.blobs import BlobStore, preview_key, thumbnail_key
from viewfinder.storage.originals import Originals

FileKind = Literal["file", "thumbnail", "preview"]


@dataclass(frozen=True)
class AssetView:
    asset: Asset
    processing: dict[str, str]  # task kind -> state (the embedding's, today)


@dataclass(frozen=True)
class TimelineBucket:
    key: str  # "2024-05" (month) or "2024-05-31" (day), UTC
    count: int
    offset: int  # where the bucket's first asset is in the page order it was built for


@dataclass
class FolderNode:
    """One folder of the tree: ``path`` as stored ("" the root; "/"-separated, compared
    exactly: "Nature" and "nature" are two folders), its own assets, and those below it too."""

    name: str
    path: str
    count: int = 0
    total: int = 0
    children: list[FolderNode] = field(default_factory=list)


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
        order: AssetOrder = "id",
    ) -> tuple[list[Asset], int]:
        """A page of the assets matching the filters in ``order`` (``id``: as added; ``newest``
        / ``oldest``: by capture time, else upload time, then id), and how many match in all."""
        with self._sessions() as s:
            items = assets_repo.list_assets(
                s,
                limit=limit,
                offset=offset,
                folder=folder,
                include_subfolders=include_subfolders,
                captured_from=captured_from,
                captured_to=captured_to,
                order=order,
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

    def timeline(
        self,
        granularity: Granularity = "month",
        order: AssetOrder = "newest",
        folder: str | None = None,
        include_subfolders: bool = True,
    ) -> list[TimelineBucket]:
        """Assets per month or day of capture (else upload) time, in the order of a ``newest``
        or ``oldest`` page, each with the offset of its first asset in that page order: a
        timeline scrubber jumps with ``GET /api/v1/assets?sort=...&offset=...``."""
        if order == "id":
            raise InvalidInputError("a timeline follows capture dates: sort 'newest' or 'oldest'")
        with self._sessions() as s:
            rows = assets_repo.timeline(
                s,
                granularity,
                newest_first=order == "newest",
                folder=folder,
                include_subfolders=include_subfolders,
            )
        buckets, offset = [], 0
        for key, count in rows:
            buckets.append(TimelineBucket(key, count, offset))
            offset += count
        return buckets

    def folder_tree(self) -> FolderNode:
        """Every folder that holds assets, with the folders above them, as one tree from the
        root; children sorted by name (code point order: case-sensitive)."""
        root = FolderNode("", "")
        nodes = {"": root}
        with self._sessions() as s:
            counts = assets_repo.folder_counts(s)
        for path, count in counts:
            node, parts = root, [p for p in path.split("/") if p] if path else []
            for depth in range(len(parts)):
                sub = "/".join(parts[: depth + 1])
                child = nodes.get(sub)
                if child is None:
                    child = nodes[sub] = FolderNode(parts[depth], sub)
                    node.children.append(child)
                node = child
            node.count += count
        _totals(root)
        return root

    def metadata(self, asset_id: int) -> tuple[AssetView, CameraFacts]:
        """The asset with its processing states, and the EXIF its original carries (read from
        the file's header on each call: nothing extra is stored at ingest)."""
        view = self.get(asset_id)
        stored = self.stored_file(asset_id, "file")
        if stored.path is not None:
            return view, camera_facts(stored.path)
        return view, camera_facts(io.BytesIO(stored.read()))

    def faces(self, asset_id: int) -> list[tuple[Face, str | None]]:
        """The faces found in an asset, each with the name of its person (None: unnamed)."""
        with self._sessions() as s:
            self._asset(s, asset_id)
            return faces_repo.named_faces_of_asset(s, asset_id)

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


def _totals(node: FolderNode) -> int:
    node.children.sort(key=lambda c: c.name)
    node.total = node.count + sum(_totals(child) for child in node.children)
    return node.total
