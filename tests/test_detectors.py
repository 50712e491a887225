"""The person and face detectors on real weights and real photos from ../shared, plus NMS."""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageOps

from viewfinder.models.nms import iou, nms
from viewfinder.models.types import Detection
from viewfinder.runtime.batch_model import BatchModel
from viewfinder.runtime.batcher import BatchPolicy
from viewfinder.runtime.pool import ModelPool

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
DATA = SHARED / "data"
FACE_SETS = ("faces_face_recognition", "faces_openface", "faces_facenet_pytorch")

needs_shared = pytest.mark.skipif(
    not (MODELS.is_dir() and DATA.is_dir()),
    reason="../shared (real photos and weights) is absent beside the repository",
)

Detector = BatchModel[Image.Image, Any, list[Detection]]


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def detect(detector: Detector, image: Image.Image) -> list[Detection]:
    prepared = detector.preprocess(image)
    return detector.postprocess(detector.forward([prepared])[0], prepared)


def detect_batch(detector: Detector, images: Sequence[Image.Image]) -> list[list[Detection]]:
    prepared = [detector.preprocess(image) for image in images]
    raws = detector.forward(prepared)
    return [detector.postprocess(raw, p) for raw, p in zip(raws, prepared, strict=True)]


def box_array(detections: Sequence[Detection]) -> NDArray[np.float32]:
    return np.array([d.box for d in detections], dtype=np.float32).reshape(-1, 4)


def fraction_inside(inner: Detection, outer: Detection) -> float:
    """Share of ``inner``'s area that lies inside ``outer``."""
    ix1, iy1, ix2, iy2 = inner.box
    ox1, oy1, ox2, oy2 = outer.box
    width = max(0.0, min(ix2, ox2) - max(ix1, ox1))
    height = max(0.0, min(iy2, oy2) - max(iy1, oy1))
    return width * height / inner.area


def assert_well_formed(detections: list[Detection], image: Image.Image, min_score: float) -> None:
    """The output contract: best first, inside the image, above the threshold."""
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for detection in detections:
        x1, y1, x2, y2 = detection.box
        assert 0 <= x1 < x2 <= image.width
        assert 0 <= y1 < y2 <= image.height
        assert detection.score >= min_score


# --- NMS ------------------------------------------------------------------------------------


def test_nms_keeps_the_best_of_overlapping_boxes_and_all_separate_ones() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 9, 10]], dtype=np.float32
    )
    scores = np.array([0.8, 0.9, 0.5, 0.7], dtype=np.float32)
    kept = nms(boxes, scores, iou_threshold=0.5)
    assert kept.dtype == np.int64
    assert kept.tolist() == [1, 2]


def test_nms_threshold_is_compared_with_the_iou() -> None:
    # IoU of these two boxes is 50 / 150 = 1/3.
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float32)
    scores = np.array([0.6, 0.9], dtype=np.float32)
    assert nms(boxes, scores, iou_threshold=0.3).tolist() == [1]
    assert nms(boxes, scores, iou_threshold=0.4).tolist() == [1, 0]


def test_nms_min_mode_removes_a_box_nested_in_a_better_one() -> None:
    boxes = np.array([[0, 0, 100, 100], [10, 10, 30, 30]], dtype=np.float32)
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert nms(boxes, scores, 0.7).tolist() == [0, 1]
    assert nms(boxes, scores, 0.7, mode="min").tolist() == [0]


def test_nms_of_nothing_is_empty() -> None:
    kept = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert kept.shape == (0,)
    assert kept.dtype == np.int64


def test_iou_values() -> None:
    box = np.array([0, 0, 10, 10], dtype=np.float32)
    others = np.array(
        [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 3]], dtype=np.float32
    )
    assert iou(box, others) == pytest.approx([1.0, 1 / 3, 0.0, 0.0])


# --- fixtures on real weights ------------------------------------------------------------------


@pytest.fixture(scope="module")
def yolox() -> Detector:
    from viewfinder.models.yolox import YoloxPersonDetector

    return YoloxPersonDetector(MODELS / "yolox" / "yolox_nano.onnx", min_score=0.4)


@pytest.fixture(scope="module")
def yunet() -> Detector:
    from viewfinder.models.yunet import YunetFaceDetector

    return YunetFaceDetector(MODELS / "yunet" / "face_detection_yunet_opencv_zoo.onnx")


@pytest.fixture(scope="module")
def mtcnn() -> Detector:
    from viewfinder.models.mtcnn import MtcnnFaceDetector

    return MtcnnFaceDetector(MODELS / "mtcnn")


@pytest.fixture(scope="module")
def face_detectors(yunet: Detector, mtcnn: Detector) -> dict[str, Detector]:
    return {"yunet": yunet, "mtcnn": mtcnn}


def face_photos() -> list[tuple[Path, bool]]:
    """Every photo of the face sets with whether it shows several people, per identity_mapping.csv
    (names joined by ';', 'GROUP', or a faces_in_image count other than 1)."""
    photos = []
    for folder in FACE_SETS:
        with (DATA / folder / "identity_mapping.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                several = (
                    ";" in row["person"]
                    or row["person"] == "GROUP"
                    or row.get("faces_in_image", "1") != "1"
                )
                photos.append((DATA / folder / row["image"], several))
    return photos


@pytest.fixture(scope="module")
def face_results(face_detectors: dict[str, Detector]) -> dict[str, dict[Path, list[Detection]]]:
    """Each face detector's output on every face photo, computed once for the module."""
    results: dict[str, dict[Path, list[Detection]]] = {name: {} for name in face_detectors}
    for path, _ in face_photos():
        image = load_rgb(path)
        for name, detector in face_detectors.items():
            results[name][path] = detect(detector, image)
    return results


def single_face_photos() -> list[Path]:
    return [path for path, several in face_photos() if not several]


# --- persons -----------------------------------------------------------------------------------


def coco_person_boxes(image_path: Path, width: int, height: int) -> NDArray[np.float32]:
    """Ground-truth person boxes (xyxy pixels) from the YOLO label file beside the image."""
    label = image_path.parent.parent.parent / "labels" / image_path.parent.name
    boxes = []
    for line in (label / f"{image_path.stem}.txt").read_text().splitlines():
        fields = line.split()
        if not fields or fields[0] != "0":  # class 0 is person
            continue
        cx, cy, w, h = (float(value) for value in fields[1:5])
        boxes.append(
            [
                (cx - w / 2) * width,
                (cy - h / 2) * height,
                (cx + w / 2) * width,
                (cy + h / 2) * height,
            ]
        )
    return np.array(boxes, dtype=np.float32).reshape(-1, 4)


def matched_count(truth: NDArray[np.float32], found: NDArray[np.float32], min_iou: float) -> int:
    """Ground-truth boxes matched one-to-one by a detection with IoU >= ``min_iou``."""
    used: set[int] = set()
    for box in truth:
        overlaps = iou(box, found) if len(found) else np.zeros(0)
        candidates = [int(j) for j in np.argsort(-overlaps) if overlaps[j] >= min_iou]
        free = [j for j in candidates if j not in used]
        if free:
            used.add(free[0])
    return len(used)


@pytest.mark.shared
@needs_shared
def test_yolox_recall_of_coco_persons(yolox: Detector) -> None:
    images = sorted((DATA / "coco8" / "coco8-human" / "images").glob("*/*.jpg"))
    assert len(images) == 8
    total = found = 0
    for path in images:
        image = load_rgb(path)
        truth = coco_person_boxes(path, image.width, image.height)
        detections = detect(yolox, image)
        assert_well_formed(detections, image, min_score=0.4)
        total += len(truth)
        found += matched_count(truth, box_array(detections), min_iou=0.5)
    recall = found / total
    print(f"\nYOLOX-nano coco8-human recall@IoU0.5, score>=0.4: {found}/{total} = {recall:.3f}")
    assert total == 18  # the last label file has no final newline, so `wc -l` says 17
    assert recall >= 0.85  # measured 16/18 = 0.889


def person_scene_labels() -> list[tuple[Path, str]]:
    with (DATA / "person_scenes" / "labels.csv").open(newline="") as handle:
        return [
            (DATA / "person_scenes" / r["file"], r["has_person"]) for r in csv.DictReader(handle)
        ]


@pytest.mark.shared
@needs_shared
def test_yolox_on_scenes_with_and_without_people(yolox: Detector) -> None:
    labels = person_scene_labels()
    empty = [path for path, label in labels if label == "no"]
    peopled = [path for path, label in labels if label.startswith("yes")]
    assert (len(empty), len(peopled)) == (4, 24)
    for path in empty:
        assert detect(yolox, load_rgb(path)) == [], path.name
    hits = sum(bool(detect(yolox, load_rgb(path))) for path in peopled)
    print(f"\nYOLOX-nano persons found in {hits}/{len(peopled)} scenes with people")
    assert hits / len(peopled) >= 0.9  # measured 23/24 (misses COCO val2014 #360)


# --- faces -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
@pytest.mark.shared
@needs_shared
def test_every_single_face_photo_has_a_face(
    face_results: dict[str, dict[Path, list[Detection]]], name: str
) -> None:
    photos = single_face_photos()
    assert len(photos) >= 35
    missed = [path.name for path in photos if not face_results[name][path]]
    print(f"\n{name}: a face in {len(photos) - len(missed)}/{len(photos)} single-face photos")
    assert missed == []


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
@pytest.mark.shared
@needs_shared
def test_multi_face_photos_have_at_least_two_faces(
    face_results: dict[str, dict[Path, list[Detection]]], name: str
) -> None:
    photos = [path for path, several in face_photos() if several]
    assert {p.name for p in photos} >= {
        "examples__two_people.jpg",
        "examples__knn_examples__test__obama_and_biden.jpg",
        "multiface.jpg",
        "longoria-cooper.jpg",
    }
    counts = {path.name: len(face_results[name][path]) for path in photos}
    print(f"\n{name}: faces in multi-face photos {counts}")
    assert all(count >= 2 for count in counts.values()), counts


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
@pytest.mark.shared
@needs_shared
def test_face_outputs_are_well_formed(
    face_results: dict[str, dict[Path, list[Detection]]], name: str
) -> None:
    for path, detections in face_results[name].items():
        with Image.open(path) as image:
            size_image = ImageOps.exif_transpose(image)
        assert_well_formed(detections, size_image, min_score=0.6)
        assert all(d.landmarks is not None and len(d.landmarks) == 5 for d in detections)


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
@pytest.mark.shared
@needs_shared
def test_landmarks_sit_where_a_face_has_them(
    face_results: dict[str, dict[Path, list[Detection]]], name: str
) -> None:
    for path in single_face_photos():
        face = face_results[name][path][0]
        assert face.landmarks is not None
        right_eye, left_eye, _nose, mouth_right, mouth_left = face.landmarks
        x1, y1, x2, y2 = face.box
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.landmarks), path.name
        assert max(right_eye[1], left_eye[1]) < min(mouth_right[1], mouth_left[1]), path.name
        # Detection's order: the subject's right eye (the viewer's left) first.
        assert right_eye[0] < left_eye[0], path.name
        assert mouth_right[0] < mouth_left[0], path.name


PORTRAITS = (
    "faces_face_recognition/examples__obama-1080p.jpg",
    "faces_face_recognition/examples__biden.jpg",
    "faces_face_recognition/examples__knn_examples__train__rose_leslie__img1.jpg",
    "faces_openface/adams.jpg",
    "faces_openface/clapton-1.jpg",
    "faces_facenet_pytorch/test_images__paul_rudd__1.jpg",
)


@pytest.mark.parametrize("name", ["yunet", "mtcnn"])
@pytest.mark.shared
@needs_shared
def test_top_face_lies_inside_the_top_person(
    face_results: dict[str, dict[Path, list[Detection]]], yolox: Detector, name: str
) -> None:
    for relative in PORTRAITS:
        path = DATA / relative
        persons = detect(yolox, load_rgb(path))
        assert persons, relative
        assert fraction_inside(face_results[name][path][0], persons[0]) >= 0.9, relative


@pytest.mark.shared
@needs_shared
@pytest.mark.parametrize("name", ["yolox", "yunet", "mtcnn"])
def test_same_photo_at_two_resolutions_gives_the_same_box(
    request: pytest.FixtureRequest, name: str
) -> None:
    """Boxes are mapped back to input pixels correctly whatever internal resizing happens."""
    detector: Detector = request.getfixturevalue(name)
    small = load_rgb(DATA / "faces_face_recognition" / "examples__obama-240p.jpg")
    large = load_rgb(DATA / "faces_face_recognition" / "examples__obama-1080p.jpg")
    small_top, large_top = detect(detector, small)[0], detect(detector, large)[0]
    factor = large.width / small.width
    scaled = np.array(small_top.box, dtype=np.float32) * factor
    overlap = float(iou(scaled, box_array([large_top]))[0])
    print(f"\n{name}: IoU of the 240p box scaled up with the 1080p box {overlap:.3f}")
    assert overlap >= 0.8


BATCH_PHOTOS = {
    "yolox": ("person_scenes/yolov5__bus.jpg", "person_scenes/yolov5__zidane.jpg",
              "person_scenes/darknet__kite.jpg"),
    "yunet": ("faces_facenet_pytorch/multiface.jpg", "faces_openface/longoria-cooper.jpg",
              "faces_face_recognition/examples__obama-720p.jpg"),
    "mtcnn": ("faces_facenet_pytorch/multiface.jpg", "faces_openface/longoria-cooper.jpg",
              "faces_face_recognition/examples__obama-720p.jpg"),
}  # fmt: skip


def assert_same_detections(left: list[Detection], right: list[Detection]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.box == pytest.approx(b.box, abs=1e-3)
        assert a.score == pytest.approx(b.score, abs=1e-5)
        if a.landmarks is None or b.landmarks is None:
            assert a.landmarks is b.landmarks
        else:
            assert np.allclose(a.landmarks, b.landmarks, atol=1e-3)


@pytest.mark.shared
@needs_shared
@pytest.mark.parametrize("name", ["yolox", "yunet", "mtcnn"])
def test_a_batch_gives_what_single_items_give(request: pytest.FixtureRequest, name: str) -> None:
    detector: Detector = request.getfixturevalue(name)
    images = [load_rgb(DATA / relative) for relative in BATCH_PHOTOS[name]]
    batched = detect_batch(detector, images)
    singles = [detect(detector, image) for image in images]
    assert all(batched)  # every photo here has a person / a face
    assert len({detections[0].box for detections in batched}) == 3  # three different answers
    for from_batch, alone in zip(batched, singles, strict=True):
        assert_same_detections(from_batch, alone)


@pytest.fixture
def pool(request: pytest.FixtureRequest) -> Iterator[ModelPool]:
    def factory(name: str) -> Callable[[], Detector]:
        detector: Detector = request.getfixturevalue(name)
        return lambda: detector

    model_pool = ModelPool(
        {name: factory(name) for name in ("yolox", "yunet", "mtcnn")},
        BatchPolicy(max_batch_size=4, max_wait_s=0.02),
        idle_ttl_s=0,
    )
    yield model_pool
    model_pool.close()


@pytest.mark.shared
@needs_shared
@pytest.mark.parametrize("name", ["yolox", "yunet", "mtcnn"])
def test_concurrent_requests_through_the_pool(pool: ModelPool, name: str) -> None:
    """Warm-up and micro-batched forward from several threads: the detector instance is only
    touched by the batcher thread, so results equal the single-threaded ones."""
    paths = [DATA / relative for relative in BATCH_PHOTOS[name]]
    images = [load_rgb(path) for path in paths] * 2
    with ThreadPoolExecutor(max_workers=6) as executor:
        results = list(executor.map(lambda image: pool.run(name, image), images))
    detector = pool.get(name).model
    for image, result in zip(images, results, strict=True):
        assert_same_detections(result, detect(detector, image))
    assert pool.get(name).batcher.batches_run < pool.get(name).batcher.items_run


@pytest.mark.shared
@needs_shared
@pytest.mark.parametrize("name", ["yolox", "yunet", "mtcnn"])
def test_warmup_item_is_a_blank_rgb_image_with_nothing_on_it(
    request: pytest.FixtureRequest, name: str
) -> None:
    detector: Detector = request.getfixturevalue(name)
    item = detector.warmup_item()
    assert item.mode == "RGB"
    assert detect(detector, item) == []


@pytest.mark.shared
@needs_shared
@pytest.mark.parametrize("name", ["yolox", "yunet", "mtcnn"])
def test_latency_stops_growing_past_the_working_size(
    request: pytest.FixtureRequest, name: str
) -> None:
    """Each detector shrinks large photos to its working size (YOLOX 416, YuNet 640, MTCNN
    1280), so a 1080p photo costs about what its 720p copy costs. Timings are interleaved and
    compared with each other, not with a wall-clock ceiling, so a busy machine does not fail
    the test while a lost downscale (MTCNN: 2.25x the P-Net work) does."""
    detector: Detector = request.getfixturevalue(name)
    large = load_rgb(DATA / "faces_face_recognition" / "examples__obama-1080p.jpg")
    medium = load_rgb(DATA / "faces_face_recognition" / "examples__obama-720p.jpg")
    timings: dict[str, list[float]] = {"1080p": [], "720p": []}
    detect(detector, large)
    for _ in range(5):
        for label, image in (("1080p", large), ("720p", medium)):
            started = time.perf_counter()
            detect(detector, image)
            timings[label].append(time.perf_counter() - started)
    summary = ", ".join(
        f"{label} median {statistics.median(t) * 1000:.0f} ms (best {min(t) * 1000:.0f})"
        for label, t in timings.items()
    )
    print(f"\n{name} per photo on this machine: {summary}")
    assert min(timings["1080p"]) < 1.6 * min(timings["720p"])
