"""Reading the text in an image (OCR) with PaddleOCR's ONNX models, run by ONNX Runtime.

Two models, as in PaddleOCR and RapidOCR: a DB text detector (a per-pixel text probability map,
turned into rotated boxes here) and a CTC line recogniser (each box cropped upright, read as a
sequence of characters). The character set is read from the recogniser's ONNX metadata
(``character``), so the same code serves any PP-OCR recogniser exported with it. The default files
are the ones the ``rapidocr`` package ships (PP-OCRv6 small, multilingual); a folder holding one
``*det*.onnx`` and one ``*rec*.onnx`` serves as well.

What is done here, and why:
- the detector sees the image with its longer side at most ``det_max_side`` (rounded to a multiple
  of 32): photo text worth searching is not tiny, and the detector's cost grows with the pixels;
- recognition runs on crops of the image at up to ``crop_max_side`` (sharper than the detector's
  input), and is skipped outright when the detector found no text;
- lines read with a mean character confidence under ``min_score`` are dropped (noise that looks
  like letters: foliage, fences, brick).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image

from viewfinder.errors import ModelUnavailableError

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
REC_HEIGHT = 48  # the recogniser's input height
REC_MIN_WIDTH = 96  # lines are padded to at least this width (2:1); PaddleOCR pads to 320
REC_MAX_WIDTH = 3200  # a crop wider than this (a ratio past 66:1) is squeezed to it
REC_BATCH = 8
DET_PROB = 0.3  # DB: a pixel is text above this probability
DET_BOX_SCORE = 0.5  # a box is kept when its mean probability reaches this
DET_UNCLIP = 1.6  # DB shrinks text regions during training; boxes are grown back by this ratio
DET_MIN_SIDE = 3
MAX_BOXES = 300


# A line as the forward step leaves it: corners (in crop_source pixels), text, confidence.
RawLine = tuple[NDArray[np.float32], str, float]


@dataclass(frozen=True)
class OcrLine:
    """One line of text: what it says, the recogniser's mean confidence, and its four corners
    (clockwise from top left) in the caller's pixels."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OcrResult:
    lines: tuple[OcrLine, ...]

    @property
    def text(self) -> str:
        """The lines in reading order (top to bottom, then left to right), one per row."""
        return "\n".join(" ".join(line.text for line in row) for row in reading_rows(self.lines))


@dataclass(frozen=True)
class PreparedOcr:
    det_input: NDArray[np.float32]  # 3xHxW, BGR, (x / 255 - 0.5) / 0.5
    crop_source: NDArray[np.uint8]  # HxWx3 BGR: what the lines are cut from
    det_scale: tuple[float, float]  # (x, y) crop_source pixels per detector pixel
    scale: float  # crop_source pixels per caller pixel (<= 1)


def find_model_files(folder: Path) -> tuple[Path, Path]:
    """The detector and recogniser in ``folder``: exactly one ``*det*.onnx`` and one
    ``*rec*.onnx``."""
    found = []
    for role in ("det", "rec"):
        matches = sorted(p for p in folder.glob(f"*{role}*.onnx") if p.is_file())
        if len(matches) != 1:
            what = "none" if not matches else ", ".join(p.name for p in matches)
            raise ModelUnavailableError(
                f"the OCR model folder {folder} must hold exactly one *{role}*.onnx file "
                f"(found {what})"
            )
        found.append(matches[0])
    return found[0], found[1]


def characters_of(session: ort.InferenceSession, classes: int) -> list[str]:
    """The recogniser's classes: CTC blank, its dictionary (ONNX metadata), then a space."""
    meta = session.get_modelmeta().custom_metadata_map.get("character")
    if not meta:
        raise ModelUnavailableError(
            "the OCR recogniser has no 'character' dictionary in its ONNX metadata"
        )
    chars = ["", *meta.splitlines()]
    if len(chars) + 1 == classes:
        chars.append(" ")
    if len(chars) != classes:
        raise ModelUnavailableError(
            f"the OCR recogniser's dictionary has {len(chars)} classes, its output {classes}"
        )
    return chars


class OcrReader:
    """BatchModel: RGB PIL image -> ``OcrResult`` (lines with boxes, and the text)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        det_max_side: int = 736,
        crop_max_side: int = 1600,
        min_score: float = 0.5,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        det_path, rec_path = find_model_files(model_dir)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        chosen = list(providers or PREFERRED_PROVIDERS)
        available = set(ort.get_available_providers())
        chosen = [p for p in chosen if p in available] or ["CPUExecutionProvider"]
        self._det = ort.InferenceSession(str(det_path), options, providers=chosen)
        self._rec = ort.InferenceSession(str(rec_path), options, providers=chosen)
        classes = self._rec.get_outputs()[0].shape[-1]
        if not isinstance(classes, int):
            raise ModelUnavailableError("the OCR recogniser's class count is not fixed")
        self._chars = characters_of(self._rec, classes)
        self.det_max_side = det_max_side
        self.crop_max_side = crop_max_side
        self.min_score = min_score

    # --- the three steps ----------------------------------------------------------------------

    def preprocess(self, item: Image.Image) -> PreparedOcr:
        rgb = np.asarray(item if item.mode == "RGB" else item.convert("RGB"))
        height, width = rgb.shape[:2]
        scale = min(1.0, self.crop_max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        source = np.ascontiguousarray(rgb[:, :, ::-1])
        src_h, src_w = source.shape[:2]
        det_scale = min(1.0, self.det_max_side / max(src_h, src_w))
        det_w = max(32, round(src_w * det_scale / 32) * 32)
        det_h = max(32, round(src_h * det_scale / 32) * 32)
        resized = cv2.resize(source, (det_w, det_h), interpolation=cv2.INTER_AREA)
        tensor = (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
        return PreparedOcr(
            np.ascontiguousarray(tensor), source, (src_w / det_w, src_h / det_h), scale
        )

    def forward(self, batch: Sequence[PreparedOcr]) -> list[list[RawLine]]:
        """Detect each image's lines, then read every line of the batch in width-sorted
        recogniser batches. Per image: (corners in crop_source pixels, text, score)."""
        boxes = [self._detect(prepared) for prepared in batch]
        crops = [
            (i, box, crop_line(prepared.crop_source, box))
            for i, (prepared, image_boxes) in enumerate(zip(batch, boxes, strict=True))
            for box in image_boxes
        ]
        readings = self._recognise([crop for _, _, crop in crops]) if crops else []
        out: list[list[RawLine]] = [[] for _ in batch]
        for (i, box, _), (text, score) in zip(crops, readings, strict=True):
            out[i].append((box, text, score))
        return out

    def postprocess(self, raw: list[RawLine], prepared: PreparedOcr) -> OcrResult:
        lines = []
        for box, read, score in raw:
            text = read.strip()
            if not text or score < self.min_score:
                continue
            corners = tuple((float(x / prepared.scale), float(y / prepared.scale)) for x, y in box)
            lines.append(OcrLine(text, score, corners))
        return OcrResult(tuple(lines))

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (320, 240), (127, 127, 127))

    # --- detection ----------------------------------------------------------------------------

    def _detect(self, prepared: PreparedOcr) -> list[NDArray[np.float32]]:
        (prob,) = self._det.run(None, {self._det.get_inputs()[0].name: prepared.det_input[None]})
        probability = np.asarray(prob, dtype=np.float32)[0, 0]
        if probability.max(initial=0.0) > 1.0 or probability.min(initial=0.0) < 0.0:
            probability = 1.0 / (1.0 + np.exp(-probability))  # an export without the sigmoid
        sx, sy = prepared.det_scale
        src_h, src_w = prepared.crop_source.shape[:2]
        boxes = []
        for box in db_boxes(probability):
            box[:, 0] = np.clip(box[:, 0] * sx, 0, src_w - 1)
            box[:, 1] = np.clip(box[:, 1] * sy, 0, src_h - 1)
            if np.linalg.norm(box[0] - box[1]) > DET_MIN_SIDE and (
                np.linalg.norm(box[0] - box[3]) > DET_MIN_SIDE
            ):
                boxes.append(box)
        return boxes

    # --- recognition --------------------------------------------------------------------------

    def _recognise(self, crops: list[NDArray[np.uint8]]) -> list[tuple[str, float]]:
        """(text, mean character confidence) per crop; similar widths share a batch."""
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops]
        order = np.argsort(ratios, kind="stable")
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        name = self._rec.get_inputs()[0].name
        for start in range(0, len(order), REC_BATCH):
            chunk = order[start : start + REC_BATCH]
            widest = max(ratios[i] for i in chunk)
            width = min(REC_MAX_WIDTH, max(REC_MIN_WIDTH, math.ceil(REC_HEIGHT * widest)))
            tensor = np.zeros((len(chunk), 3, REC_HEIGHT, width), dtype=np.float32)
            for row, i in enumerate(chunk):
                crop = crops[i]
                w = min(width, max(1, math.ceil(REC_HEIGHT * ratios[i])))
                resized = cv2.resize(crop, (w, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
                tensor[row, :, :, :w] = (resized.astype(np.float32) / 127.5 - 1.0).transpose(
                    2, 0, 1
                )
            (probs,) = self._rec.run(None, {name: tensor})
            for row, i in enumerate(chunk):
                results[i] = ctc_decode(np.asarray(probs[row]), self._chars)
        return results


def ctc_decode(probs: NDArray[np.float32], chars: list[str]) -> tuple[str, float]:
    """Greedy CTC: the best class per step, repeats merged, blanks (class 0) dropped; the
    score is the mean probability of the characters kept."""
    best = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join(chars[c] for c in best[keep])
    return text, float(confidence[keep].mean())


def db_boxes(probability: NDArray[np.float32]) -> list[NDArray[np.float32]]:
    """DB post-processing: text regions of the probability map as rotated rectangles (4 corners,
    clockwise from top left, detector pixels), grown back by ``DET_UNCLIP``."""
    mask = cv2.dilate((probability > DET_PROB).astype(np.uint8), np.ones((2, 2), np.uint8))
    found, _ = cv2.findContours(
        np.asarray(mask, dtype=np.uint8) * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    boxes = []
    for found_contour in found[: MAX_BOXES * 4]:
        contour = np.asarray(found_contour, dtype=np.int32)
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < DET_MIN_SIDE:
            continue
        if region_score(probability, contour) < DET_BOX_SCORE:
            continue
        # The polygon offset DB uses (area * ratio / perimeter), on a rectangle: every side
        # moves out by the same distance.
        distance = w * h * DET_UNCLIP / (2 * (w + h))
        w, h = w + 2 * distance, h + 2 * distance
        if min(w, h) < DET_MIN_SIDE + 2:
            continue
        corners = cv2.boxPoints(((cx, cy), (w, h), angle))
        boxes.append(order_corners(np.asarray(corners, dtype=np.float32)))
        if len(boxes) >= MAX_BOXES:
            break
    return boxes


def region_score(probability: NDArray[np.float32], contour: NDArray[np.int32]) -> float:
    """The mean text probability inside a contour (its bounding box, masked)."""
    x, y, w, h = cv2.boundingRect(contour)
    patch = probability[y : y + h, x : x + w]
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(mask, [contour.reshape(-1, 2) - np.array([x, y])], 1)
    return float(cv2.mean(patch, mask)[0])


def order_corners(points: NDArray[np.float32]) -> NDArray[np.float32]:
    """Four corners as top left, top right, bottom right, bottom left."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)


def crop_line(image: NDArray[np.uint8], box: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The box's pixels warped upright; a box taller than wide (a vertical line, or text
    rotated past 45 degrees) is turned to lie along its length."""
    width = max(1, round(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3]))))
    height = max(1, round(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2]))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(box.astype(np.float32), target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if height / width >= 1.5:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def reading_rows(lines: Sequence[OcrLine]) -> list[list[OcrLine]]:
    """Lines grouped into rows (vertical centres within half a line's height), top to bottom,
    each row left to right."""

    def centre(line: OcrLine) -> tuple[float, float]:
        xs = [p[0] for p in line.box]
        ys = [p[1] for p in line.box]
        return sum(xs) / len(xs), sum(ys) / len(ys)

    def height(line: OcrLine) -> float:
        ys = [p[1] for p in line.box]
        return max(ys) - min(ys)

    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda l_: centre(l_)[1]):
        if rows:
            last = rows[-1][-1]
            if abs(centre(line)[1] - centre(last)[1]) <= max(height(last), height(line)) / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [sorted(row, key=lambda l_: centre(l_)[0]) for row in rows]
