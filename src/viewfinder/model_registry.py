"""The model registry: every model the service can load, where its files come from (which setting
names them) and how to build it. Read top to bottom; nothing is loaded until the pool asks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewfinder.analysis.operations import DEFAULT_CLIP
from viewfinder.runtime.batch_model import BatchModel
from viewfinder.runtime.batcher import BatchPolicy
from viewfinder.runtime.device import inference_precision
from viewfinder.runtime.sources import ModelSource, resolve
from viewfinder.settings import Settings

log = logging.getLogger(__name__)

MTCNN_FILES = ("pnet.pt", "rnet.pt", "onet.pt")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    source: ModelSource
    files: tuple[str, ...]  # files needed from a folder source
    build: Callable[[Path], BatchModel[Any, Any, Any]]

    def resolve(self, settings: Settings) -> Path:
        return resolve(self.source, settings, self.files)


def model_entries(settings: Settings, device: str) -> dict[str, ModelEntry]:
    """Every model, keyed by the name the pool and ``viewfinder models`` use."""
    precision = inference_precision(device, settings)
    clip_int8 = settings.cpu_int8 and device == "cpu"
    if settings.cpu_int8 and not clip_int8:
        log.info("VIEWFINDER_CPU_INT8 is ignored on %s: CLIP runs in fp16 there", device)
    elif clip_int8:
        log.info("the CLIP towers run in ONNX Runtime with int8 weights (VIEWFINDER_CPU_INT8)")

    def clip_image(path: Path) -> BatchModel[Any, Any, Any]:
        if clip_int8:
            from viewfinder.models.onnx_int8 import OnnxClipImageEncoder

            return OnnxClipImageEncoder.int8(path, settings.model_cache_dir, _ort_threads())
        from viewfinder.models.clip import ClipImageEncoder

        return ClipImageEncoder(path, device, precision)

    def clip_text(path: Path) -> BatchModel[Any, Any, Any]:
        if clip_int8:
            from viewfinder.models.onnx_int8 import OnnxClipTextEncoder

            return OnnxClipTextEncoder.int8(path, settings.model_cache_dir, _ort_threads())
        from viewfinder.models.clip import ClipTextEncoder

        return ClipTextEncoder(path, device, precision)

    def _ort_threads() -> int:
        import torch

        return settings.torch_threads or torch.get_num_threads()

    def dino(path: Path) -> BatchModel[Any, Any, Any]:
        from viewfinder.models.dino import DinoEncoder

        return DinoEncoder(path, device, precision)

    def caption(path: Path) -> BatchModel[Any, Any, Any]:
        from viewfinder.models.caption import BlipCaptioner

        return BlipCaptioner(path, device, precision)

    def person_detector(path: Path) -> BatchModel[Any, Any, Any]:
        from viewfinder.models.yolox import YoloxPersonDetector

        return YoloxPersonDetector(path, min_score=settings.person_min_score)

    def object_detector(path: Path) -> BatchModel[Any, Any, Any]:
        from viewfinder.models.yolox import YoloxObjectDetector

        return YoloxObjectDetector(path, min_score=settings.object_min_score)

    def face_detector(path: Path) -> BatchModel[Any, Any, Any]:
        if settings.face_detector == "mtcnn":
            from viewfinder.models.mtcnn import MtcnnFaceDetector

            return MtcnnFaceDetector(path, min_score=settings.face_min_score, device=device)
        from viewfinder.models.yunet import YunetFaceDetector

        return YunetFaceDetector(path, min_score=settings.face_min_score)

    def face_recognizer(path: Path) -> BatchModel[Any, Any, Any]:
        from viewfinder.models.face_recognizer import FaceRecognizer

        # The pixel convention follows the file name (SFace or ArcFace family), see the module;
        # a CPU-only configuration keeps ONNX Runtime off a GPU it would otherwise prefer.
        cpu_only = ["CPUExecutionProvider"] if device == "cpu" else None
        return FaceRecognizer(path, providers=cpu_only)

    def ocr(path: Path) -> BatchModel[Any, Any, Any]:
        from viewfinder.models.ocr import OcrReader

        cpu_only = ["CPUExecutionProvider"] if device == "cpu" else None
        return OcrReader(
            path,
            det_max_side=settings.ocr_detect_side,
            threads=settings.torch_threads,
            providers=cpu_only,
        )

    face_setting = "mtcnn_model" if settings.face_detector == "mtcnn" else "yunet_model"
    entries = [
        ModelEntry(
            "clip_image",
            "CLIP image tower",
            _src("clip_image", "clip_model", settings),
            (),
            clip_image,
        ),
        ModelEntry(
            "clip_text", "CLIP text tower", _src("clip_text", "clip_model", settings), (), clip_text
        ),
        ModelEntry("dinov2", "DINOv2 encoder", _src("dinov2", "dinov2_model", settings), (), dino),
        ModelEntry("dinov3", "DINOv3 encoder", _src("dinov3", "dinov3_model", settings), (), dino),
        ModelEntry(
            "caption", "BLIP captioner", _src("caption", "caption_model", settings), (), caption
        ),
        ModelEntry(
            "person_detector",
            "YOLOX person detector (ONNX Runtime)",
            _src("person_detector", "person_detector_model", settings),
            (),
            person_detector,
        ),
        ModelEntry(
            "object_detector",
            "YOLOX COCO object detector (ONNX Runtime)",
            _src("object_detector", "object_detector_model", settings),
            (),
            object_detector,
        ),
        ModelEntry(
            "face_detector",
            f"{settings.face_detector} face detector",
            _src("face_detector", face_setting, settings),
            MTCNN_FILES if settings.face_detector == "mtcnn" else (),
            face_detector,
        ),
        ModelEntry(
            "face_recognizer",
            "ArcFace-family face recogniser (ONNX Runtime)",
            _src("face_recognizer", "face_recognizer_model", settings),
            (),
            face_recognizer,
        ),
        ModelEntry(
            "ocr",
            "PP-OCR text detector and recogniser (ONNX Runtime)",
            _src("ocr", "ocr_model", settings),
            (),
            ocr,
        ),
    ]
    # More CLIP image towers for embedding tasks that name one (VIEWFINDER_CLIP_MODELS); one
    # whose source is the default's is the default's tower, not a second copy of it.
    for name, pool_name in clip_image_models(settings).items():
        if pool_name != "clip_image":
            source = ModelSource(pool_name, "clip_models", settings.clip_models[name])
            entries.append(
                ModelEntry(pool_name, f"CLIP image tower '{name}'", source, (), clip_image)
            )
    return {entry.name: entry for entry in entries}


def clip_image_models(settings: Settings) -> dict[str, str]:
    """The CLIP image towers an embedding task may name in ``params.model``: name -> the pool
    model. ``default`` is VIEWFINDER_CLIP_MODEL (the library's); the others come from
    VIEWFINDER_CLIP_MODELS and are loaded, like every model, on first use."""
    models = {DEFAULT_CLIP: "clip_image"}
    for name, spec in settings.clip_models.items():
        models[name] = "clip_image" if spec == settings.clip_model else f"clip_image:{name}"
    return models


def _src(name: str, setting: str, settings: Settings) -> ModelSource:
    return ModelSource(name, setting, str(getattr(settings, setting)))


def factories(
    entries: dict[str, ModelEntry], settings: Settings
) -> dict[str, Callable[[], BatchModel[Any, Any, Any]]]:
    """Pool factories: resolve the files (downloading if allowed), then build the model."""

    def factory(entry: ModelEntry) -> Callable[[], BatchModel[Any, Any, Any]]:
        return lambda: entry.build(entry.resolve(settings))

    return {name: factory(entry) for name, entry in entries.items()}


def batch_policy(settings: Settings) -> BatchPolicy:
    return BatchPolicy(
        max_batch_size=settings.batch_max_size,
        max_wait_s=settings.batch_max_wait_ms / 1000.0,
        queue_limit=settings.batch_queue_limit,
    )
