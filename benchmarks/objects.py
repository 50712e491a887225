"""Object labels benchmark: how right are the labels the ``objects`` task stores per image?

Runs the YOLOX COCO detector (``YoloxObjectDetector``, the model the ``objects`` task uses) over
COCO images with ground-truth boxes in YOLO txt form (``labels/<split>/<image>.txt``: ``class cx
cy w h``, class names in the set's ``*.yaml``) and compares, per image, the SET of labels it
would store at each threshold with the set of labels in the ground truth: image-level label
precision (of the labels stored, how many are in the image) and recall (of the labels in the
image, how many were stored), micro-averaged over images and labels. That is what a search
filter ``objects: ["dog"]`` sees: whether an image carries the label, not where the box is.

A set whose yaml names only some classes (coco8-human: person only) is scored on those classes
alone: its images have unlabelled dogs and cars that would otherwise count as wrong.

    .venv/bin/python -m benchmarks.objects
    .venv/bin/python -m benchmarks.objects --model ../shared/models/yolox/yolox_nano.onnx \\
        --dataset ../shared/data/coco8/coco8 --dataset ../shared/data/coco8/coco8-human

The detector runs once at the lowest threshold; each higher threshold keeps the stored labels
whose best box reaches it (the same set a run at that threshold gives: NMS only lets a box be
removed by a better-scoring one of its class). ms/image is the detector alone (letterbox,
ONNX Runtime, decode and NMS) on this machine's CPU, one image at a time.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from viewfinder.models.yolox import COCO_LABELS, YoloxObjectDetector

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "yolox" / "yolox_nano.onnx"
DEFAULT_SETS = (SHARED / "data" / "coco8" / "coco8", SHARED / "data" / "coco8" / "coco8-human")
THRESHOLDS = (0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)
_NAME_LINE = re.compile(r"^\s+(\d+):\s*(.+?)\s*$")


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    labels: frozenset[str]  # the ground truth's distinct labels


@dataclass(frozen=True)
class Scored:
    threshold: float
    precision: float
    recall: float
    stored: int  # labels stored, summed over images
    correct: int
    truth: int  # ground-truth labels, summed over images


def class_names(dataset: Path) -> dict[int, str]:
    """Class id -> name from the set's yaml (its ``names:`` block of ``  id: name`` lines)."""
    yaml = next(dataset.glob("*.yaml"))
    names: dict[int, str] = {}
    inside = False
    for line in yaml.read_text().splitlines():
        if line.startswith("names:"):
            inside = True
            continue
        if inside:
            match = _NAME_LINE.match(line)
            if match is None:
                if line.strip() and not line.startswith(" "):
                    break
                continue
            names[int(match.group(1))] = match.group(2)
    return names


def labelled_images(dataset: Path) -> tuple[list[LabelledImage], frozenset[str]]:
    """Every image of the set with its ground-truth labels, and the labels the set annotates."""
    names = class_names(dataset)
    unknown = set(names.values()) - set(COCO_LABELS)
    if unknown:
        raise ValueError(f"{dataset}: classes the detector does not know: {sorted(unknown)}")
    images = []
    for path in sorted((dataset / "images").rglob("*.jpg")):
        label_file = dataset / "labels" / path.parent.name / f"{path.stem}.txt"
        lines = label_file.read_text().split("\n") if label_file.exists() else []
        labels = frozenset(names[int(line.split()[0])] for line in lines if line.strip())
        images.append(LabelledImage(path, labels))
    return images, frozenset(names.values())


def score(
    predicted: Sequence[dict[str, float]],
    images: Sequence[LabelledImage],
    scored_labels: frozenset[str],
    threshold: float,
) -> Scored:
    stored = correct = truth = 0
    for best, image in zip(predicted, images, strict=True):
        labels = {label for label, s in best.items() if s >= threshold and label in scored_labels}
        stored += len(labels)
        correct += len(labels & image.labels)
        truth += len(image.labels)
    return Scored(
        threshold,
        correct / stored if stored else 1.0,
        correct / truth if truth else 1.0,
        stored,
        correct,
        truth,
    )


def detect_all(
    detector: YoloxObjectDetector, images: Sequence[LabelledImage]
) -> tuple[list[dict[str, float]], float]:
    """Per image, each label's best score; and the mean ms per image."""
    best_scores: list[dict[str, float]] = []
    elapsed = 0.0
    for image in images:
        rgb = Image.open(image.path).convert("RGB")
        rgb.load()
        started = time.perf_counter()
        prepared = detector.preprocess(rgb)
        found = detector.postprocess(detector.forward([prepared])[0], prepared)
        elapsed += time.perf_counter() - started
        best: dict[str, float] = {}
        for detection in found:
            best[detection.label] = max(best.get(detection.label, 0.0), detection.score)
        best_scores.append(best)
    return best_scores, 1000 * elapsed / max(1, len(images))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--dataset", type=Path, action="append", help="a coco8-style folder")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--repeat", type=int, default=3, help="timing passes (best is kept)")
    args = parser.parse_args(argv)
    datasets: list[Path] = args.dataset or list(DEFAULT_SETS)
    lowest = min(args.thresholds)
    detector = YoloxObjectDetector(args.model, min_score=lowest)
    detector.postprocess(
        detector.forward([detector.preprocess(detector.warmup_item())])[0],
        detector.preprocess(detector.warmup_item()),
    )
    print(
        f"model {args.model.name} ({detector.input_size[1]}x{detector.input_size[0]}), "
        f"{os.cpu_count()} CPUs"
    )
    for dataset in datasets:
        images, scored_labels = labelled_images(dataset)
        runs = [detect_all(detector, images) for _ in range(max(1, args.repeat))]
        predicted = runs[0][0]
        ms = min(ms for _, ms in runs)
        which = (
            "all 80 labels"
            if len(scored_labels) == len(COCO_LABELS)
            else ("labels " + ", ".join(sorted(scored_labels)))
        )
        print(f"\n{dataset.name}: {len(images)} images, scored on {which}; {ms:.1f} ms/image")
        print(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'stored':>6} {'right':>5} "
              f"{'truth':>5}")  # fmt: skip
        for threshold in sorted(args.thresholds):
            s = score(predicted, images, scored_labels, threshold)
            print(
                f"{s.threshold:>9.2f} {s.precision:>9.3f} {s.recall:>7.3f} {s.stored:>6} "
                f"{s.correct:>5} {s.truth:>5}"
            )
        for best, image in zip(predicted, images, strict=True):
            shown = ", ".join(f"{label} {s:.2f}" for label, s in sorted(best.items()) if s >= 0.2)
            print(f"  {image.path.name}: truth {sorted(image.labels)}; found (>=0.20) {shown}")


if __name__ == "__main__":
    main()
