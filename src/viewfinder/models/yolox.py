"""Person and object detection with a YOLOX ONNX export (raw head output) run by ONNX Runtime.

The same code serves the YOLOX-nano test weights (416 px) and the official YOLOX-s release
(640 px): the input size is read from the model, and the grid decode depends only on it. The
exports are COCO detectors: ``YoloxPersonDetector`` keeps class 0 (person), ``YoloxObjectDetector``
every one of the 80 classes, each detection with its label (``COCO_LABELS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image

from viewfinder.models.nms import nms
from viewfinder.models.types import Detection, LabeledDetection

STRIDES = (8, 16, 32)
PERSON_CLASS = 0
PAD_VALUE = 114  # the grey YOLOX pads its letterbox with during training
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
# The 80 COCO classes in the order of the detector's class scores (YOLOX's COCO_CLASSES), with
# the short names users type: "tv" (COCO's "tv monitor"), "couch", "cell phone"...
COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
# At most this many objects are kept of one image (best first): a crowd or a shelf of books
# is still searchable without thousands of rows.
MAX_OBJECTS = 100
PRE_NMS_TOP = 1000  # NMS is quadratic: only the best candidates of a very low threshold go in


@dataclass(frozen=True)
class LetterboxedImage:
    """A CHW BGR float32 tensor of the model's size and how to map its boxes back."""

    tensor: NDArray[np.float32]
    ratio: float
    width: int
    height: int


def letterbox(image: Image.Image, size: tuple[int, int]) -> LetterboxedImage:
    """Resize keeping the aspect ratio so it fits ``size`` (h, w), pad bottom/right with 114."""
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = rgb.shape[:2]
    target_h, target_w = size
    ratio = min(target_h / height, target_w / width)
    new_w, new_h = max(1, int(width * ratio)), max(1, int(height * ratio))
    # Resize before swapping to BGR: resizing a channel-reversed view forces a slow copy.
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((target_h, target_w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:new_h, :new_w] = resized[:, :, ::-1]
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)
    return LetterboxedImage(tensor, ratio, width, height)


def make_grid(size: tuple[int, int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Per-anchor (x, y) cell offsets and strides, in the order the YOLOX head emits them."""
    offsets: list[NDArray[np.float32]] = []
    strides: list[NDArray[np.float32]] = []
    for stride in STRIDES:
        rows, cols = size[0] // stride, size[1] // stride
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        offsets.append(np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32))
        strides.append(np.full((rows * cols, 1), stride, dtype=np.float32))
    return np.concatenate(offsets), np.concatenate(strides)


def decode_persons(
    raw: NDArray[np.float32],
    grid: NDArray[np.float32],
    strides: NDArray[np.float32],
    min_score: float,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Person boxes (xyxy, model-input pixels) and scores from one image's raw head output.

    Rows are (dx, dy, log w, log h, objectness, class scores...); objectness and class scores
    are already sigmoid-activated by the exported head, the box is not.
    """
    scores = raw[:, 4] * raw[:, 5 + PERSON_CLASS]
    keep = scores >= min_score
    raw, scores = raw[keep], scores[keep]
    centers = (raw[:, :2] + grid[keep]) * strides[keep]
    sizes = np.exp(raw[:, 2:4]) * strides[keep]
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    return boxes.astype(np.float32), scores.astype(np.float32)


def decode_objects(
    raw: NDArray[np.float32],
    grid: NDArray[np.float32],
    strides: NDArray[np.float32],
    min_score: float,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]:
    """Boxes (xyxy, model-input pixels), scores and class ids of every class from one image's
    raw head output: each anchor votes for its best class (objectness x class score), as
    YOLOX's own postprocess does."""
    class_scores = raw[:, 5:] * raw[:, 4:5]
    classes = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(classes)), classes]
    keep = scores >= min_score
    raw, scores, classes = raw[keep], scores[keep], classes[keep]
    centers = (raw[:, :2] + grid[keep]) * strides[keep]
    sizes = np.exp(raw[:, 2:4]) * strides[keep]
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    return boxes.astype(np.float32), scores.astype(np.float32), classes.astype(np.int64)


def classwise_nms(
    boxes: NDArray[np.float32],
    scores: NDArray[np.float32],
    classes: NDArray[np.int64],
    iou_threshold: float,
) -> NDArray[np.int64]:
    """NMS within each class only (a dog on a sofa keeps both boxes), best first: each class's
    boxes are moved apart by more than the image, so boxes of two classes never overlap."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (classes.astype(np.float32) * span)[:, None]
    return np.asarray(nms(shifted, scores, iou_threshold), dtype=np.int64)


class _YoloxSession:
    """The ONNX session and the shared BatchModel steps (letterbox, run) of both detectors."""

    def __init__(
        self,
        model_path: Path,
        min_score: float = 0.4,
        nms_iou: float = 0.45,
        providers: list[str] | None = None,
    ) -> None:
        available = ort.get_available_providers()
        chosen = providers or [p for p in PREFERRED_PROVIDERS if p in available]
        self._session = ort.InferenceSession(str(model_path), providers=chosen)
        model_input = self._session.get_inputs()[0]
        self._input_name: str = model_input.name
        batch, _, height, width = model_input.shape
        if not isinstance(height, int) or not isinstance(width, int):
            raise ValueError(
                f"{model_path}: YOLOX export needs a fixed input size, got {height}x{width}"
            )
        self.input_size = (height, width)
        # A fixed batch dimension (the usual export) cannot take a stacked batch.
        self.dynamic_batch = not isinstance(batch, int)
        self.min_score = min_score
        self.nms_iou = nms_iou
        self._grid, self._strides = make_grid(self.input_size)

    def preprocess(self, item: Image.Image) -> LetterboxedImage:
        return letterbox(item, self.input_size)

    def forward(self, batch: Sequence[LetterboxedImage]) -> list[NDArray[np.float32]]:
        if self.dynamic_batch:
            stacked = np.stack([prepared.tensor for prepared in batch])
            outputs = self._session.run(None, {self._input_name: stacked})[0]
            return list(outputs)
        return [
            self._session.run(None, {self._input_name: prepared.tensor[None]})[0][0]
            for prepared in batch
        ]

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (320, 240), (127, 127, 127))


def _to_original(boxes: NDArray[np.float32], prepared: LetterboxedImage) -> NDArray[np.float32]:
    limits = np.array([prepared.width, prepared.height] * 2, dtype=np.float32)
    clipped: NDArray[np.float32] = np.clip(boxes / prepared.ratio, 0.0, limits)
    return clipped


class YoloxPersonDetector(_YoloxSession):
    """BatchModel: RGB PIL image -> person detections, best first."""

    def postprocess(self, raw: NDArray[np.float32], prepared: LetterboxedImage) -> list[Detection]:
        boxes, scores = decode_persons(raw, self._grid, self._strides, self.min_score)
        kept = nms(boxes, scores, self.nms_iou)
        boxes = _to_original(boxes[kept], prepared)
        return [
            Detection((x1, y1, x2, y2), score)
            for (x1, y1, x2, y2), score in zip(boxes.tolist(), scores[kept].tolist(), strict=True)
            if x2 > x1 and y2 > y1  # a box over the letterbox padding is empty once clipped
        ]


class YoloxObjectDetector(_YoloxSession):
    """BatchModel: RGB PIL image -> detections of every COCO class with their labels, best
    first, at most ``MAX_OBJECTS``."""

    def postprocess(
        self, raw: NDArray[np.float32], prepared: LetterboxedImage
    ) -> list[LabeledDetection]:
        if raw.shape[1] != 5 + len(COCO_LABELS):
            raise ValueError(
                f"not a COCO detector: {raw.shape[1] - 5} classes, expected {len(COCO_LABELS)}"
            )
        boxes, scores, classes = decode_objects(raw, self._grid, self._strides, self.min_score)
        if len(scores) > PRE_NMS_TOP:
            best = np.argsort(-scores, kind="stable")[:PRE_NMS_TOP]
            boxes, scores, classes = boxes[best], scores[best], classes[best]
        kept = classwise_nms(boxes, scores, classes, self.nms_iou)[:MAX_OBJECTS]
        boxes = _to_original(boxes[kept], prepared)
        return [
            LabeledDetection(COCO_LABELS[label], (x1, y1, x2, y2), score)
            for (x1, y1, x2, y2), score, label in zip(
                boxes.tolist(), scores[kept].tolist(), classes[kept].tolist(), strict=True
            )
            if x2 > x1 and y2 > y1
        ]
