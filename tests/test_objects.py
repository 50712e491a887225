"""Objects and pets end to end: the ``objects`` worker runs the real YOLOX-nano COCO detector over
real photos (../shared/data) on SQLite and PostgreSQL, the asset JSON carries what it found,
``POST /api/v1/search`` and ``/search/image`` filter by it, ``GET /api/v1/objects`` counts it,
and deleting an asset takes its objects with it. Plus the label names a search accepts, and the
backfill of images stored while objects were off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select, text

from tests.conftest import SHARED_MODELS, make_settings, requires_shared, shared_data
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.db.models import AssetObject, AssetTask
from viewfinder.errors import InvalidInputError
from viewfinder.library.library import Library
from viewfinder.library.objects import OBJECTS_TASK, object_label, object_labels
from viewfinder.models.yolox import COCO_LABELS, YoloxObjectDetector, classwise_nms

YOLOX_NANO = SHARED_MODELS / "yolox" / "yolox_nano.onnx"
COCO8 = ("coco8", "coco8", "images")


# --- label names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("dog", "dog"),
        ("Dogs", "dog"),
        (" CATS ", "cat"),
        ("horses", "horse"),
        ("buses", "bus"),
        ("wine glasses", "wine glass"),
        ("Teddy-Bears", "teddy bear"),
        ("skis", "skis"),
        ("sheep", "sheep"),
        ("knives", "knife"),
        ("sofa", "couch"),
        ("people", "person"),
        ("TVs", "tv"),
        ("dgo", None),
        ("unicorn", None),
        ("", None),
    ],
)
def test_object_label_forgives_case_plurals_and_common_names(name: str, label: str | None) -> None:
    assert object_label(name) == label


def test_every_coco_label_is_its_own_name() -> None:
    assert len(COCO_LABELS) == len(set(COCO_LABELS)) == 80
    assert all(object_label(label) == label for label in COCO_LABELS)


def test_unknown_labels_are_refused_naming_close_or_all_valid_ones() -> None:
    assert object_labels(["Dogs", "dog", "cat"]) == ("dog", "cat")
    with pytest.raises(InvalidInputError, match="did you mean 'dog'"):
        object_labels(["dgo"])
    with pytest.raises(InvalidInputError, match="80 COCO labels: person, bicycle") as refused:
        object_labels(["unicorn"])
    assert "toothbrush" in str(refused.value)


def test_classwise_nms_keeps_overlapping_boxes_of_two_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    classes = np.array([16, 16, 57], dtype=np.int64)  # dog, dog, couch
    assert classwise_nms(boxes, scores, classes, 0.45).tolist() == [0, 2]


# --- the detector on real weights --------------------------------------------------------------


@requires_shared
def test_detector_labels_the_dog_photo_with_boxes_in_its_pixels() -> None:
    detector = YoloxObjectDetector(YOLOX_NANO, min_score=0.4)
    image = Image.open(shared_data("person_scenes", "darknet__dog.jpg")).convert("RGB")
    prepared = detector.preprocess(image)
    found = detector.postprocess(detector.forward([prepared])[0], prepared)
    labels = {d.label for d in found}
    assert {"dog", "bicycle"} <= labels, found
    assert "person" not in labels
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    dog = next(d for d in found if d.label == "dog")
    x1, _y1, x2, y2 = dog.box
    # The dog sits in the lower left of the 768x576 photo.
    assert 0 <= x1 < x2 <= image.width / 2 + 50
    assert image.height / 3 < y2 <= image.height


# --- end to end through the app ------------------------------------------------------------------


@dataclass
class Served:
    client: TestClient
    services: Services

    @property
    def library(self) -> Library:
        return self.services.require_library()

    def settle(self) -> None:
        """Wait for the running worker threads to embed and detect every image."""
        for worker in self.library.workers:
            assert worker.drain(120), worker.kind


def _settings(tmp_path: Path, tiny_models: dict[str, Path], **extra: Any) -> Any:
    return make_settings(
        tmp_path,
        tiny_models,
        worker_threads=1,
        faces_enabled=False,
        ocr_enabled=False,
        **extra,
    )


@pytest.fixture
def served(tmp_path: Path, tiny_models: dict[str, Path], database_url: str) -> Iterator[Served]:
    """The app with its worker threads running, on each database."""
    if not YOLOX_NANO.exists():
        pytest.skip("../shared/models/yolox is absent")
    settings = _settings(tmp_path, tiny_models, database_url=database_url)
    services = Services.build(settings, with_library=True)
    try:
        with TestClient(create_app(settings, services)) as client:
            yield Served(client, services)
    finally:
        services.close()


def upload(client: TestClient, path: Path) -> dict[str, Any]:
    response = client.post("/api/v1/assets", files=[("files", (path.name, path.read_bytes()))])
    assert response.status_code == 201, response.text
    asset: dict[str, Any] = response.json()[0]["asset"]
    return asset


def hit_ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.text
    return {h["asset"]["id"] for h in response.json()["hits"]}


# Real photos and whether a dog is in them (COCO ground truth; darknet's dog.jpg is the dog, the
# bicycle and the truck). coco8's 42 is a dog YOLOX-nano does not find: it may be left out of a
# dog search, but nothing without a dog may come into it.
PHOTOS = {
    ("person_scenes", "darknet__dog.jpg"): True,
    (*COCO8, "val", "000000000042.jpg"): True,
    (*COCO8, "train", "000000000025.jpg"): False,  # giraffes
    (*COCO8, "train", "000000000034.jpg"): False,  # a zebra
    (*COCO8, "val", "000000000036.jpg"): False,  # a person with an umbrella
    ("person_scenes", "yolov5__bus.jpg"): False,
}


@requires_shared
def test_search_for_dogs_with_the_objects_filter(served: Served) -> None:
    client = served.client
    assets = {parts: upload(client, shared_data(*parts)) for parts in PHOTOS}
    served.settle()
    with_dog = {a["id"] for parts, a in assets.items() if PHOTOS[parts]}
    dog_photo = assets[("person_scenes", "darknet__dog.jpg")]

    # The asset JSON: the dog with its box in the original's pixels, and the labels.
    asset = client.get(f"/api/v1/assets/{dog_photo['id']}").json()
    assert {"dog", "bicycle"} <= set(asset["object_labels"]), asset["objects"]
    assert asset["object_labels"] == sorted({o["label"] for o in asset["objects"]})
    scores = [o["score"] for o in asset["objects"]]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.4
    dog = next(o for o in asset["objects"] if o["label"] == "dog")
    x1, _y1, x2, y2 = dog["box"]
    assert 0 <= x1 < x2 <= asset["width"] / 2 + 50
    assert asset["height"] / 3 < y2 <= asset["height"]

    body = {"query": "dog", "k": 50}
    unfiltered = hit_ids(client.post("/api/v1/search", json=body))
    assert unfiltered == {a["id"] for a in assets.values()}  # other images appear without it
    filtered = client.post("/api/v1/search", json={**body, "objects": ["dog"]})
    found = hit_ids(filtered)
    assert dog_photo["id"] in found
    assert found <= with_dog
    for hit in filtered.json()["hits"]:
        assert "dog" in hit["asset"]["object_labels"]
    # Plural and case are forgiven; two labels must both be there.
    assert hit_ids(client.post("/api/v1/search", json={**body, "objects": ["Dogs"]})) == found
    both = client.post("/api/v1/search", json={**body, "objects": ["dog", "bicycle"]})
    assert hit_ids(both) == {dog_photo["id"]}
    assert (
        hit_ids(client.post("/api/v1/search", json={**body, "objects": ["dog", "zebra"]})) == set()
    )
    # The filter alone (no query): every image a dog was found in, newest first.
    alone = client.post("/api/v1/search", json={"objects": ["dog"], "k": 50})
    assert alone.status_code == 200, alone.text
    assert hit_ids(alone) == found
    nothing = client.post("/api/v1/search", json={"objects": ["dog", "zebra"]}).json()
    assert (nothing["hits"], nothing["reason"]) == ([], "no_match_filters")

    # The image search takes the filter as a form field.
    query = shared_data("person_scenes", "darknet__dog.jpg").read_bytes()
    by_image = client.post(
        "/api/v1/search/image",
        files={"file": ("q.jpg", query)},
        data={"k": "50", "objects": ["giraffes"]},
    )
    assert hit_ids(by_image) == {assets[(*COCO8, "train", "000000000025.jpg")]["id"]}

    # Labels that are no COCO class: a clear 400, never a 500.
    typo = client.post("/api/v1/search", json={**body, "objects": ["dgo"]})
    assert typo.status_code == 400, typo.text
    assert "did you mean 'dog'" in typo.json()["detail"]
    unknown = client.post("/api/v1/search", json={**body, "objects": ["unicorn"]})
    assert unknown.status_code == 400, unknown.text
    assert "toothbrush" in unknown.json()["detail"]
    form_typo = client.post(
        "/api/v1/search/image", files={"file": ("q.jpg", query)}, data={"objects": "unicorn"}
    )
    assert form_typo.status_code == 400, form_typo.text

    # The labels of the library with how many images have each.
    counts = {o["label"]: o["count"] for o in client.get("/api/v1/objects").json()}
    assert counts["giraffe"] == 1
    assert counts["zebra"] == 1
    assert counts["bus"] == 1
    assert counts["dog"] == len(found)


@requires_shared
def test_deleting_an_asset_deletes_its_objects(served: Served) -> None:
    client = served.client
    asset = upload(client, shared_data("person_scenes", "darknet__dog.jpg"))
    other = upload(client, shared_data(*COCO8, "train", "000000000025.jpg"))
    served.settle()

    def objects_of(asset_id: int) -> int:
        with served.library.sessions() as session:
            stmt = select(func.count()).where(AssetObject.asset_id == asset_id)
            return int(session.scalar(stmt) or 0)

    assert objects_of(asset["id"]) >= 2
    assert objects_of(other["id"]) >= 1
    if served.library.engine.dialect.name == "sqlite":
        with served.library.engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert client.delete(f"/api/v1/assets/{asset['id']}").status_code == 204
    assert objects_of(asset["id"]) == 0
    assert objects_of(other["id"]) >= 1
    labels = {o["label"] for o in client.get("/api/v1/objects").json()}
    assert "dog" not in labels
    assert "giraffe" in labels


@requires_shared
def test_images_stored_while_objects_were_off_are_detected_once_turned_on(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    photo = shared_data("person_scenes", "darknet__dog.jpg")
    off = _settings(tmp_path, tiny_models, objects_enabled=False)
    with TestClient(create_app(off)) as client:
        asset = upload(client, photo)
        assert asset["objects"] == []
        assert asset["object_labels"] == []
        kinds = client.get("/api/v1/status").json()
        assert OBJECTS_TASK not in str(kinds)
        refused = client.post("/api/v1/search", json={"query": "dog", "objects": ["dog"]})
        assert hit_ids(refused) == set()  # nothing detected: the filter finds nothing

    on = _settings(tmp_path, tiny_models)
    services = Services.build(on, with_library=True)
    try:
        with TestClient(create_app(on, services)) as client:
            worker = services.require_library().worker_for(OBJECTS_TASK)
            assert worker is not None
            assert worker.drain(120)
            with services.require_library().sessions() as session:
                task = session.get(AssetTask, (asset["id"], OBJECTS_TASK))
                assert task is not None
                assert task.state == "done"
            labels = client.get(f"/api/v1/assets/{asset['id']}").json()["object_labels"]
            assert "dog" in labels
            found = client.post("/api/v1/search", json={"query": "dog", "objects": ["dog"]})
            assert hit_ids(found) == {asset["id"]}
    finally:
        services.close()
