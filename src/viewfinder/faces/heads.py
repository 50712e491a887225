"""The trained face-matching head: which one is active, the space it maps embeddings into, and
training a new one (kept only when it separates held-out people better than the raw space)."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import faces as faces_repo
from viewfinder.db import people as repo
from viewfinder.errors import InvalidInputError
from viewfinder.faces.training import TrainedHead, train_and_evaluate


@dataclass(frozen=True)
class TrainReport:
    version: str
    kept: bool
    labelled_faces: int
    people: int
    train_faces: int
    heldout_faces: int
    auc_before: float
    auc_after: float
    gap_before: float
    gap_after: float


class FaceHeads:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._head: TrainedHead | None = None
        self._version: str | None = None

    def active(self) -> TrainedHead | None:
        """The active head, read from the database once per version."""
        with self._sessions() as s:
            row = repo.active_head(s)
        if row is None:
            return None
        version, weights = row
        with self._lock:
            if self._version != version:
                self._head, self._version = _head_from_bytes(weights), version
            return self._head

    def space(self, vectors: NDArray[np.float32]) -> tuple[NDArray[np.float32], str | None]:
        """``vectors`` mapped by the active head (and its version), or as they are."""
        head = self.active()
        if head is None or len(vectors) == 0 or head.in_dim != vectors.shape[1]:
            return vectors, None
        return head.apply(vectors), head.version

    def check_trainable(self) -> None:
        """Raise InvalidInputError now if ``train`` would: a queued run is refused up front
        instead of being accepted and failing in the background."""
        self._training_set()

    def train(self, epochs: int, margin: float, seed: int = 0) -> TrainReport:
        ids, assets, vectors, labels = self._training_set()
        result = train_and_evaluate(
            vectors, labels, assets, epochs=epochs, margin=margin, seed=seed
        )
        head = result.head
        metrics: dict[str, Any] = {
            "auc_before": result.before.auc,
            "auc_after": result.after.auc,
            "gap_before": result.before.gap,
            "gap_after": result.after.gap,
            "epochs": epochs,
            "margin": margin,
        }
        with self._sessions.begin() as s:
            repo.save_head(s, head.version, _head_to_bytes(head), metrics, activate=result.keep)
        return TrainReport(
            version=head.version,
            kept=result.keep,
            labelled_faces=len(ids),
            people=len(np.unique(labels)),
            train_faces=result.train_faces,
            heldout_faces=result.heldout_faces,
            auc_before=result.before.auc,
            auc_after=result.after.auc,
            gap_before=result.before.gap,
            gap_after=result.after.gap,
        )

    def _training_set(
        self,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
        """The faces users named: ids, assets, embeddings, person ids. InvalidInputError when
        they cannot train a head (fewer than two people with two named faces each)."""
        with self._sessions() as s:
            named = repo.named_faces(s)
            ids, assets, vectors = faces_repo.face_embeddings(s, [face for face, _ in named])
        person = dict(named)
        labels = np.array([person[i] for i in ids.tolist()], dtype=np.int64)
        counts = np.unique(labels, return_counts=True)[1]
        if len(counts) < 2 or int((counts >= 2).sum()) < 2:
            raise InvalidInputError(
                "training needs at least two people with two or more labelled faces each; "
                "label more clusters first"
            )
        return ids, assets, vectors, labels


def _head_to_bytes(head: TrainedHead) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.safetensors"
        head.save(path)
        return path.read_bytes()


def _head_from_bytes(data: bytes) -> TrainedHead:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.safetensors"
        path.write_bytes(data)
        return TrainedHead.load(path)
