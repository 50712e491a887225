"""The analysis service: one image, a list of tasks, one result per task.

A task's own failure never fails the request: it becomes an ``error`` or ``skipped`` result. Only
request-level problems escape (duplicate ids, an overloaded model queue)."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from viewfinder.analysis.operations import (
    EMBEDDING_OPERATIONS,
    FACE_CONTEXTS,
    OPERATIONS,
    OperationType,
    Target,
)
from viewfinder.analysis.regions import Region, RegionResolver, SkipTaskError
from viewfinder.analysis.results import AnalysisReport, OperationResult, Status, Task
from viewfinder.classifiers.store import ClassifierStore
from viewfinder.errors import (
    InvalidRequestError,
    OverloadedError,
    ViewfinderError,
)
from viewfinder.imaging.budget import decode_budget
from viewfinder.imaging.decode import EMBED_MIN_SIDE, decode_image, image_size_of, kept_pixels
from viewfinder.imaging.fetch import FetchPolicy, fetch_image_bytes
from viewfinder.models.caption import CaptionRequest
from viewfinder.runtime.pool import ModelPool

log = logging.getLogger(__name__)

MAX_CAPTION_LENGTH = 512
DEFAULT_CAPTION_LENGTH = 50
# An integer sent as a string ("7"): ASCII digits only, and short enough that int() neither
# fails (Python refuses over 4300 digits) nor matters (every bound here is 64-bit).
_DECIMAL = re.compile(r"\s*-?[0-9]{1,30}\s*")


class TaskError(Exception):
    """The task's parameters are wrong; reported as an ``error`` result with this message."""


def check_unique_ids(tasks: Sequence[Task]) -> None:
    counts = Counter(t.operation_id for t in tasks)
    duplicates = sorted(op_id for op_id, n in counts.items() if n > 1)
    if duplicates:
        raise InvalidRequestError(
            f"operation_id must be unique within a request; repeated: {', '.join(duplicates)}"
        )


class AnalysisService:
    def __init__(
        self,
        pool: ModelPool,
        classifiers: ClassifierStore,
        fetch_policy: FetchPolicy,
        max_image_pixels: int,
    ) -> None:
        self._pool = pool
        self._classifiers = classifiers
        self._fetch_policy = fetch_policy
        self._max_pixels = max_image_pixels

    # --- loading the image ------------------------------------------------------------------

    def image_from_url(self, url: str) -> Image.Image:
        return decode_image(fetch_image_bytes(url, self._fetch_policy), self._max_pixels)

    def image_from_bytes(self, data: bytes, min_side: int | None = None) -> Image.Image:
        """The image, decoded no smaller than ``min_side`` on its short side (None: every
        pixel, for detections and crops)."""
        return decode_image(data, self._max_pixels, min_side)

    def analyze_bytes(self, data: bytes, tasks: Sequence[Task]) -> AnalysisReport:
        """Decode and analyse, holding the image's pixels from the process's decode budget
        until the report is done, so concurrent requests wait for each other instead of each
        holding a 48-megapixel image at once. Detections and crops need every pixel; a request
        whose tasks all work on the whole image at a model's input size (embeddings,
        classification, captions) decodes as the library does (``EMBED_MIN_SIDE``): faster,
        and the same bytes give the same vector as in the library."""
        min_side = self._decode_side(tasks)
        width, height = image_size_of(data)
        pixels = kept_pixels(width, height, min_side)
        # An image over the limit is refused by the decode at once, without waiting its turn.
        with decode_budget().hold(pixels if width * height <= self._max_pixels else 0):
            return self.analyze(self.image_from_bytes(data, min_side), tasks)

    def analyze_url(self, url: str, tasks: Sequence[Task]) -> AnalysisReport:
        """``analyze_bytes`` of the image at ``url`` (downloaded before holding any pixels)."""
        return self.analyze_bytes(fetch_image_bytes(url, self._fetch_policy), tasks)

    def _decode_side(self, tasks: Sequence[Task]) -> int | None:
        """``EMBED_MIN_SIDE`` when no task needs more than the whole image at a model's input
        size; None (every pixel) when one detects or works on a region."""
        for task in tasks:
            try:
                op, target, _ = self._parse(task)
            except (SkipTaskError, TaskError, ViewfinderError):
                continue  # reported as skipped or failed: it uses no pixels
            if op is OperationType.DETECT_BOUNDING_BOX or target is not Target.WHOLE_IMAGE:
                return None
        return EMBED_MIN_SIDE

    # --- analysing it ---------------------------------------------------------------------

    def analyze(self, image: Image.Image, tasks: Sequence[Task]) -> AnalysisReport:
        check_unique_ids(tasks)
        timings: dict[str, float] = {}
        resolver = RegionResolver(
            image,
            lambda im: self._pool.run("person_detector", im),
            lambda im: self._pool.run("face_detector", im),
            timings,
        )
        embeddings: dict[tuple[str, tuple[int, ...] | None], list[float]] = {}
        results: dict[str, OperationResult] = {}
        for task in tasks:
            started = time.perf_counter()
            results[task.operation_id] = self._run(task, resolver, embeddings)
            timings[task.operation_id] = time.perf_counter() - started
        log.info(
            "analysed %dx%d image: %s",
            image.width,
            image.height,
            ", ".join(f"{k}={v * 1000:.1f}ms" for k, v in timings.items()),
        )
        return AnalysisReport(results, timings)

    def _run(
        self,
        task: Task,
        resolver: RegionResolver,
        embeddings: dict[tuple[str, tuple[int, ...] | None], list[float]],
    ) -> OperationResult:
        try:
            op, target, face_context = self._parse(task)
            if op is OperationType.DETECT_BOUNDING_BOX:
                return self._detect(resolver, target, face_context)
            region = resolver.region(target, face_context)
            data = self._compute(op, task.params, region, embeddings)
            return OperationResult(Status.SUCCESS, data, region.bbox, resolver.png(region), None)
        except SkipTaskError as exc:
            return OperationResult(Status.SKIPPED, error_message=str(exc))
        except (TaskError, ViewfinderError) as exc:
            if isinstance(exc, OverloadedError):
                raise
            return OperationResult(Status.ERROR, error_message=str(exc))
        except Exception as exc:  # one broken task must not fail the others
            log.exception("task %s (%s) failed", task.operation_id, task.type)
            return OperationResult(
                Status.ERROR,
                error_message=f"internal error in {task.type}: {exc.__class__.__name__}",
            )

    @staticmethod
    def _parse(task: Task) -> tuple[OperationType, Target, Target]:
        try:
            op = OperationType(task.type)
        except ValueError:
            known = ", ".join(o.value for o in OperationType)
            raise TaskError(f"Unknown operation type {task.type!r}; available: {known}") from None
        spec = OPERATIONS[op]
        target = _choice(task.params, "target", spec.allowed_targets, spec.default_target)
        # face_context only says where a face is searched: for any other target it is unused,
        # so a value there is ignored rather than failing the task.
        face_context = (
            _choice(task.params, "face_context", FACE_CONTEXTS, Target.PROMINENT_PERSON)
            if target is Target.PROMINENT_FACE
            else Target.PROMINENT_PERSON
        )
        return op, target, face_context

    @staticmethod
    def _detect(resolver: RegionResolver, target: Target, face_context: Target) -> OperationResult:
        found = (
            resolver.person() if target is Target.PROMINENT_PERSON else resolver.face(face_context)
        )
        data = None if found is None else resolver.region_for_box(found.box).bbox
        return OperationResult(Status.SUCCESS, data)

    def _compute(
        self,
        op: OperationType,
        params: dict[str, Any],
        region: Region,
        embeddings: dict[tuple[str, tuple[int, ...] | None], list[float]],
    ) -> Any:
        if op in EMBEDDING_OPERATIONS:
            return self._embedding(op, region, embeddings)
        if op is OperationType.CLASSIFY:
            return self._classify(params, region, embeddings)
        max_length = _int_param(params, "max_length", DEFAULT_CAPTION_LENGTH, 1, MAX_CAPTION_LENGTH)
        caption: str = self._pool.run("caption", CaptionRequest(region.image, max_length))
        return caption

    def _embedding(
        self,
        op: OperationType,
        region: Region,
        cache: dict[tuple[str, tuple[int, ...] | None], list[float]],
    ) -> list[float]:
        model = OPERATIONS[op].model
        assert model is not None
        key = (model, tuple(region.bbox) if region.bbox else None)
        if key not in cache:
            vector = np.asarray(self._pool.run(model, region.image), dtype=np.float32)
            cache[key] = [float(v) for v in vector]
        return cache[key]

    def _classify(
        self,
        params: dict[str, Any],
        region: Region,
        embeddings: dict[tuple[str, tuple[int, ...] | None], list[float]],
    ) -> dict[str, Any]:
        if params.get("collection_id") is None:
            raise SkipTaskError("Missing required parameter 'collection_id' for classify.")
        # Any 64-bit integer is a valid id; one with no classifier (a negative one never has
        # one) is skipped, as the seed documents.
        collection_id = _int_param(params, "collection_id", 0, -(2**63), 2**63 - 1)
        classifier = self._classifiers.get(collection_id)
        if classifier is None:
            raise SkipTaskError(
                f"No classifier model found for collection_id {collection_id}; train one with "
                "`viewfinder train-classifiers` or place it in the classifier directory."
            )
        try:
            embed_op = OperationType(classifier.embedding)
        except ValueError:
            raise TaskError(
                f"classifier for collection {collection_id} uses unknown embedding "
                f"{classifier.embedding!r}"
            ) from None
        if embed_op not in EMBEDDING_OPERATIONS:
            raise TaskError(f"classifier embedding {classifier.embedding!r} is not an embedding")
        features = np.asarray(self._embedding(embed_op, region, embeddings), dtype=np.float32)
        probability = classifier.probability(features)
        return {
            "is_in_collection": probability >= classifier.threshold,
            "probability": probability,
        }


def _choice(
    params: dict[str, Any], name: str, allowed: Sequence[Target], default: Target
) -> Target:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value in {t.value for t in allowed}:
        return Target(value)
    options = ", ".join(t.value for t in allowed)
    raise TaskError(f"Invalid {name} {value!r} for this operation; allowed: {options}")


def _int_param(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value)
        if len(shown) > 60:
            shown = f"{shown[:60]}..."
        raise TaskError(f"Parameter {name!r} must be an integer from {low} to {high}, got {shown}")
    return value
