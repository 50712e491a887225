"""MTCNN face detection (Zhang et al. 2016): three small PyTorch networks in a cascade.

P-Net slides over an image pyramid and proposes face windows, R-Net rejects most of them on
24x24 crops, O-Net scores and refines the rest on 48x48 crops and places five landmarks.
The layer names match the facenet-pytorch state dicts (``pnet.pt``, ``rnet.pt``, ``onet.pt``).

Boxes are continuous xyxy pixel coordinates throughout (width = x2 - x1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import nn

from viewfinder.models.nms import nms
from viewfinder.models.scaled import ScaledImage, shrink
from viewfinder.models.types import Detection

FILES = ("pnet.pt", "rnet.pt", "onet.pt")

MIN_FACE_SIZE = 20
PYRAMID_FACTOR = 0.709
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
# NMS overlaps as in the reference implementation: within one pyramid scale, across scales,
# after R-Net, and after O-Net (the last one over the smaller box, see nms.overlap).
NMS_WITHIN_SCALE = 0.5
NMS_ACROSS_SCALES = 0.7
NMS_REFINE = 0.7
NMS_OUTPUT = 0.7
PNET_STRIDE = 2
PNET_WINDOW = 12
# A 1080p photo would send P-Net over a 648x1152 first pyramid level (faces of 20 px). Faces
# that small in such a photo are useless downstream (recognition wants ~40 px and more), so
# images are shrunk to this longer side first; that cuts the P-Net work about 2.3x at 1080p.
MAX_SIDE = 1280


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12x12 windows at stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(box offsets (N, 4, h, w), face probability (N, h, w))."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(box offsets (N, 4), face probability (N,))."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(flatten_caffe_order(x)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """Output network on 48x48 crops: final score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(box offsets (N, 4), landmarks (N, 10): five x then five y, face probability (N,))."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(flatten_caffe_order(x)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)[:, 1]


def flatten_caffe_order(x: torch.Tensor) -> torch.Tensor:
    """Flatten NCHW as the original Caffe weights expect: width-major, then height, channel."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


def load_net(net: nn.Module, path: Path, device: str) -> nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


@dataclass(frozen=True)
class FaceCandidates:
    """Boxes (N, 4) xyxy, scores (N,) and landmarks (N, 5, 2), in working-image pixels."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    landmarks: NDArray[np.float32]

    @staticmethod
    def empty() -> FaceCandidates:
        return FaceCandidates(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )


def normalise(pixels: NDArray[np.uint8], device: str) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in [-1, 1) as the networks were trained."""
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).to(device)
    return (tensor.permute(0, 3, 1, 2).float() - 127.5) * 0.0078125


def pyramid_scales(height: int, width: int, min_face: int, factor: float) -> list[float]:
    """Scales that map faces from ``min_face`` px up to the whole image onto P-Net's window."""
    scale = PNET_WINDOW / min_face
    smallest_side = min(height, width) * scale
    scales = []
    while smallest_side >= PNET_WINDOW:
        scales.append(scale)
        scale *= factor
        smallest_side *= factor
    return scales


def apply_regression(
    boxes: NDArray[np.float32], offsets: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Move each box edge by its predicted offset, given in units of the box's size."""
    sizes = np.tile(boxes[:, 2:4] - boxes[:, 0:2], 2)
    return (boxes + offsets * sizes).astype(np.float32)


def to_squares(boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Grow each box to a square about its centre (the next stage wants square crops)."""
    centres = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = np.max(boxes[:, 2:4] - boxes[:, 0:2], axis=1, keepdims=True) / 2
    return np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)


def crop_patches(
    rgb: NDArray[np.uint8], boxes: NDArray[np.float32], size: int
) -> NDArray[np.uint8]:
    """Square crops resized to ``size``; parts of a box outside the image are zero-padded, so a
    face at the border keeps its proportions."""
    height, width = rgb.shape[:2]
    patches = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for index, box in enumerate(np.round(boxes).astype(np.int64)):
        x1, y1, x2, y2 = box.tolist()
        if x2 <= x1 or y2 <= y1:
            continue
        canvas = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
        ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if ix2 > ix1 and iy2 > iy1:
            canvas[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = rgb[iy1:iy2, ix1:ix2]
        patches[index] = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return patches


@dataclass(frozen=True)
class Windows:
    """P-Net windows (N, 4) in original-image pixels, their scores and box offsets (N, 4)."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    offsets: NDArray[np.float32]

    def select(self, indices: NDArray[np.int64]) -> Windows:
        return Windows(self.boxes[indices], self.scores[indices], self.offsets[indices])


def windows_from_pnet(
    offsets: NDArray[np.float32], probs: NDArray[np.float32], scale: float, threshold: float
) -> Windows:
    """The 12x12 windows of the P-Net cells above threshold, after NMS within this scale."""
    rows, cols = np.nonzero(probs >= threshold)
    cells = np.stack([cols, rows], axis=1).astype(np.float32)
    top_left = cells * PNET_STRIDE / scale
    bottom_right = (cells * PNET_STRIDE + PNET_WINDOW) / scale
    windows = Windows(
        np.concatenate([top_left, bottom_right], axis=1),
        probs[rows, cols].astype(np.float32),
        offsets[:, rows, cols].T.astype(np.float32),
    )
    return windows.select(nms(windows.boxes, windows.scores, NMS_WITHIN_SCALE))


@torch.inference_mode()
def propose(
    pnet: nn.Module, rgb: NDArray[np.uint8], threshold: float, device: str
) -> NDArray[np.float32]:
    """Stage 1: P-Net over the image pyramid; square candidate boxes."""
    height, width = rgb.shape[:2]
    per_scale = []
    for scale in pyramid_scales(height, width, MIN_FACE_SIZE, PYRAMID_FACTOR):
        size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
        level = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        offsets, probs = pnet(normalise(level[None], device))
        per_scale.append(
            windows_from_pnet(offsets[0].cpu().numpy(), probs[0].cpu().numpy(), scale, threshold)
        )
    if not per_scale:
        return np.zeros((0, 4), np.float32)
    windows = Windows(
        np.concatenate([w.boxes for w in per_scale]),
        np.concatenate([w.scores for w in per_scale]),
        np.concatenate([w.offsets for w in per_scale]),
    )
    windows = windows.select(nms(windows.boxes, windows.scores, NMS_ACROSS_SCALES))
    return to_squares(apply_regression(windows.boxes, windows.offsets))


@torch.inference_mode()
def refine(
    rnet: nn.Module,
    rgb: NDArray[np.uint8],
    boxes: NDArray[np.float32],
    threshold: float,
    device: str,
) -> NDArray[np.float32]:
    """Stage 2: R-Net on 24x24 crops rejects most windows and tightens the rest."""
    if len(boxes) == 0:
        return boxes
    offsets, probs = rnet(normalise(crop_patches(rgb, boxes, 24), device))
    passed = (probs >= threshold).cpu().numpy()
    boxes, scores = boxes[passed], probs.cpu().numpy()[passed]
    offsets_np = offsets.cpu().numpy()[passed]
    kept = nms(boxes, scores, NMS_REFINE)
    return to_squares(apply_regression(boxes[kept], offsets_np[kept]))


@torch.inference_mode()
def finalise(
    onet: nn.Module,
    rgb: NDArray[np.uint8],
    boxes: NDArray[np.float32],
    threshold: float,
    device: str,
) -> FaceCandidates:
    """Stage 3: O-Net on 48x48 crops gives the final scores, boxes and landmarks."""
    if len(boxes) == 0:
        return FaceCandidates.empty()
    offsets, marks, probs = (
        t.cpu().numpy() for t in onet(normalise(crop_patches(rgb, boxes, 48), device))
    )
    passed = probs >= threshold
    boxes, offsets, marks, scores = boxes[passed], offsets[passed], marks[passed], probs[passed]
    sizes = (boxes[:, 2:4] - boxes[:, 0:2])[:, None, :]
    # Landmarks are predicted relative to the crop, so they use the box before regression.
    points = boxes[:, None, 0:2] + np.stack([marks[:, :5], marks[:, 5:]], axis=-1) * sizes
    boxes = apply_regression(boxes, offsets)
    kept = nms(boxes, scores, NMS_OUTPUT, mode="min")
    return FaceCandidates(
        boxes[kept], scores[kept].astype(np.float32), points[kept].astype(np.float32)
    )


def detect_faces(
    nets: tuple[nn.Module, nn.Module, nn.Module],
    rgb: NDArray[np.uint8],
    thresholds: tuple[float, float, float],
    device: str,
) -> FaceCandidates:
    """The whole cascade on one RGB image; results in that image's pixels, best first."""
    pnet, rnet, onet = nets
    candidates = propose(pnet, rgb, thresholds[0], device)
    candidates = refine(rnet, rgb, candidates, thresholds[1], device)
    return finalise(onet, rgb, candidates, thresholds[2], device)


def to_detections(
    faces: FaceCandidates, prepared: ScaledImage, min_score: float
) -> list[Detection]:
    limits = np.array([prepared.width, prepared.height] * 2, dtype=np.float32)
    boxes = np.clip(faces.boxes / prepared.scale, 0.0, limits)
    points = faces.landmarks / prepared.scale
    detections = []
    for box, score, marks in zip(
        boxes.tolist(), faces.scores.tolist(), points.tolist(), strict=True
    ):
        x1, y1, x2, y2 = box
        if score < min_score or x2 <= x1 or y2 <= y1:  # empty once clipped to the image
            continue
        landmarks = tuple((float(x), float(y)) for x, y in marks)
        detections.append(Detection((x1, y1, x2, y2), float(score), landmarks))
    return detections


class MtcnnFaceDetector:
    """BatchModel: RGB PIL image -> face detections with landmarks, best first.

    ``min_score`` filters the final O-Net score, on top of the cascade's stage thresholds.
    """

    def __init__(
        self,
        model_dir: Path,
        min_score: float = 0.6,
        device: str = "cpu",
        thresholds: tuple[float, float, float] = STAGE_THRESHOLDS,
    ) -> None:
        self.min_score = min_score
        self.device = device
        self.thresholds = thresholds
        self._nets = (
            load_net(PNet(), model_dir / FILES[0], device),
            load_net(RNet(), model_dir / FILES[1], device),
            load_net(ONet(), model_dir / FILES[2], device),
        )

    def preprocess(self, item: Image.Image) -> ScaledImage:
        return shrink(item, MAX_SIDE)

    def forward(self, batch: Sequence[ScaledImage]) -> list[FaceCandidates]:
        # Each image has its own pyramid, so the cascade runs per image.
        return [detect_faces(self._nets, p.pixels, self.thresholds, self.device) for p in batch]

    def postprocess(self, raw: FaceCandidates, prepared: ScaledImage) -> list[Detection]:
        return to_detections(raw, prepared, self.min_score)

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (320, 240), (127, 127, 127))
