"""Face recognition metrics in plain numpy: pair AUC, rank-1 identification, BCubed.

All functions take L2-normalised embeddings (cosine similarity = dot product) and labels of
any comparable type (person names, integer ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class PairScores:
    """Cosine similarities of every unordered pair of faces, split by same/different person."""

    same: NDArray[np.float64]
    different: NDArray[np.float64]


@dataclass(frozen=True)
class BCubed:
    precision: float
    recall: float
    f1: float


def _normalised(embeddings: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.asarray(array / np.maximum(norms, 1e-12), dtype=np.float64)


def pair_scores(embeddings: ArrayLike, labels: ArrayLike) -> PairScores:
    vectors = _normalised(embeddings)
    names = np.asarray(labels)
    if len(names) != len(vectors):
        raise ValueError(f"{len(vectors)} embeddings but {len(names)} labels")
    rows, cols = np.triu_indices(len(vectors), k=1)
    similarities = np.einsum("ij,ij->i", vectors[rows], vectors[cols])
    same = names[rows] == names[cols]
    return PairScores(similarities[same], similarities[~same])


def average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, tied values sharing the mean of their ranks (as scipy's rankdata)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start index of each run of equal values, and the mean rank of that run.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def auc(positives: ArrayLike, negatives: ArrayLike) -> float:
    """Probability that a random positive scores above a random negative (ties count half):
    the Mann-Whitney U statistic over len(pos) * len(neg). NaN when either side is empty."""
    pos = np.asarray(positives, dtype=np.float64).ravel()
    neg = np.asarray(negatives, dtype=np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = average_ranks(np.concatenate([pos, neg]))
    u_statistic = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u_statistic / (len(pos) * len(neg)))


def pair_auc(embeddings: ArrayLike, labels: ArrayLike) -> float:
    """How well cosine similarity tells same-person pairs from different-person pairs."""
    scores = pair_scores(embeddings, labels)
    return auc(scores.same, scores.different)


def rank1_accuracy(embeddings: ArrayLike, labels: ArrayLike) -> float:
    """Leave-one-out nearest neighbour identification: the share of faces whose most similar
    other face has the same label. Faces whose label occurs once cannot be answered right and
    are not asked (they still serve as distractors). NaN when no label occurs twice."""
    vectors = _normalised(embeddings)
    names = np.asarray(labels)
    _, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    queries = counts[inverse] >= 2
    if not queries.any():
        return float("nan")
    similarities = vectors @ vectors.T
    np.fill_diagonal(similarities, -np.inf)
    nearest = similarities.argmax(axis=1)
    correct = names[nearest] == names
    return float(correct[queries].mean())


def bcubed(true_labels: Sequence[Any] | NDArray[Any], predicted: ArrayLike) -> BCubed:
    """BCubed precision, recall and F1 of a clustering (Bagga and Baldwin 1998; Amigo 2009).

    Per item: precision = share of its predicted cluster with its true label, recall = share
    of its true class in its predicted cluster; both averaged over items. A predicted label of
    -1 (noise) is a cluster of its own for each item, so leaving faces unclustered costs
    recall, never precision.
    """
    truth = np.asarray(true_labels)
    clusters = np.asarray(predicted).astype(np.int64)
    if len(truth) != len(clusters):
        raise ValueError(f"{len(truth)} true labels but {len(clusters)} predicted")
    if len(truth) == 0:
        return BCubed(float("nan"), float("nan"), float("nan"))
    # Give each noise item a fresh cluster id beyond the real ones.
    noise = clusters < 0
    clusters = clusters.copy()
    clusters[noise] = clusters.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    _, class_index = np.unique(truth, return_inverse=True)
    _, cluster_index = np.unique(clusters, return_inverse=True)
    # Contingency table: items of each (cluster, class) cell.
    table = np.zeros((cluster_index.max() + 1, class_index.max() + 1), dtype=np.float64)
    np.add.at(table, (cluster_index, class_index), 1.0)
    cell = table[cluster_index, class_index]
    precision = float((cell / table.sum(axis=1)[cluster_index]).mean())
    recall = float((cell / table.sum(axis=0)[class_index]).mean())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return BCubed(precision, recall, float(f1))
