"""The smallest collections training accepts (two members, two non-members) train a classifier:
the held-out split needs one example of each class, which 20 % of four rows is not (found by
fuzzing the API: ``POST /api/v1/classifiers/train`` failed with a ValueError from sklearn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewfinder.classifiers.store import ClassifierStore
from viewfinder.classifiers.training import MIN_PER_CLASS, TrainingSet, train_collection


@pytest.mark.parametrize(("positives", "negatives"), [(2, 2), (2, 3), (3, 2), (5, 4)])
def test_small_collections_train_with_both_classes_held_out(
    tmp_path: Path, positives: int, negatives: int
) -> None:
    rng = np.random.default_rng(0)
    features = np.concatenate(
        [rng.normal(1.0, 0.1, (positives, 8)), rng.normal(-1.0, 0.1, (negatives, 8))]
    ).astype(np.float32)
    labels = np.array([1] * positives + [0] * negatives, dtype=np.int64)
    store = ClassifierStore(tmp_path)
    report = train_collection(store, TrainingSet(7, "small", features, labels))
    assert report.skipped is None
    assert report.test_size >= 2
    assert report.train_size >= 2
    assert report.train_size + report.test_size == positives + negatives
    assert report.precision == 1.0  # separable classes, one of each held out
    assert store.get(7) is not None


def test_fewer_than_the_minimum_is_skipped_not_trained(tmp_path: Path) -> None:
    features = np.ones((MIN_PER_CLASS * 2 - 1, 8), dtype=np.float32)
    labels = np.array([1] * MIN_PER_CLASS + [0] * (MIN_PER_CLASS - 1), dtype=np.int64)
    report = train_collection(ClassifierStore(tmp_path), TrainingSet(7, "tiny", features, labels))
    assert report.skipped is not None
