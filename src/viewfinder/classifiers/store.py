"""Classifiers on disk, in a safe format: JSON coefficients plus metadata, never pickle.

Layout of the classifier directory (mirrors seed 000's ``trained_classifiers/``)::

    collection_{id}_classifier_{version}.json   one file per trained version
    best_models.json                            {"<collection id>": "<promoted version file>"}

A file records the embedding operation it was trained on (``embed_clip_vit_b_32`` ...), the target
region, whether inputs are L2-normalised, the coefficients and the decision threshold, so
``classify`` computes exactly the features the classifier saw in training.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from viewfinder.atomic import write_atomically
from viewfinder.errors import InvalidInputError

BEST_MODELS_FILE = "best_models.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LinearClassifier:
    """A logistic-regression decision function: P(in collection) = sigmoid(coef . x + intercept)."""

    collection_id: int
    coef: tuple[float, ...]
    intercept: float
    embedding: str = "embed_clip_vit_b_32"
    target: str = "whole_image"
    normalized: bool = True
    threshold: float = 0.5
    version: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d_%H%M%S"))
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return len(self.coef)

    def probability(self, features: NDArray[np.float32]) -> float:
        vector = np.asarray(features, dtype=np.float64).reshape(-1)
        if vector.shape[0] != self.dim:
            raise InvalidInputError(
                f"classifier for collection {self.collection_id} expects {self.dim}-d "
                f"{self.embedding} features, got {vector.shape[0]}-d: retrain it for the "
                "configured model"
            )
        if self.normalized:
            norm = float(np.linalg.norm(vector))
            vector = vector / norm if norm > 0 else vector
        logit = float(np.dot(np.asarray(self.coef), vector)) + self.intercept
        return _sigmoid(logit)

    @property
    def file_name(self) -> str:
        return f"collection_{self.collection_id}_classifier_{self.version}.json"

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, **asdict(self), "coef": list(self.coef)}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> LinearClassifier:
        if payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported classifier format {payload.get('format')!r}")
        fields = {k: v for k, v in payload.items() if k != "format"}
        fields["coef"] = tuple(float(c) for c in fields["coef"])
        return cls(**fields)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class ClassifierStore:
    """Reads the promoted classifier per collection; re-reads when ``best_models.json`` changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: int | None = None
        self._best: dict[int, str] = {}
        self._cache: dict[str, LinearClassifier] = {}

    def get(self, collection_id: int) -> LinearClassifier | None:
        with self._lock:
            self._refresh()
            name = self._best.get(collection_id)
            if name is None:
                return None
            if name not in self._cache:
                payload = json.loads((self.directory / name).read_text(encoding="utf-8"))
                self._cache[name] = LinearClassifier.from_json(payload)
            return self._cache[name]

    def collections(self) -> list[int]:
        with self._lock:
            self._refresh()
            return sorted(self._best)

    def versions(self, collection_id: int) -> list[LinearClassifier]:
        """Every stored version of a collection's classifier, oldest first."""
        found = []
        for path in sorted(self.directory.glob(f"collection_{collection_id}_classifier_*.json")):
            try:
                found.append(LinearClassifier.from_json(json.loads(path.read_text("utf-8"))))
            except (ValueError, KeyError, TypeError):
                continue  # not ours or damaged: never loaded, never deleted
        return sorted(found, key=lambda c: c.version)

    def delete(self, classifier: LinearClassifier) -> None:
        (self.directory / classifier.file_name).unlink(missing_ok=True)
        with self._lock:
            self._cache.pop(classifier.file_name, None)

    def forget(self, collection_id: int) -> int:
        """Remove every version of a collection's classifier and its promotion (the collection
        is gone); returns how many files were removed."""
        with self._lock:
            self._refresh()
            if collection_id in self._best:
                best = {str(k): v for k, v in self._best.items() if k != collection_id}
                text = json.dumps(best, indent=2, sort_keys=True)
                write_atomically(self.directory / BEST_MODELS_FILE, text.encode())
                self._stamp = None
            removed = 0
            for path in self.directory.glob(f"collection_{collection_id}_classifier_*.json"):
                path.unlink(missing_ok=True)
                self._cache.pop(path.name, None)
                removed += 1
            return removed

    def write_json(self, name: str, payload: object) -> Path:
        path = self.directory / name
        write_atomically(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())
        return path

    def save(self, classifier: LinearClassifier, promote: bool = True) -> Path:
        path = self.directory / classifier.file_name
        write_atomically(path, json.dumps(classifier.to_json()).encode())
        if promote:
            self.promote(classifier.collection_id, classifier.file_name)
        return path

    def promote(self, collection_id: int, file_name: str) -> None:
        with self._lock:
            self._refresh()
            best = {str(k): v for k, v in self._best.items()}
            best[str(collection_id)] = file_name
            text = json.dumps(best, indent=2, sort_keys=True)
            write_atomically(self.directory / BEST_MODELS_FILE, text.encode())
            self._stamp = None

    def _refresh(self) -> None:
        path = self.directory / BEST_MODELS_FILE
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            self._best, self._stamp = {}, None
            return
        if stamp == self._stamp:
            return
        raw = json.loads(path.read_text(encoding="utf-8"))
        self._best = {int(k): str(v) for k, v in raw.items()}
        self._stamp = stamp
