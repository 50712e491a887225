"""Background processing: worker threads claim pending assets of one task kind from the database in
batches, run a model over them (so it sees real batches), and store each result with the task's
completion in one transaction. An interrupted run resumes after a restart without losing or
repeating work; a failing asset is retried a bounded number of times, then marked failed with its
error. What a kind computes and stores is its ``TaskProcessor``; the claiming loop is shared."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db import embeddings as embeddings_repo
from viewfinder.db import pauses as pauses_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.models import Asset, TaskState
from viewfinder.errors import ModelUnavailableError, OverloadedError
from viewfinder.imaging.budget import DEFAULT_DECODE_PIXEL_BUDGET, decode_budget
from viewfinder.imaging.decode import EMBED_MIN_SIDE, decode_image, kept_pixels
from viewfinder.library.stores import VectorStore
from viewfinder.models.caption import CaptionRequest
from viewfinder.runtime.pool import LoadedModel, ModelPool
from viewfinder.storage.blobs import BlobStore
from viewfinder.storage.originals import Originals

log = logging.getLogger(__name__)

EMBED_TASK = "embed"
CAPTION_TASK = "caption"
CLIP_MODEL = "clip"
# Errors that are not the asset's fault: the batch is given back and the worker backs off.
TRANSIENT = (ModelUnavailableError, OverloadedError)
# A paused worker (its model is not available) tries again this often, refreshing its pause
# row each time; a pause row not refreshed for PAUSE_STALE_S belongs to a worker that died.
PAUSE_RETRY_S = 10.0
PAUSE_STALE_S = 120.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_isolated(model: LoadedModel, items: Sequence[Any]) -> list[Any]:
    """Run items as one batch; if the batch fails, run them one by one so only the item that
    broke it fails (its exception takes its place in the result)."""
    try:
        return model.run_many(items)
    except TRANSIENT:
        raise
    except Exception:  # noqa: BLE001 - isolate the culprit
        outputs: list[Any] = []
        for item in items:
            try:
                outputs.append(model.run(item))
            except TRANSIENT:
                raise
            except Exception as exc:  # noqa: BLE001
                outputs.append(exc)
        return outputs


def enqueue_missing(sessions: sessionmaker[Session], kind: str) -> int:
    """Give a ``kind`` task to every asset that has none (stored before the kind was switched
    on, or while it was off); returns how many. Another process doing the same at the same
    moment (their inserts clash on the task's key) makes this one a no-op."""
    try:
        with sessions.begin() as session:
            return tasks_repo.enqueue_missing_tasks(session, kind)
    except IntegrityError:
        log.info("another process is queueing the %s tasks of earlier images", kind)
        return 0


class TaskProcessor(Protocol):
    kind: str
    # The shortest side (pixels) this processor needs of an image: originals are decoded no
    # larger (see ``decode_image``). None: full resolution (small faces need every pixel).
    min_side: int | None

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        """A result (or the Exception that replaced it) per asset; raises TRANSIENT errors."""
        ...

    def store(self, session: Session, asset_id: int, result: Any) -> None: ...

    def after_commit(self, results: dict[int, Any]) -> None: ...


class EmbeddingProcessor:
    """CLIP image embeddings, stored in the database and written to the vector store (in the
    same transaction for pgvector, after the commit for the others)."""

    kind = EMBED_TASK
    min_side: int | None = EMBED_MIN_SIDE

    def __init__(self, pool: ModelPool, index: VectorStore) -> None:
        self._pool = pool
        self._index = index

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        ids = list(images)
        with self._pool.lease("clip_image") as model:
            outputs = run_isolated(model, [images[i] for i in ids])
        return {
            i: out if isinstance(out, Exception) else np.asarray(out, dtype=np.float32)
            for i, out in zip(ids, outputs, strict=True)
        }

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        embeddings_repo.put_embedding(session, asset_id, CLIP_MODEL, result)
        self._index.write(session, np.array([asset_id], dtype=np.int64), result[np.newaxis, :])

    def after_commit(self, results: dict[int, Any]) -> None:
        if results:
            ids = np.fromiter(results.keys(), dtype=np.int64, count=len(results))
            self._index.add(ids, np.stack(list(results.values())))


class CaptionProcessor:
    """Captions stored on the asset, where text search finds them."""

    kind = CAPTION_TASK
    min_side: int | None = EMBED_MIN_SIDE  # above BLIP's 384-pixel input

    def __init__(self, pool: ModelPool, max_length: int = 50) -> None:
        self._pool = pool
        self._max_length = max_length

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        ids = list(images)
        requests = [CaptionRequest(images[i], self._max_length) for i in ids]
        with self._pool.lease("caption") as model:
            return dict(zip(ids, run_isolated(model, requests), strict=True))

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        asset = session.get(Asset, asset_id)
        if asset is not None:
            asset.caption = str(result)

    def after_commit(self, results: dict[int, Any]) -> None:
        return


class TaskWorker:
    """Claims and settles the tasks of one kind, on its own threads or the caller's."""

    def __init__(
        self,
        processor: TaskProcessor,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        *,
        batch_size: int = 32,
        batch_pixels: int = DEFAULT_DECODE_PIXEL_BUDGET,
        max_attempts: int = 3,
        poll_interval_s: float = 2.0,
        max_image_pixels: int = 50_000_000,
        originals: Originals | None = None,  # where originals are read: blobs, or in place
        lease_s: float = 600.0,
    ) -> None:
        self.processor = processor
        self.kind = processor.kind
        self._sessions = sessions
        self._blobs = blobs
        self._originals = originals or Originals(blobs)
        self._batch_size = batch_size
        self._batch_pixels = batch_pixels
        self._max_attempts = max_attempts
        self._poll_interval_s = poll_interval_s
        self._max_pixels = max_image_pixels
        self.name = worker_name()
        self.lease_s = lease_s  # a claim not renewed for this long belongs to a dead worker
        self._next_recovery = 0.0
        self.pause_retry_s = max(poll_interval_s, PAUSE_RETRY_S)
        self._paused = False  # this process recorded a pause of this kind
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- one batch ----------------------------------------------------------------------------

    def process_batch(self) -> int:
        """Claim, compute and store up to one batch; returns how many tasks it settled.

        A task that has used attempts already (its last batch failed, or killed its worker) is
        run alone: the rest of its claim goes straight back, so one poisonous image costs at
        most ``max_attempts`` single-item runs and never takes a batch of others down with it.
        While the batch runs its lease is renewed; a result whose claim was lost meanwhile (the
        lease expired and another worker took the task) is dropped, never written twice.

        A batch is also bounded by the pixels its images decode to (``batch_pixels``): the
        claims past it go straight back, so 32 claimed 49-megapixel scans are not held at once
        (the first image always stays, however big)."""
        claimant = f"{self.name}/{uuid.uuid4().hex[:8]}"
        with self._sessions.begin() as session:
            claimed = tasks_repo.claim_tasks(session, self.kind, claimant, self._batch_size)
            retried = [i for i, attempts in claimed.items() if attempts > 0]
            if retried and len(claimed) > 1:
                alone = retried[0]
                tasks_repo.release_tasks(
                    session, self.kind, claimant, [i for i in claimed if i != alone]
                )
                claimed = {alone: claimed[alone]}
            fitting = self._fitting(session, claimed)
            if len(fitting) < len(claimed):
                tasks_repo.release_tasks(
                    session, self.kind, claimant, [i for i in claimed if i not in fitting]
                )
                claimed = {i: claimed[i] for i in fitting}
        if not claimed:
            return 0
        try:
            with self._renewing(claimant):
                results, errors = self._compute(list(claimed))
            self._settle(claimant, results, errors)
        except BaseException:
            # Nothing was stored: the tasks go back now, not after a lease expires. (A worker
            # killed outright cannot do this; its lease expiring does it, counting an attempt.)
            with self._sessions.begin() as session:
                tasks_repo.release_tasks(session, self.kind, claimant)
            raise
        return len(claimed)

    def _fitting(self, session: Session, claimed: dict[int, int]) -> list[int]:
        """The claimed assets, in order, while the pixels they decode to fit
        ``batch_pixels`` (at least the first)."""
        sizes = assets_repo.sizes(session, list(claimed))
        fitting: list[int] = []
        total = 0
        for asset_id in claimed:  # ascending ids: the claim's order
            width, height = sizes.get(asset_id, (0, 0))  # deleted meanwhile: costs nothing
            pixels = kept_pixels(width, height, self.processor.min_side)
            if fitting and total + pixels > self._batch_pixels:
                break
            fitting.append(asset_id)
            total += pixels
        return fitting

    def _compute(self, asset_ids: list[int]) -> tuple[dict[int, Any], dict[int, str]]:
        with self._holding_full_size(asset_ids):
            images, errors = self._load(asset_ids)
            results = self.processor.compute(images) if images else {}
            del images  # the full-size decodes go before the budget is given back
        for asset_id, result in list(results.items()):
            if isinstance(result, Exception):
                errors[asset_id] = f"{self.kind} failed: {result}"
                del results[asset_id]
        return results, errors

    def _settle(self, claimant: str, results: dict[int, Any], errors: dict[int, str]) -> None:
        """Store the results and record the failures in one transaction, then tell the
        processor (the vector stores that write after the commit)."""
        with self._sessions.begin() as session:
            # Missing from ``done``: the asset was deleted meanwhile (its task went with it) or
            # the claim was lost; either way there is nothing to store.
            done = set(tasks_repo.complete_tasks(session, list(results), self.kind, claimant))
            for asset_id in list(results):
                if asset_id in done:
                    self.processor.store(session, asset_id, results[asset_id])
                else:
                    del results[asset_id]
            for asset_id, error in errors.items():
                try:
                    state = tasks_repo.fail_task(
                        session, asset_id, self.kind, error, self._max_attempts, claimant
                    )
                except LookupError:
                    continue
                log.warning("asset %d: %s (task now %s)", asset_id, error, state)
        self.processor.after_commit(results)

    @contextmanager
    def _holding_full_size(self, asset_ids: list[int]) -> Iterator[None]:
        """A processor that keeps full-resolution images (faces) holds the batch's pixels from
        the process's decode budget until it has computed, so its batch, concurrent requests and
        other workers never hold more than the budget at once (the decodes inside are covered by
        this hold). Smaller decodes hold the budget only while decoding: what they keep is
        small, and bounded by ``batch_pixels``."""
        if self.processor.min_side is not None:
            yield
            return
        with self._sessions() as session:
            sizes = assets_repo.sizes(session, asset_ids)
        with decode_budget().hold(sum(w * h for w, h in sizes.values())):
            yield

    @contextmanager
    def _renewing(self, claimant: str) -> Iterator[None]:
        """Renew the claim's lease every third of it while the block runs, so a long batch is
        not taken for the work of a dead worker."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_s / 3):
                try:
                    with self._sessions.begin() as session:
                        tasks_repo.renew_claims(session, self.kind, claimant)
                except Exception:
                    log.warning("could not renew the lease of %s", claimant, exc_info=True)

        renewer = threading.Thread(target=renew, name=f"{self.kind}-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()

    def _load(self, asset_ids: Sequence[int]) -> tuple[dict[int, Image.Image], dict[int, str]]:
        with self._sessions() as session:
            found = assets_repo.original_refs(session, asset_ids)
        images: dict[int, Image.Image] = {}
        errors: dict[int, str] = {}
        for asset_id in asset_ids:
            if asset_id not in found:
                continue  # deleted meanwhile; its task went with it
            try:
                # The original, decoded exactly as a query upload is, so the same bytes give
                # the same vector (a lossy preview would put an identical upload at distance > 0).
                data = self._originals.read(*found[asset_id])
                images[asset_id] = decode_image(
                    data, self._max_pixels, min_side=self.processor.min_side
                )
            except Exception as exc:  # noqa: BLE001 - recorded on the asset, never blocks others
                errors[asset_id] = f"cannot read image: {exc}"
        return images, errors

    # --- the loop -----------------------------------------------------------------------------

    def recover(self, lease_s: float) -> int:
        """Take back tasks whose worker died: those whose lease was last renewed more than
        ``lease_s`` ago (0: every running task, right for the embedded single process at
        start). Each counts as an attempt (see ``tasks_repo.requeue_stale``)."""
        with self._sessions.begin() as session:
            older_than = datetime.now(UTC) - timedelta(seconds=lease_s)
            return tasks_repo.requeue_stale(session, self.kind, older_than, self._max_attempts)

    def start(self, threads: int = 1, orphan_lease_s: float = 0.0) -> None:
        """Start ``threads`` claiming threads, after taking back the tasks of dead workers
        (``orphan_lease_s``: 0 in the embedded single process, where every running task at start
        is an orphan; the lease where other live workers share the queue). While they run,
        every live worker keeps taking back claims whose lease expired."""
        recovered = self.recover(orphan_lease_s)
        if recovered:
            log.info("requeued %d interrupted %s tasks", recovered, self.kind)
        self._stop.clear()
        self._next_recovery = time.monotonic() + self.lease_s / 4
        for n in range(threads):
            thread = threading.Thread(
                target=self._loop, name=f"{self.kind}-worker-{n}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; a batch in progress finishes and is stored. Then anything this
        process still holds (a thread that could not finish) goes back to the queue."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        with self._sessions.begin() as session:
            handed_back = tasks_repo.release_worker(session, self.kind, self.name)
            # A stopped worker is not paused: it waits for nothing.
            pauses_repo.clear_pause(session, self.kind, self.name)
        self._paused = False
        if handed_back:
            log.info("handed back %d %s tasks", handed_back, self.kind)

    def drain(self, timeout_s: float, on_remaining: Callable[[int], None] | None = None) -> bool:
        """Return once no work of this kind is pending or running (False on timeout). With
        worker threads running, wait for them; without, do the work on the calling thread.
        ``on_remaining`` hears how many tasks are still pending or running, before each batch
        and at the end (0), for a progress bar."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._sessions() as session:
                counts = tasks_repo.task_counts(session, self.kind)
            remaining = counts[TaskState.PENDING] + counts[TaskState.RUNNING]
            if on_remaining is not None:
                on_remaining(remaining)
            if remaining == 0:
                return True
            if self._threads:
                self._wake.set()
                self._stop.wait(0.05)
            elif self.process_batch() == 0:
                self._stop.wait(0.05)  # running elsewhere (another process): wait for it
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._recover_if_due()
            try:
                settled = self.process_batch()
            except ModelUnavailableError as exc:
                log.error("%s processing paused: %s", self.kind, exc)
                self._pause(f"model not available: {exc}")
                self._stop.wait(self.pause_retry_s)
                continue
            except OverloadedError as exc:  # backpressure, not a pause: the model works
                log.warning("%s processing backs off: %s", self.kind, exc)
                self._stop.wait(self.pause_retry_s)
                continue
            except Exception:
                log.exception("%s worker batch failed", self.kind)
                self._stop.wait(self._poll_interval_s)
                continue
            self._resume()
            if settled == 0:
                self._wake.wait(self._poll_interval_s)
                self._wake.clear()

    def _pause(self, reason: str) -> None:
        """Record in the database that this worker cannot work, and why (refreshed on each
        retry), so status and readiness in every process can say so."""
        self._paused = True
        try:
            with self._sessions.begin() as session:
                pauses_repo.record_pause(session, self.kind, self.name, reason)
        except Exception:
            log.warning("could not record the pause of %s processing", self.kind, exc_info=True)

    def _resume(self) -> None:
        """A batch went through (or there was nothing to do): no longer paused."""
        if not self._paused:
            return
        try:
            with self._sessions.begin() as session:
                pauses_repo.clear_pause(session, self.kind, self.name)
        except Exception:
            log.warning("could not clear the pause of %s processing", self.kind, exc_info=True)
            return
        self._paused = False
        log.info("%s processing resumed", self.kind)

    def _recover_if_due(self) -> None:
        """Every quarter lease, take back the claims of dead workers (any live worker does it;
        the UPDATE is idempotent, so several doing it at once is harmless)."""
        now = time.monotonic()
        if now < self._next_recovery:
            return
        self._next_recovery = now + self.lease_s / 4
        try:
            recovered = self.recover(self.lease_s)
        except Exception:
            log.warning("could not check for expired %s leases", self.kind, exc_info=True)
            return
        if recovered:
            log.warning("took back %d %s tasks of a worker that stopped", recovered, self.kind)
