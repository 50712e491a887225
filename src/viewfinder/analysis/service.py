"""The analysis service: images, a list of tasks, one result per task and image.

Every image of a request is analysed together: each detector runs once over all the images
that need it, and each model once over every region any task wants from it (one forward pass
serves many images, through the micro-batcher). One image is a request of one.

A task's own failure never fails the request: it becomes an ``error`` or ``skipped`` result. Only
request-level problems escape (duplicate ids, too many URLs, an overloaded model queue). In a
request of many URLs, an image that cannot be downloaded or decoded is that URL's own failure."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from viewfinder.analysis.operations import (
    DEFAULT_CLIP,
    EMBEDDING_OPERATIONS,
    FACE_CONTEXTS,
    OPERATIONS,
    OperationType,
    Target,
)
from viewfinder.analysis.regions import Region, RegionResolver, SkipTaskError
from viewfinder.analysis.results import AnalysisReport, OperationResult, Status, Task
from viewfinder.classifiers.store import ClassifierStore, LinearClassifier
from viewfinder.errors import (
    InvalidRequestError,
    OverloadedError,
    TooLargeError,
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


@dataclass(frozen=True)
class _Plan:
    """A task as parsed once for every image: what it works on and which model computes it."""

    task: Task
    op: OperationType
    target: Target
    face_context: Target
    model: str | None  # the pool model computing its data on the region; None: a detection
    max_length: int = DEFAULT_CAPTION_LENGTH
    classifier: LinearClassifier | None = None


# What one model is asked for one image: (image index, region box, caption length).
_Need = tuple[int, tuple[int, ...] | None, int | None]

# A URL's outcome in a batch: its report, or why its image could not be had.
UrlOutcome = AnalysisReport | ViewfinderError


class AnalysisService:
    def __init__(
        self,
        pool: ModelPool,
        classifiers: ClassifierStore,
        fetch_policy: FetchPolicy,
        max_image_pixels: int,
        *,
        clip_models: Mapping[str, str] | None = None,
        batch_max_urls: int = 32,
        fetch_concurrency: int = 8,
        batch_max_images: int = 16,
        batch_requests: int = 2,
    ) -> None:
        self._pool = pool
        self._classifiers = classifiers
        self._fetch_policy = fetch_policy
        self._max_pixels = max_image_pixels
        self._clip_models = dict(clip_models or {DEFAULT_CLIP: "clip_image"})
        self._batch_max_urls = batch_max_urls
        self._fetch_concurrency = fetch_concurrency
        self._batch_max_images = batch_max_images
        # Batches running at once in this process: each holds up to fetch_concurrency +
        # batch_max_images downloaded files, so this bounds what all of them hold together.
        self._batch_slots = threading.BoundedSemaphore(batch_requests)

    @property
    def clip_models(self) -> list[str]:
        """The CLIP models an embedding task may name in ``params.model``, the default first."""
        return list(self._clip_models)

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
        with decode_budget().hold(self._held_pixels(data, min_side)):
            return self.analyze(self.image_from_bytes(data, min_side), tasks)

    def analyze_url(self, url: str, tasks: Sequence[Task]) -> AnalysisReport:
        """``analyze_bytes`` of the image at ``url`` (downloaded before holding any pixels)."""
        return self.analyze_bytes(fetch_image_bytes(url, self._fetch_policy), tasks)

    def analyze_urls(self, urls: Sequence[str], tasks: Sequence[Task]) -> list[UrlOutcome]:
        """Each URL's report (as ``analyze_url`` gives it) or the error that kept its image
        from being analysed, in order; a URL repeated in the list is analysed once.

        Memory stays bounded whatever the list holds: at most ``fetch_concurrency`` downloads
        run (or wait, done, for their turn) at once, and the images are analysed in groups of
        at most ``batch_max_images`` whose decoded pixels are held together from the process's
        decode budget (a group never holds more than the budget; an image larger than it goes
        alone). So at most ``fetch_concurrency + batch_max_images`` downloaded files are in
        memory, each within VIEWFINDER_MAX_DOWNLOAD_BYTES, and at most ``batch_requests``
        batches run in the process at once (OverloadedError, a 429, past it). Every model runs
        once per group."""
        check_unique_ids(tasks)
        if len(urls) > self._batch_max_urls:
            raise TooLargeError(
                f"{len(urls)} image URLs in one request; at most {self._batch_max_urls} "
                "(VIEWFINDER_ANALYZE_BATCH_MAX_URLS): split the list into several requests."
            )
        if not self._batch_slots.acquire(blocking=False):
            raise OverloadedError(
                "too many image batches are being analysed at once "
                "(VIEWFINDER_ANALYZE_BATCH_REQUESTS); retry shortly",
                retry_after_s=2.0,
            )
        try:
            return self._analyze_urls(urls, tasks)
        finally:
            self._batch_slots.release()

    def _analyze_urls(self, urls: Sequence[str], tasks: Sequence[Task]) -> list[UrlOutcome]:
        min_side = self._decode_side(tasks)
        unique = list(dict.fromkeys(urls))
        outcomes: dict[str, UrlOutcome] = {}
        group: list[tuple[str, bytes, int]] = []  # url, downloaded bytes, pixels to hold
        capacity = decode_budget().capacity
        with ThreadPoolExecutor(
            min(self._fetch_concurrency, max(1, len(unique))), thread_name_prefix="fetch"
        ) as downloads:
            queued: deque[tuple[str, Future[bytes]]] = deque()
            waiting = iter(unique)

            def top_up() -> None:
                while len(queued) < self._fetch_concurrency:
                    url = next(waiting, None)
                    if url is None:
                        return
                    queued.append(
                        (url, downloads.submit(fetch_image_bytes, url, self._fetch_policy))
                    )

            top_up()
            while queued:
                url, download = queued.popleft()
                try:
                    data = download.result()
                    pixels = self._held_pixels(data, min_side)
                except ViewfinderError as exc:
                    outcomes[url] = exc
                    continue
                finally:
                    top_up()
                held = sum(p for _, _, p in group)
                if group and (len(group) >= self._batch_max_images or held + pixels > capacity):
                    outcomes.update(self._analyze_group(group, tasks, min_side))
                    group = []
                group.append((url, data, pixels))
            if group:
                outcomes.update(self._analyze_group(group, tasks, min_side))
        return [outcomes[url] for url in urls]

    def _analyze_group(
        self, group: list[tuple[str, bytes, int]], tasks: Sequence[Task], min_side: int | None
    ) -> dict[str, UrlOutcome]:
        """Decode the group's images under one hold of their pixels, then analyse them at once."""
        outcomes: dict[str, UrlOutcome] = {}
        with decode_budget().hold(sum(p for _, _, p in group)):
            decoded: list[tuple[str, Image.Image]] = []
            for url, data, _ in group:
                try:
                    decoded.append((url, self.image_from_bytes(data, min_side)))
                except ViewfinderError as exc:
                    outcomes[url] = exc
            del group[:]  # the downloaded bytes are not needed past here
            reports = self.analyze_many([image for _, image in decoded], tasks)
        outcomes.update((url, report) for (url, _), report in zip(decoded, reports, strict=True))
        return outcomes

    def _held_pixels(self, data: bytes, min_side: int | None) -> int:
        """The pixels to hold while ``data`` is decoded and analysed (InvalidImageError for
        bytes that are not an image). An image over the pixel limit holds none: its decode is
        refused at once, without waiting its turn."""
        width, height = image_size_of(data)
        return kept_pixels(width, height, min_side) if width * height <= self._max_pixels else 0

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

    # --- analysing ------------------------------------------------------------------------

    def analyze(self, image: Image.Image, tasks: Sequence[Task]) -> AnalysisReport:
        return self.analyze_many([image], tasks)[0]

    def analyze_many(
        self, images: Sequence[Image.Image], tasks: Sequence[Task]
    ) -> list[AnalysisReport]:
        """One report per image, each as if that image had been analysed alone; every
        detector and model sees all the images' regions at once."""
        check_unique_ids(tasks)
        plans = {task.operation_id: self._plan(task) for task in tasks}
        live = [plan for plan in plans.values() if isinstance(plan, _Plan)]
        stage_s: dict[str, float] = {}
        resolvers = [RegionResolver(image) for image in images]
        if images:
            self._detect_all(resolvers, live, stage_s)
        results: list[dict[str, OperationResult]] = [{} for _ in images]
        needs: dict[tuple[int, str], tuple[Region, _Need]] = {}
        wanted: dict[str, dict[_Need, Any]] = {}
        for index, resolver in enumerate(resolvers):
            for plan in live:
                op_id = plan.task.operation_id
                try:
                    if plan.model is None:
                        results[index][op_id] = self._detected(resolver, plan)
                        continue
                    region = resolver.region(plan.target, plan.face_context)
                except Exception as exc:  # noqa: BLE001 - the task's result says what it was
                    results[index][op_id] = _failure(plan.task, exc)
                    continue
                caption = plan.model == "caption"
                need: _Need = (
                    index,
                    tuple(region.bbox) if region.bbox else None,
                    plan.max_length if caption else None,
                )
                item = CaptionRequest(region.image, plan.max_length) if caption else region.image
                wanted.setdefault(plan.model, {})[need] = item
                needs[(index, op_id)] = (region, need)
        outputs: dict[str, dict[_Need, Any]] = {}
        for model, items in wanted.items():
            started = time.perf_counter()
            keys = list(items)
            found = self._run_each(model, [items[k] for k in keys])
            outputs[model] = dict(zip(keys, found, strict=True))
            stage_s[model] = time.perf_counter() - started
        reports = []
        for index, resolver in enumerate(resolvers):
            ordered: dict[str, OperationResult] = {}
            timings = {k: v for k, v in stage_s.items() if k.startswith("detect_")}
            for task in tasks:
                op_id = task.operation_id
                planned = plans[op_id]
                timings[op_id] = 0.0
                if isinstance(planned, OperationResult):
                    ordered[op_id] = planned
                elif op_id in results[index] or planned.model is None:
                    ordered[op_id] = results[index][op_id]
                else:
                    region, need = needs[(index, op_id)]
                    output = outputs[planned.model][need]
                    ordered[op_id] = self._finish(planned, output, region, resolver)
                    timings[op_id] = stage_s[planned.model]
            reports.append(AnalysisReport(ordered, timings))
            log.info(
                "analysed %dx%d image: %s",
                resolver.image.width,
                resolver.image.height,
                ", ".join(f"{k}={v * 1000:.1f}ms" for k, v in timings.items()),
            )
        return reports

    def _detect_all(
        self, resolvers: list[RegionResolver], plans: list[_Plan], stage_s: dict[str, float]
    ) -> None:
        """The person and face detections the tasks need, each over every image at once."""
        faces = [p.face_context for p in plans if p.target is Target.PROMINENT_FACE]
        if any(p.target is Target.PROMINENT_PERSON for p in plans) or (
            Target.PROMINENT_PERSON in faces
        ):
            started = time.perf_counter()
            found = self._run_each("person_detector", [r.image for r in resolvers])
            for resolver, detections in zip(resolvers, found, strict=True):
                resolver.found_person(detections)
            stage_s["detect_person"] = time.perf_counter() - started
        for context in FACE_CONTEXTS:
            if context not in faces:
                continue
            started = time.perf_counter()
            searched: list[tuple[RegionResolver, Region]] = []
            for resolver in resolvers:
                try:
                    searched.append((resolver, resolver.face_to_detect(context)))
                except Exception as exc:  # noqa: BLE001 - raised again for each task needing it
                    resolver.found_face(context, None, exc)
            found = self._run_each("face_detector", [where.image for _, where in searched])
            for (resolver, where), detections in zip(searched, found, strict=True):
                resolver.found_face(context, where, detections)
            stage_s[f"detect_face_in_{context.value}"] = time.perf_counter() - started

    def _run_each(self, model: str, items: list[Any]) -> list[Any]:
        """Each item's output or exception; a model that cannot be loaded fails every item,
        a full queue fails the request."""
        if not items:
            return []
        try:
            with self._pool.lease(model) as loaded:
                return loaded.run_each(items)
        except OverloadedError:
            raise
        except Exception as exc:  # noqa: BLE001 - each item's task reports it
            return [exc] * len(items)

    # --- one task ---------------------------------------------------------------------------

    def _plan(self, task: Task) -> _Plan | OperationResult:
        """The task checked once for the whole request: what it works on and with which
        model; a result instead when it is skipped or fails whatever the image."""
        try:
            op, target, face_context = self._parse(task)
            if op is OperationType.DETECT_BOUNDING_BOX:
                return _Plan(task, op, target, face_context, None)
            if op in EMBEDDING_OPERATIONS:
                return _Plan(task, op, target, face_context, self._embedding_model(op, task))
            if op is OperationType.CLASSIFY:
                classifier = self._classifier(task.params)
                model = self._embedding_model(classifier_embedding(classifier), None)
                return _Plan(task, op, target, face_context, model, classifier=classifier)
            max_length = _int_param(
                task.params, "max_length", DEFAULT_CAPTION_LENGTH, 1, MAX_CAPTION_LENGTH
            )
            return _Plan(task, op, target, face_context, "caption", max_length=max_length)
        except Exception as exc:  # noqa: BLE001 - the task's result says what it was
            return _failure(task, exc)

    def _embedding_model(self, op: OperationType, task: Task | None) -> str:
        """The pool model of an embedding operation; CLIP's is the one ``params.model``
        names (the default one when it names none; ``task`` None: always the default)."""
        if op is not OperationType.EMBED_CLIP_VIT_B_32:
            model = OPERATIONS[op].model
            assert model is not None
            return model
        name = task.params.get("model") if task is not None else None
        if name is None:
            return self._clip_models[DEFAULT_CLIP]
        if isinstance(name, str) and name in self._clip_models:
            return self._clip_models[name]
        shown = repr(name) if len(repr(name)) <= 60 else f"{repr(name)[:60]}..."
        raise SkipTaskError(
            f"Unknown CLIP model {shown}; configured: {', '.join(self._clip_models)} "
            "(VIEWFINDER_CLIP_MODELS names more)."
        )

    @staticmethod
    def _parse(task: Task) -> tuple[OperationType, Target, Target]:
        """The operation, target and face context; an unknown operation type or a target the
        operation does not take skips the task (seed 000 does), a bad face_context fails it."""
        try:
            op = OperationType(task.type)
        except ValueError:
            known = ", ".join(o.value for o in OperationType)
            shown = repr(task.type) if len(task.type) <= 60 else f"{task.type[:60]!r}..."
            raise SkipTaskError(f"Unsupported operation type {shown}; available: {known}") from None
        spec = OPERATIONS[op]
        try:
            target = _choice(task.params, "target", spec.allowed_targets, spec.default_target)
        except TaskError as exc:
            raise SkipTaskError(f"{exc} (for {op.value})") from None
        # face_context only says where a face is searched: for any other target it is unused,
        # so a value there is ignored rather than failing the task.
        face_context = (
            _choice(task.params, "face_context", FACE_CONTEXTS, Target.PROMINENT_PERSON)
            if target is Target.PROMINENT_FACE
            else Target.PROMINENT_PERSON
        )
        return op, target, face_context

    @staticmethod
    def _detected(resolver: RegionResolver, plan: _Plan) -> OperationResult:
        found = (
            resolver.person()
            if plan.target is Target.PROMINENT_PERSON
            else resolver.face(plan.face_context)
        )
        data = None if found is None else resolver.region_for_box(found.box).bbox
        return OperationResult(Status.SUCCESS, data)

    @staticmethod
    def _finish(
        plan: _Plan, output: Any, region: Region, resolver: RegionResolver
    ) -> OperationResult:
        """The task's result from its model's output on its region."""
        try:
            if isinstance(output, BaseException):
                raise output
            data: Any
            if plan.op is OperationType.CLASSIFY:
                assert plan.classifier is not None
                probability = plan.classifier.probability(np.asarray(output, dtype=np.float32))
                data = {
                    "is_in_collection": probability >= plan.classifier.threshold,
                    "probability": probability,
                }
            elif plan.op in EMBEDDING_OPERATIONS:
                data = [float(v) for v in np.asarray(output, dtype=np.float32)]
            else:
                data = output
            return OperationResult(Status.SUCCESS, data, region.bbox, resolver.png(region), None)
        except Exception as exc:  # noqa: BLE001 - one broken task must not fail the others
            return _failure(plan.task, exc)

    def _classifier(self, params: dict[str, Any]) -> LinearClassifier:
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
        return classifier


def classifier_embedding(classifier: LinearClassifier) -> OperationType:
    """The embedding operation a classifier was trained on (TaskError when it is none)."""
    try:
        embed_op = OperationType(classifier.embedding)
    except ValueError:
        raise TaskError(f"classifier uses unknown embedding {classifier.embedding!r}") from None
    if embed_op not in EMBEDDING_OPERATIONS:
        raise TaskError(f"classifier embedding {classifier.embedding!r} is not an embedding")
    return embed_op


def _failure(task: Task, exc: BaseException) -> OperationResult:
    """A task's exception as its result: skipped, an error with its message, or (a bug) an
    internal error that names only its kind. A full model queue fails the whole request."""
    if isinstance(exc, OverloadedError):
        raise exc
    if isinstance(exc, SkipTaskError):
        return OperationResult(Status.SKIPPED, error_message=str(exc))
    if isinstance(exc, (TaskError, ViewfinderError)):
        return OperationResult(Status.ERROR, error_message=str(exc))
    log.error("task %s (%s) failed", task.operation_id, task.type, exc_info=exc)
    return OperationResult(
        Status.ERROR, error_message=f"internal error in {task.type}: {exc.__class__.__name__}"
    )


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
