"""Deleting an asset: its row (its tasks, embeddings and faces go with it), its vector, and its
blobs unless another row refers to them by then (see ``db.content_lock``)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db.content_lock import lock_content
from viewfinder.errors import NotFoundError
from viewfinder.library.stores import VectorStore
from viewfinder.storage.blobs import BlobStore, original_key, preview_key, thumbnail_key


def delete_asset(
    sessions: sessionmaker[Session], index: VectorStore, blobs: BlobStore, asset_id: int
) -> None:
    with sessions.begin() as session:
        asset = assets_repo.get_asset(session, asset_id)
        if asset is None:
            raise NotFoundError(f"asset {asset_id} does not exist")
        sha = asset.sha256
        assets_repo.delete_asset(session, asset_id)
    index.remove(np.array([asset_id], dtype=np.int64))
    remove_unreferenced_blobs(sessions, blobs, sha)


def remove_unreferenced_blobs(sessions: sessionmaker[Session], blobs: BlobStore, sha: str) -> bool:
    """Remove the blobs of the content ``sha`` unless an asset refers to it; True if removed.
    A crash part way leaves blobs without a row, which the same bytes reuse or rewrite."""
    with sessions.begin() as session:
        lock_content(session, sha)
        if assets_repo.get_asset_by_sha(session, sha) is not None:
            return False  # uploaded again since the row was deleted: the blobs are its files
        for key in (original_key(sha), thumbnail_key(sha), preview_key(sha)):
            blobs.delete(key)
    return True
