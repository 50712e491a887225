"""CLIP zero-shot classification of one image over every label category.

A label's score is its softmax probability within its category over ``LOGIT_SCALE * cosine``
(image embedding against the embedding of the label's templated sentence), as CLIP itself scores
zero-shot classes. The label sentences are embedded once per load of the text model and cached;
a reload (after an idle unload, or a replaced model) recomputes them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from viewfinder.analyzer.labels import LabelConfig
from viewfinder.errors import ModelUnavailableError
from viewfinder.runtime.pool import LoadedModel, ModelPool

log = logging.getLogger(__name__)

# CLIP's learned temperature: OpenAI's checkpoints store logit_scale = ln(100), clamped there
# in training, so zero-shot logits are 100 * cosine.
LOGIT_SCALE: Final = 100.0
# Label sentences are queued in chunks well under the batcher's default queue limit (256), so
# embedding a large label file cannot overflow a queue that other requests share.
LABEL_CHUNK: Final = 32
IMAGE_MODEL: Final = "clip_image"
TEXT_MODEL: Final = "clip_text"


@dataclass(frozen=True)
class LabelScore:
    value: str
    score: float


# category -> its best labels, highest score first
Analysis = dict[str, list[LabelScore]]


@dataclass(frozen=True)
class _LabelEmbeddings:
    # Weak, so an idle unload of the text model frees it instead of the cache keeping it alive;
    # a dead or different reference means the embeddings belong to an older load.
    source: weakref.ref[LoadedModel]
    matrices: dict[str, NDArray[np.float32]]  # category -> (labels, dim), unit rows


def softmax_scores(
    label_matrix: NDArray[np.float32], image_embedding: NDArray[np.float32]
) -> NDArray[np.float64]:
    """Softmax over ``LOGIT_SCALE`` * cosine of each label row against the image."""
    logits = LOGIT_SCALE * (label_matrix.astype(np.float64) @ image_embedding.astype(np.float64))
    exp = np.exp(logits - logits.max())  # shifted: exp(100) alone would lose every digit
    scores: NDArray[np.float64] = exp / exp.sum()
    return scores


def _unit(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


class ZeroShotClassifier:
    """Scores an image against every category of a ``LabelConfig``. Thread-safe."""

    def __init__(self, pool: ModelPool, config: LabelConfig, top_k: int) -> None:
        self._pool = pool
        self._config = config
        self._top_k = top_k
        self._cache: _LabelEmbeddings | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> LabelConfig:
        return self._config

    @property
    def ready(self) -> bool:
        """Both CLIP towers are loaded and the label embeddings belong to the loaded text
        tower. Loads nothing."""
        loaded = set(self._pool.loaded())
        cache = self._cache
        return (
            {IMAGE_MODEL, TEXT_MODEL} <= loaded and cache is not None and cache.source() is not None
        )

    def classify(self, image: Image.Image) -> Analysis:
        """The top ``top_k`` labels of every category for ``image`` (blocking: runs CLIP)."""
        labels = self.label_embeddings()
        image_embedding = _unit(np.asarray(self._pool.run(IMAGE_MODEL, image), dtype=np.float32))
        analysis: Analysis = {}
        for category, spec in self._config.categories.items():
            matrix = labels[category]
            if matrix.shape[1] != image_embedding.shape[0]:
                raise ModelUnavailableError(
                    f"the CLIP image ({image_embedding.shape[0]}-d) and text ({matrix.shape[1]}-d) "
                    "models do not share an embedding space; configure one CLIP checkpoint"
                )
            scores = softmax_scores(matrix, image_embedding)
            # stable: equal scores keep the label file's order
            best = np.argsort(-scores, kind="stable")[: self._top_k]
            analysis[category] = [LabelScore(spec.labels[i], float(scores[i])) for i in best]
        return analysis

    def label_embeddings(self) -> dict[str, NDArray[np.float32]]:
        """Per category, the unit embeddings of its label sentences for the loaded text model
        (loading it if needed; computed once per load)."""
        with self._pool.lease(TEXT_MODEL) as text_model:
            cache = self._cache
            if cache is not None and cache.source() is text_model:
                return cache.matrices
            with self._lock:  # concurrent first requests embed the labels once
                cache = self._cache
                if cache is not None and cache.source() is text_model:
                    return cache.matrices
                matrices = self._embed_labels(text_model)
                self._cache = _LabelEmbeddings(weakref.ref(text_model), matrices)
                return matrices

    def _embed_labels(self, text_model: LoadedModel) -> dict[str, NDArray[np.float32]]:
        spans: list[tuple[str, int, int]] = []
        sentences: list[str] = []
        for category, spec in self._config.categories.items():
            prompts = spec.prompts()
            spans.append((category, len(sentences), len(sentences) + len(prompts)))
            sentences.extend(prompts)
        vectors: list[NDArray[np.float32]] = []
        for start in range(0, len(sentences), LABEL_CHUNK):
            chunk = sentences[start : start + LABEL_CHUNK]
            vectors.extend(np.asarray(v, dtype=np.float32) for v in text_model.run_many(chunk))
        stacked = _unit(np.stack(vectors))
        log.info(
            "embedded %d zero-shot label sentences in %d categories",
            len(sentences),
            len(spans),
        )
        return {category: stacked[start:end] for category, start, end in spans}
