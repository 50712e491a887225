"""Training per-collection classifiers as seed 000's ``train_classifiers.py`` does: logistic
regression with balanced class weights on CLIP embeddings, a held-out 20 % split, a bake-off of
every stored version of the collection's classifier on that same split ranked by macro precision,
the best promoted in ``best_models.json``, and only the top versions kept."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from viewfinder.classifiers.store import ClassifierStore, LinearClassifier
from viewfinder.errors import NotFoundError

log = logging.getLogger(__name__)

KEEP_VERSIONS = 10
TEST_FRACTION = 0.2
MIN_PER_CLASS = 2  # a stratified split needs two of each class
REPORT_FILE = "training_report.json"
# Features are L2-normalised (norm 1, where the seed's raw CLIP vectors had norm ~10), so the
# seed's C=0.1 would over-regularise; C=1.0 on unit vectors is the comparable setting.
REGULARISATION_C = 1.0


@dataclass(frozen=True)
class TrainingSet:
    collection_id: int
    name: str
    features: NDArray[np.float32]  # (n, d), any scale: normalised here
    labels: NDArray[np.int64]  # (n,), 1 = in the collection
    embedding: str = "embed_clip_vit_b_32"


@dataclass(frozen=True)
class CollectionReport:
    collection_id: int
    name: str
    positives: int
    negatives: int
    train_size: int = 0
    test_size: int = 0
    new_version: str | None = None
    chosen_version: str | None = None
    precision: float | None = None  # macro precision of the chosen version on the test split
    recall: float | None = None
    versions_kept: int = 0
    skipped: str | None = None


def _unit(features: NDArray[np.float32]) -> NDArray[np.float64]:
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def _scores(
    classifier: LinearClassifier, x: NDArray[np.float64], y: NDArray[np.int64]
) -> tuple[float, float]:
    from sklearn.metrics import precision_score, recall_score

    logits = x @ np.asarray(classifier.coef) + classifier.intercept
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    predicted = (probabilities >= classifier.threshold).astype(np.int64)
    precision = float(precision_score(y, predicted, average="macro", zero_division=0))
    recall = float(recall_score(y, predicted, average="macro", zero_division=0))
    return precision, recall


def train_collection(
    store: ClassifierStore, data: TrainingSet, keep: int = KEEP_VERSIONS, seed: int = 42
) -> CollectionReport:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    labels = np.asarray(data.labels, dtype=np.int64)
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    base = CollectionReport(data.collection_id, data.name, positives, negatives)
    if positives < MIN_PER_CLASS or negatives < MIN_PER_CLASS:
        reason = f"needs at least {MIN_PER_CLASS} members and {MIN_PER_CLASS} non-members"
        return CollectionReport(**{**asdict(base), "skipped": reason})
    x = _unit(data.features)
    # At least one of each class held out: 20 % of a small set (4 rows: 1) cannot be stratified.
    test_size = max(2, math.ceil(TEST_FRACTION * len(labels)))
    x_train, x_test, y_train, y_test = train_test_split(
        x, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    model = LogisticRegression(
        class_weight="balanced", C=REGULARISATION_C, solver="liblinear", random_state=seed
    ).fit(x_train, y_train)
    version = datetime.now(UTC).strftime("%Y-%m-%d_%H%M%S_%f")
    new = LinearClassifier(
        collection_id=data.collection_id,
        coef=tuple(float(c) for c in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        embedding=data.embedding,
        version=version,
    )
    precision, recall = _scores(new, x_test, y_test)
    new = LinearClassifier(**{**asdict(new), "metrics": {"precision": precision, "recall": recall}})
    store.save(new, promote=False)

    # The bake-off: every compatible version on today's test split; incompatible ones rank last.
    ranked: list[tuple[tuple[float, float, str], LinearClassifier, float, float]] = []
    for version_clf in store.versions(data.collection_id):
        if version_clf.dim != x.shape[1] or version_clf.embedding != data.embedding:
            ranked.append(((-1.0, -1.0, version_clf.version), version_clf, 0.0, 0.0))
            continue
        p, r = _scores(version_clf, x_test, y_test)
        ranked.append(((p, r, version_clf.version), version_clf, p, r))
    ranked.sort(key=lambda entry: entry[0], reverse=True)
    best = ranked[0]
    store.promote(data.collection_id, best[1].file_name)
    for _, stale, _, _ in ranked[keep:]:
        store.delete(stale)
    log.info(
        "collection %d: new version %s (precision %.3f); promoted %s (precision %.3f)",
        data.collection_id,
        version,
        precision,
        best[1].version,
        best[2],
    )
    return CollectionReport(
        data.collection_id,
        data.name,
        positives,
        negatives,
        train_size=len(y_train),
        test_size=len(y_test),
        new_version=version,
        chosen_version=best[1].version,
        precision=best[2],
        recall=best[3],
        versions_kept=min(len(ranked), keep),
    )


def read_report(store: ClassifierStore) -> Any:
    """The report of the last training run; NotFoundError before the first."""
    path = store.directory / REPORT_FILE
    if not path.is_file():
        raise NotFoundError("no classifier has been trained yet")
    return json.loads(path.read_text("utf-8"))


def save_report(store: ClassifierStore, reports: list[CollectionReport]) -> None:
    store.write_json(
        REPORT_FILE,
        {"trained_at": datetime.now(UTC).isoformat(), "collections": [asdict(r) for r in reports]},
    )
