"""Face detection with YuNet through OpenCV's ``FaceDetectorYN`` (box, score, 5 landmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from viewfinder.models.scaled import ScaledImage, shrink
from viewfinder.models.types import Detection

# YuNet is trained at this scale; larger inputs only cost time, so images are shrunk to it.
MAX_SIDE = 640
NO_FACES = np.zeros((0, 15), dtype=np.float32)


def faces_to_detections(faces: NDArray[np.float32], prepared: ScaledImage) -> list[Detection]:
    """YuNet rows (x, y, w, h, 5 landmark (x, y) pairs, score) -> detections in input pixels."""
    detections = []
    for row in faces[np.argsort(-faces[:, 14], kind="stable")]:
        x, y, w, h = (row[:4] / prepared.scale).tolist()
        box = (
            min(max(x, 0.0), prepared.width),
            min(max(y, 0.0), prepared.height),
            min(max(x + w, 0.0), prepared.width),
            min(max(y + h, 0.0), prepared.height),
        )
        if box[2] <= box[0] or box[3] <= box[1]:  # empty once clipped to the image
            continue
        points = (row[4:14] / prepared.scale).reshape(5, 2).tolist()
        landmarks = tuple((float(px), float(py)) for px, py in points)
        detections.append(Detection(box, float(row[14]), landmarks))
    return detections


class YunetFaceDetector:
    """BatchModel: RGB PIL image -> face detections with landmarks, best first.

    ``cv2.FaceDetectorYN`` keeps per-size state (``setInputSize``) and is not thread-safe, so
    the one instance is used only from ``forward``, which the batcher calls from one thread.
    """

    def __init__(self, model_path: Path, min_score: float = 0.6, nms_iou: float = 0.3) -> None:
        self.min_score = min_score
        self.nms_iou = nms_iou
        self._detector = cv2.FaceDetectorYN.create(
            str(model_path), "", (MAX_SIDE, MAX_SIDE), min_score, nms_iou
        )

    def preprocess(self, item: Image.Image) -> ScaledImage:
        return shrink(item, MAX_SIDE, "bgr")

    def forward(self, batch: Sequence[ScaledImage]) -> list[NDArray[np.float32]]:
        results = []
        for prepared in batch:
            height, width = prepared.pixels.shape[:2]
            self._detector.setInputSize((width, height))
            _, faces = self._detector.detect(prepared.pixels)
            results.append(NO_FACES if faces is None else np.asarray(faces, dtype=np.float32))
        return results

    def postprocess(self, raw: NDArray[np.float32], prepared: ScaledImage) -> list[Detection]:
        return faces_to_detections(raw, prepared)

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (320, 240), (127, 127, 127))
