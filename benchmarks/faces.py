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
    for method in methods:
        labels = cluster_faces(
            data.vectors,
            data.photo_ids,
            method,
            args.min_cluster_size,
            args.distance_threshold,
        )
        score = bcubed(data.labels, labels)
        clusters = len(set(labels.tolist()) - {-1})
        print(
            f"clustering {method} (min size {args.min_cluster_size}, distance "
            f"{args.distance_threshold}): BCubed P {score.precision:.4f} R {score.recall:.4f} "
            f"F1 {score.f1:.4f}; {clusters} clusters, {int((labels < 0).sum())} noise"
        )


if __name__ == "__main__":
    main()
