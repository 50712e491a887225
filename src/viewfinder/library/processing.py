"""Background processing: worker threads claim pending assets from the database in batches, embed
them (so the model sees real batches), and store the embeddings with the task's completion in one
transaction. An interrupted run resumes after a restart without losing or repeating work; a failing
asset is retried a bounded number of times, then marked failed with its error."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import repository as repo
from viewfinder.db.models import TaskState
from viewfinder.errors import ModelUnavailableError, OverloadedError
from viewfinder.imaging.decode import decode_image
from viewfinder.library.vectors import LibraryIndex
from viewfinder.runtime.pool import ModelPool
from viewfinder.storage.blobs import BlobStore, original_key

log = logging.getLogger(__name__)

EMBED_TASK = "embed"
CLIP_MODEL = "clip"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class EmbeddingWorker:
    """Embeds pending assets with the CLIP image tower and adds them to the vector index."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        pool: ModelPool,
        index: LibraryIndex,
        *,
        batch_size: int = 32,
        max_attempts: int = 3,
        poll_interval_s: float = 2.0,
        max_image_pixels: int = 50_000_000,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._pool = pool
        self._index = index
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._poll_interval_s = poll_interval_s
        self._max_pixels = max_image_pixels
        self.name = worker_name()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- one batch ----------------------------------------------------------------------------

    def process_batch(self) -> int:
        """Claim, embed and store up to one batch; returns how many tasks it settled."""
        with self._sessions.begin() as session:
            claimed = repo.claim_tasks(session, EMBED_TASK, self.name, self._batch_size)
        if not claimed:
            return 0
        images, errors = self._load(claimed)
        try:
            vectors = self._embed(images)
        except (ModelUnavailableError, OverloadedError) as exc:
            # Not the assets' fault: give the tasks back untouched and let the caller back off.
            with self._sessions.begin() as session:
                for asset_id in claimed:
                    repo.enqueue_task(session, asset_id, EMBED_TASK)
            raise exc
        for asset_id, vector in list(vectors.items()):
            if isinstance(vector, Exception):
                errors[asset_id] = f"embedding failed: {vector}"
                del vectors[asset_id]
        with self._sessions.begin() as session:
            for asset_id, vector in list(vectors.items()):
                # complete_task is False when the asset was deleted meanwhile (its task went with
                # it): then there is nothing to store the embedding for.
                if repo.complete_task(session, asset_id, EMBED_TASK):
                    repo.put_embedding(session, asset_id, CLIP_MODEL, vector)
                else:
                    del vectors[asset_id]
            for asset_id, error in errors.items():
                state = repo.fail_task(session, asset_id, EMBED_TASK, error, self._max_attempts)
                log.warning("asset %d: %s (task now %s)", asset_id, error, state)
        if vectors:
            ids = np.fromiter(vectors.keys(), dtype=np.int64, count=len(vectors))
            self._index.add(ids, np.stack(list(vectors.values())))
        return len(claimed)

    def _load(self, asset_ids: Sequence[int]) -> tuple[dict[int, Image.Image], dict[int, str]]:
        with self._sessions() as session:
            shas = {i: a.sha256 for i in asset_ids if (a := repo.get_asset(session, i)) is not None}
        images: dict[int, Image.Image] = {}
        errors: dict[int, str] = {}
        for asset_id in asset_ids:
            if asset_id not in shas:
                continue  # deleted meanwhile; its task went with it
            try:
                # The original, decoded exactly as a query upload is, so the same bytes give
                # the same vector (a lossy preview would put an identical upload at distance > 0).
                data = self._blobs.get(original_key(shas[asset_id]))
                images[asset_id] = decode_image(data, self._max_pixels)
            except Exception as exc:  # noqa: BLE001 - recorded on the asset, never blocks others
                errors[asset_id] = f"cannot read image: {exc}"
        return images, errors

    def _embed(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        if not images:
            return {}
        model = self._pool.get("clip_image")
        ids = list(images)
        try:
            outputs = model.run_many([images[i] for i in ids])
        except (ModelUnavailableError, OverloadedError):
            raise
        except Exception:  # noqa: BLE001 - isolate the item that broke the batch
            outputs = []
            for i in ids:
                try:
                    outputs.append(model.run(images[i]))
                except (ModelUnavailableError, OverloadedError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    outputs.append(exc)
        return {
            i: out if isinstance(out, Exception) else np.asarray(out, dtype=np.float32)
            for i, out in zip(ids, outputs, strict=True)
        }

    # --- the loop -----------------------------------------------------------------------------

    def recover(self, lease_s: float) -> int:
        """Give back tasks left running by a process that died: those claimed more than
        ``lease_s`` ago (0: every running task, right for the embedded single process)."""
        with self._sessions.begin() as session:
            older_than = datetime.now(UTC) - timedelta(seconds=lease_s)
            return repo.requeue_stale(session, EMBED_TASK, older_than)

    def start(self, threads: int = 1, lease_s: float = 0.0) -> None:
        recovered = self.recover(lease_s)
        if recovered:
            log.info("requeued %d interrupted embedding tasks", recovered)
        for n in range(threads):
            thread = threading.Thread(target=self._loop, name=f"embed-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._index.save()

    def drain(self, timeout_s: float) -> bool:
        """Return once no embedding work is pending or running (False on timeout). With worker
        threads running, wait for them; without, do the work on the calling thread."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._sessions() as session:
                counts = repo.task_counts(session, EMBED_TASK)
            if counts[TaskState.PENDING] == 0 and counts[TaskState.RUNNING] == 0:
                return True
            if self._threads:
                self._wake.set()
                self._stop.wait(0.05)
            elif self.process_batch() == 0:
                self._stop.wait(0.05)  # running elsewhere (another process): wait for it
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                settled = self.process_batch()
            except (ModelUnavailableError, OverloadedError) as exc:
                log.error("embedding paused: %s", exc)
                self._stop.wait(max(self._poll_interval_s, 10.0))
                continue
            except Exception:
                log.exception("embedding worker batch failed")
                self._stop.wait(self._poll_interval_s)
                continue
            if settled == 0:
                self._index.save_if_due()
                self._wake.wait(self._poll_interval_s)
                self._wake.clear()
