"""Faces of library assets: detect, align, assess and embed every face of an image, and store
them as ``Face`` rows (the ``faces`` task kind), plus the backfill of assets stored before.

The per-image steps are the pure ones of ``faces.align`` and ``faces.quality``; this module only
runs the models through the pool (all faces of a worker batch embedded in one ``run_many``) and
hands the results to ``db.faces``."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import faces as face_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.faces import NewFace
from viewfinder.db.models import Face, TaskState
from viewfinder.faces.align import align_face, as_rgb_array
from viewfinder.faces.organize import OrganizePolicy
from viewfinder.faces.quality import assess_face, is_clusterable
from viewfinder.library.processing import TaskWorker, run_isolated
from viewfinder.models.nms import iou
from viewfinder.models.types import Detection
from viewfinder.runtime.pool import ModelPool
from viewfinder.settings import Settings

log = logging.getLogger(__name__)

FACES_TASK = "faces"
FACE_DETECTOR = "face_detector"
FACE_RECOGNIZER = "face_recognizer"
THUMBNAIL_JPEG_QUALITY = 90
# A re-detected face overlapping an old one this much is the same face: it keeps its person.
SAME_FACE_IOU = 0.5


@dataclass(frozen=True)
class FaceThresholds:
    """Which stored faces are clusterable: big enough, good enough, and surely a face."""

    min_size_px: float
    min_quality: float
    min_detection_score: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FaceThresholds:
        return cls(
            settings.face_min_size_px, settings.face_min_quality, settings.face_cluster_min_score
        )


@dataclass(frozen=True)
class AlignedFace:
    detection: Detection
    landmarks: tuple[tuple[float, float], ...]
    aligned: NDArray[np.uint8]


class FaceProcessor:
    """TaskProcessor of the ``faces`` kind: the result per asset is its list of ``NewFace``."""

    kind = FACES_TASK
    min_side: int | None = None  # small faces need every pixel

    def __init__(
        self,
        pool: ModelPool,
        thresholds: FaceThresholds,
        organizing: OrganizePolicy | None = None,
    ) -> None:
        self._pool = pool
        self._thresholds = thresholds
        self._organizing = organizing

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        ids = list(images)
        with self._pool.lease(FACE_DETECTOR) as detector:
            found = run_isolated(detector, [images[i] for i in ids])
        results: dict[int, Any] = {}
        aligned: dict[int, list[AlignedFace]] = {}
        for asset_id, detections in zip(ids, found, strict=True):
            if isinstance(detections, Exception):
                results[asset_id] = detections
                continue
            try:
                aligned[asset_id] = align_all(images[asset_id], detections)
            except Exception as exc:  # noqa: BLE001 - one odd image never fails the batch
                results[asset_id] = exc
        crops = [face.aligned for faces in aligned.values() for face in faces]
        # The recogniser is loaded only once a face turns up: a library without faces (or a
        # test on plain colours) never needs its weights.
        embeddings: list[Any] = []
        if crops:
            with self._pool.lease(FACE_RECOGNIZER) as recognizer:
                embeddings = run_isolated(recognizer, crops)
        position = 0
        for asset_id, faces in aligned.items():
            vectors = embeddings[position : position + len(faces)]
            position += len(faces)
            failure = next((v for v in vectors if isinstance(v, Exception)), None)
            if failure is not None:
                results[asset_id] = failure
                continue
            results[asset_id] = [
                self._new_face(face, np.asarray(vector, dtype=np.float32))
                for face, vector in zip(faces, vectors, strict=True)
            ]
        return results

    def _new_face(self, face: AlignedFace, embedding: NDArray[np.float32]) -> NewFace:
        quality = assess_face(face.detection, face.aligned)
        clusterable = (
            is_clusterable(quality, self._thresholds.min_size_px, self._thresholds.min_quality)
            and face.detection.score >= self._thresholds.min_detection_score
        )
        return NewFace(
            box=face.detection.box,
            landmarks=face.landmarks,
            detection_score=face.detection.score,
            quality=quality.score,
            clusterable=clusterable,
            embedding=embedding,
            thumbnail=jpeg_bytes(face.aligned),
        )

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        """Replace the asset's faces, so processing it again never duplicates them; a face found
        again at the same place keeps its person and cluster (a manual label survives). When a
        clusterable face is new, the organise job is scheduled in the same transaction."""
        previous = face_repo.faces_of_asset(session, asset_id)
        face_repo.delete_faces_of_asset(session, asset_id)
        stored = face_repo.add_faces(session, asset_id, result)
        for face in stored:
            match = best_overlap(face, previous)
            if match is not None:
                face.person_id = match.person_id
                face.person_source = match.person_source
                face.match_score = match.match_score
                face.cluster_id = match.cluster_id
        session.flush()
        if self._organizing is not None and any(
            face.clusterable and face.person_source is None and face.cluster_id is None
            for face in stored
        ):
            self._organizing.schedule(session)

    def after_commit(self, results: dict[int, Any]) -> None:
        return


def align_all(image: Image.Image, detections: list[Detection]) -> list[AlignedFace]:
    """Every detection with landmarks, warped onto the recogniser's template. A detection
    without landmarks cannot be aligned, and an unaligned crop gives a meaningless embedding."""
    if all(detection.landmarks is None for detection in detections):
        return []  # no full-size array copy for an image without alignable faces
    rgb = as_rgb_array(image)  # convert once, not per face
    faces = []
    for detection in detections:
        if detection.landmarks is None:
            log.debug("skipping a face without landmarks at %s", detection.box)
            continue
        faces.append(
            AlignedFace(detection, detection.landmarks, align_face(rgb, detection.landmarks))
        )
    return faces


def jpeg_bytes(aligned: NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(aligned).save(out, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY)
    return out.getvalue()


def best_overlap(face: Face, previous: list[Face]) -> Face | None:
    """The old face at the same place as ``face`` (IoU >= ``SAME_FACE_IOU``), if any."""
    if not previous:
        return None
    box = np.array([face.x1, face.y1, face.x2, face.y2], dtype=np.float64)
    others = np.array([[p.x1, p.y1, p.x2, p.y2] for p in previous], dtype=np.float64)
    overlaps = iou(box, others)
    best = int(np.argmax(overlaps))
    return previous[best] if overlaps[best] >= SAME_FACE_IOU else None


@dataclass(frozen=True)
class BackfillReport:
    processed: int  # faces tasks settled by this run (backfilled and previously pending ones)
    failed: int  # faces tasks failed for good, library-wide
    faces: int  # faces stored, library-wide


def enqueue_backfill(sessions: sessionmaker[Session], limit: int | None = None) -> int:
    """Give a pending faces task to up to ``limit`` assets that have none; returns how many."""
    with sessions.begin() as session:
        return tasks_repo.enqueue_missing_tasks(session, FACES_TASK, limit)


def unsettled_faces_tasks(sessions: sessionmaker[Session]) -> int:
    """Faces tasks pending or running: the work a backfill run will wait for."""
    with sessions() as session:
        counts = tasks_repo.task_counts(session, FACES_TASK)
    return counts[TaskState.PENDING] + counts[TaskState.RUNNING]


def run_backfill(
    worker: TaskWorker,
    sessions: sessionmaker[Session],
    on_progress: Callable[[int], None] | None = None,
) -> BackfillReport:
    """Process every pending faces task on the calling thread, reporting each settled batch,
    then wait for those still running in another process. Call ``worker.recover`` first when
    a dead process may have left tasks running, or the wait never ends."""
    if worker.kind != FACES_TASK:
        raise ValueError(f"not a faces worker: {worker.kind!r}")
    processed = 0
    while settled := worker.process_batch():
        processed += settled
        if on_progress is not None:
            on_progress(settled)
    worker.drain(timeout_s=float("inf"))
    with sessions() as session:
        failed = tasks_repo.task_counts(session, FACES_TASK)[TaskState.FAILED]
        stored = face_repo.count_faces(session)
    return BackfillReport(processed, failed, stored)
