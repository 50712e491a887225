"""Face recognition benchmark on any labelled set of photos.

Detects the largest face of each photo with YuNet (or MTCNN), aligns it to the ArcFace
template, embeds it with the recogniser, and prints pair AUC (same vs different person),
rank-1 leave-one-out identification, and BCubed precision/recall/F1 of clustering.

Photos come from folders laid out as ``person/photo.jpg`` and/or from ``--identity-csv``
files (``image,person,...`` rows, images beside the CSV: the format of ../shared/data's face
sets). Rows naming several people (``a;b``), a group or an uncertain name (``name?``) are
skipped: with one face taken per photo their label would be ambiguous.

    .venv/bin/python -m benchmarks.faces PEOPLE_DIR [--identity-csv CSV ...] [--method all]
    .venv/bin/python -m benchmarks.faces \\
        --identity-csv ../shared/data/faces_face_recognition/identity_mapping.csv \\
        --identity-csv ../shared/data/faces_openface/identity_mapping.csv \\
        --identity-csv ../shared/data/faces_facenet_pytorch/identity_mapping.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from viewfinder.faces.align import align_face
from viewfinder.faces.clustering import DEFAULT_DISTANCE_THRESHOLD, ClusterMethod, cluster_faces
from viewfinder.faces.evaluation import bcubed, pair_auc, pair_scores, rank1_accuracy
from viewfinder.models.face_recognizer import FaceRecognizer
from viewfinder.models.types import Detection
from viewfinder.models.yunet import YunetFaceDetector
from viewfinder.runtime.batch_model import BatchModel

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
DEFAULT_DETECTOR_MODELS = {
    "yunet": SHARED_MODELS / "yunet" / "face_detection_yunet_opencv_zoo.onnx",
    "mtcnn": SHARED_MODELS / "mtcnn",
}
DEFAULT_RECOGNIZER = SHARED_MODELS / "mobilefacenet" / "mobilefacenet.onnx"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
METHODS: tuple[ClusterMethod, ...] = ("hdbscan", "dbscan", "agglomerative")


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    person: str


def photos_from_folder(root: Path) -> list[LabelledPhoto]:
    """``root/person/photo.jpg`` -> one labelled photo per image file."""
    return [
        LabelledPhoto(path, person_dir.name)
        for person_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(person_dir.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]


def photos_from_identity_csv(csv_path: Path) -> list[LabelledPhoto]:
    photos = []
    with csv_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            person = row["person"].strip()
            if not person or ";" in person or "?" in person or person.upper() == "GROUP":
                continue
            photos.append(LabelledPhoto(csv_path.parent / row["image"], person))
    return photos


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


@dataclass(frozen=True)
class Embedded:
    vectors: NDArray[np.float32]
    labels: NDArray[np.str_]
    photo_ids: list[str]
    missed: list[Path]
    detect_s: float
    embed_s: float


FaceDetector = BatchModel[Image.Image, Any, list[Detection]]


def make_detector(kind: str, model_path: Path | None) -> FaceDetector:
    path = model_path or DEFAULT_DETECTOR_MODELS[kind]
    if kind == "mtcnn":
        from viewfinder.models.mtcnn import MtcnnFaceDetector

        return MtcnnFaceDetector(path)
    return YunetFaceDetector(path)


def embed_largest_faces(
    photos: Iterable[LabelledPhoto], detector: FaceDetector, recognizer: FaceRecognizer
) -> Embedded:
    vectors, labels, photo_ids, missed = [], [], [], []
    detect_s = embed_s = 0.0
    for photo in photos:
        image = load_rgb(photo.path)
        started = time.perf_counter()
        prepared = detector.preprocess(image)
        detections = detector.postprocess(detector.forward([prepared])[0], prepared)
        detect_s += time.perf_counter() - started
        faces = [d for d in detections if d.landmarks is not None]
        if not faces:
            missed.append(photo.path)
            continue
        largest = max(faces, key=lambda d: d.area)
        assert largest.landmarks is not None
        started = time.perf_counter()
        vectors.append(recognizer.embed([align_face(image, largest.landmarks)])[0])
        embed_s += time.perf_counter() - started
        labels.append(photo.person)
        photo_ids.append(str(photo.path))
    return Embedded(np.stack(vectors), np.array(labels), photo_ids, missed, detect_s, embed_s)


# --- surrogate identity sets ---------------------------------------------------------------------
#
# The shared face sets hold 1 to 11 photos per person, so the "10 people x 10 photos" sets
# cannot be drawn from them. A SURROGATE set stands in: the 10 people with the most real photos,
# each filled up to 10 photos by augmented variants of their real photos (crop, flip, brightness
# and contrast, small rotation, downscale, blur, JPEG quality). Variants of one photo share its
# pose and expression (easier than independent photos) but are degraded (harder): the figures are
# an estimate, not a measurement on real photos, and labelled SURROGATE wherever printed.


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One plausible re-take of a photo: every step random, all of them mild."""
    from PIL import ImageEnhance, ImageFilter

    width, height = image.size
    keep = rng.uniform(0.8, 1.0)
    crop_w, crop_h = int(width * keep), int(height * keep)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    out = image.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.65, 1.35))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.3))
    out = out.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, expand=True)
    scale = rng.uniform(0.5, 1.0)
    out = out.resize((max(1, int(out.width * scale)), max(1, int(out.height * scale))))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=int(rng.integers(35, 92)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


@dataclass(frozen=True)
class SurrogatePhoto:
    image: Image.Image
    person: str
    photo_id: str
    real: bool  # the unmodified photo; False: an augmented variant


def surrogate_set(
    photos: list[LabelledPhoto], people: int, per_person: int, seed: int
) -> list[SurrogatePhoto]:
    """``people`` people (most real photos first, ties by name) x ``per_person`` photos: each
    real photo once, unmodified, then augmented variants of them in turn."""
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[LabelledPhoto]] = {}
    for photo in photos:
        by_person.setdefault(photo.person, []).append(photo)
    chosen = sorted(by_person, key=lambda p: (-len(by_person[p]), p))[:people]
    result: list[SurrogatePhoto] = []
    for person in chosen:
        real = by_person[person][:per_person]
        images = [load_rgb(photo.path) for photo in real]
        for index in range(per_person):
            source = index % len(real)
            if index < len(real):
                image, is_real = images[source], True
            else:
                image, is_real = augment(images[source], rng), False
            result.append(SurrogatePhoto(image, person, f"{person}/{index}", is_real))
    return result


def embed_images(
    images: list[tuple[Image.Image, str, str]], detector: FaceDetector, recognizer: FaceRecognizer
) -> tuple[NDArray[np.float32], NDArray[np.str_], list[str], int]:
    """(vectors, person labels, photo ids, photos without a face) for (image, person, id)."""
    vectors, labels, ids, missed = [], [], [], 0
    for image, person, photo_id in images:
        prepared = detector.preprocess(image)
        detections = detector.postprocess(detector.forward([prepared])[0], prepared)
        faces = [d for d in detections if d.landmarks is not None]
        if not faces:
            missed += 1
            continue
        largest = max(faces, key=lambda d: d.area)
        assert largest.landmarks is not None
        vectors.append(recognizer.embed([align_face(image, largest.landmarks)])[0])
        labels.append(person)
        ids.append(photo_id)
    return np.stack(vectors), np.array(labels), ids, missed


def print_clustering(
    title: str,
    vectors: NDArray[np.float32],
    labels: NDArray[np.str_],
    photo_ids: list[str],
    methods: Iterable[ClusterMethod],
    min_cluster_size: int,
    distance_threshold: float,
) -> dict[tuple[str, bool], tuple[float, float, float]]:
    """BCubed of each method before (the clustering alone) and after the refinement pass;
    returns (method, refined) -> (precision, recall, F1)."""
    figures: dict[tuple[str, bool], tuple[float, float, float]] = {}
    for method in methods:
        for refine in (False, True):
            predicted = cluster_faces(
                vectors, photo_ids, method, min_cluster_size, distance_threshold, refine=refine
            )
            score = bcubed(labels, predicted)
            figures[(method, refine)] = (score.precision, score.recall, score.f1)
            clusters = len(set(predicted.tolist()) - {-1})
            print(
                f"{title} {method:13s} {'after ' if refine else 'before'} (min size "
                f"{min_cluster_size}, distance {distance_threshold}): BCubed P "
                f"{score.precision:.4f} R {score.recall:.4f} F1 {score.f1:.4f}; "
                f"{clusters} clusters, {int((predicted < 0).sum())} noise"
            )
    return figures


def run_surrogate(
    photos: list[LabelledPhoto],
    detector: FaceDetector,
    recognizer: FaceRecognizer,
    args: argparse.Namespace,
    methods: tuple[ClusterMethod, ...],
) -> None:
    people, per_person = args.surrogate
    print(
        f"SURROGATE sets ({people} people x {per_person} photos, augmented variants of the "
        f"real photos: an estimate, not real photos), {args.surrogate_seeds} seeds:"
    )
    totals: dict[tuple[str, bool], list[tuple[float, float, float]]] = {}
    for seed in range(args.surrogate_seeds):
        chosen = surrogate_set(photos, people, per_person, seed)
        real = sum(1 for p in chosen if p.real)
        vectors, labels, ids, missed = embed_images(
            [(p.image, p.person, p.photo_id) for p in chosen], detector, recognizer
        )
        print(f"seed {seed}: {len(chosen)} photos ({real} real), {missed} without a face")
        figures = print_clustering(
            f"  surrogate seed {seed}",
            vectors,
            labels,
            ids,
            methods,
            args.min_cluster_size,
            args.distance_threshold,
        )
        for key, value in figures.items():
            totals.setdefault(key, []).append(value)
    for (method, refine), values in totals.items():
        array = np.asarray(values)
        print(
            f"SURROGATE mean over {len(values)} seeds, {method:13s} "
            f"{'after ' if refine else 'before'}: P {array[:, 0].mean():.4f} "
            f"(min {array[:, 0].min():.4f}) R {array[:, 1].mean():.4f} "
            f"F1 {array[:, 2].mean():.4f} (min {array[:, 2].min():.4f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="folders laid out person/photo")
    parser.add_argument("--identity-csv", action="append", type=Path, default=[])
    parser.add_argument("--detector", choices=sorted(DEFAULT_DETECTOR_MODELS), default="yunet")
    parser.add_argument("--detector-model", type=Path, help="default: the ../shared weights")
    parser.add_argument("--recognizer-model", type=Path, default=DEFAULT_RECOGNIZER)
    parser.add_argument("--method", choices=[*METHODS, "all"], default="hdbscan")
    parser.add_argument("--min-cluster-size", type=int, default=3)
    parser.add_argument("--distance-threshold", type=float, default=DEFAULT_DISTANCE_THRESHOLD)
    parser.add_argument(
        "--surrogate",
        type=int,
        nargs=2,
        metavar=("PEOPLE", "PHOTOS"),
        help="also score SURROGATE sets: PEOPLE people x PHOTOS photos each, filled up with "
        "augmented variants of the real photos (e.g. 10 10)",
    )
    parser.add_argument("--surrogate-seeds", type=int, default=5)
    args = parser.parse_args()

    photos = [p for folder in args.folders for p in photos_from_folder(folder)]
    photos += [p for csv_path in args.identity_csv for p in photos_from_identity_csv(csv_path)]
    if not photos:
        parser.error("no labelled photos: give a person/photo folder or --identity-csv")
    detector = make_detector(args.detector, args.detector_model)
    recognizer = FaceRecognizer(args.recognizer_model)
    data = embed_largest_faces(photos, detector, recognizer)
    faces = len(data.labels)
    counts = Counter(data.labels.tolist())

    print(
        f"detector: {args.detector}, recogniser: {args.recognizer_model.name} ({recognizer.dim}-d)"
    )
    print(
        f"photos: {len(photos)}, faces embedded: {faces}, no face found: {len(data.missed)}, "
        f"people: {len(counts)} ({sum(1 for c in counts.values() if c >= 2)} with 2+ photos)"
    )
    for path in data.missed:
        print(f"  no face: {path}")
    print(
        f"time: detect {1000 * data.detect_s / len(photos):.1f} ms/photo, "
        f"align+embed {1000 * data.embed_s / max(1, faces):.1f} ms/face"
    )
    scores = pair_scores(data.vectors, data.labels)
    print(
        f"pairs: {len(scores.same)} same-person (cosine mean {scores.same.mean():.3f}, "
        f"min {scores.same.min():.3f}), {len(scores.different)} different "
        f"(mean {scores.different.mean():.3f}, max {scores.different.max():.3f})"
    )
    print(f"pair AUC: {pair_auc(data.vectors, data.labels):.4f}")
    queries = sum(c for c in counts.values() if c >= 2)
    rank1 = rank1_accuracy(data.vectors, data.labels)
    print(f"rank-1 (leave-one-out, {queries} queries): {rank1:.4f}")
    methods = METHODS if args.method == "all" else (args.method,)
    print_clustering(
        "real photos:",
        data.vectors,
        data.labels,
        data.photo_ids,
        methods,
        args.min_cluster_size,
        args.distance_threshold,
    )
    if args.surrogate:
        run_surrogate(photos, detector, recognizer, args, methods)


if __name__ == "__main__":
    main()
