"""Greedy non-maximum suppression in plain numpy, shared by every detector."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

OverlapMode = Literal["union", "min"]


def box_areas(boxes: NDArray[np.floating]) -> NDArray[np.float32]:
    """Areas of (N, 4) xyxy boxes; degenerate boxes count as zero."""
    widths = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None)
    heights = np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    return np.asarray(widths * heights, dtype=np.float32)


def overlap(
    box: NDArray[np.floating], boxes: NDArray[np.floating], mode: OverlapMode = "union"
) -> NDArray[np.float32]:
    """Overlap of one xyxy ``box`` with each of ``boxes``: intersection over union, or over the
    smaller of the two areas (``"min"``, MTCNN's last stage: it also removes a small box lying
    inside a larger one, which union overlap keeps)."""
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    intersection = inter_w * inter_h
    own_area = box_areas(box[None, :])[0]
    other_areas = box_areas(boxes)
    if mode == "min":
        denominator = np.minimum(own_area, other_areas)
    else:
        denominator = own_area + other_areas - intersection
    # Two degenerate boxes have no overlap rather than a division by zero.
    result = np.where(denominator > 0, intersection / np.maximum(denominator, 1e-12), 0.0)
    return result.astype(np.float32)


def iou(box: NDArray[np.floating], boxes: NDArray[np.floating]) -> NDArray[np.float32]:
    """Intersection over union of one xyxy ``box`` with each row of ``boxes``."""
    return overlap(box, boxes, "union")


def nms(
    boxes: NDArray[np.floating],
    scores: NDArray[np.floating],
    iou_threshold: float,
    mode: OverlapMode = "union",
) -> NDArray[np.int64]:
    """Indices of the boxes kept by greedy NMS, highest score first.

    A box is dropped when its overlap with an already kept, higher-scoring box exceeds
    ``iou_threshold``. Ties in score keep the earlier index first (stable sort).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    kept: list[int] = []
    while order.size > 0:
        best = int(order[0])
        kept.append(best)
        rest = order[1:]
        order = rest[overlap(boxes[best], boxes[rest], mode) <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)
