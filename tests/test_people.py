"""Seed 001's people workflow through HTTP on real photos and real face weights: dual-mode
clustering assigns the photos of labelled people to them and nobody else's, unknown faces form
clusters with stable ids that can be labelled, corrections stick, training reports its effect,
and search filters by person. Skipped without ../shared."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import SHARED_DATA, SHARED_MODELS, make_settings, requires_shared
from viewfinder.api.app import create_app
from viewfinder.container import Services

pytestmark = requires_shared
FOLDER = SHARED_DATA / "faces_face_recognition"


def single_face_photos() -> dict[str, str]:
    """file name -> person, for photos of exactly one known person."""
    with (FOLDER / "identity_mapping.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {
        r["image"]: r["person"]
        for r in rows
        if r["faces_in_image"] == "1" and ";" not in r["person"] and "?" not in r["person"]
    }


@pytest.fixture
def client(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> Iterator[tuple[TestClient, Services]]:
    """The app on SQLite and on PostgreSQL (``database_url`` is parametrized over both)."""
    settings = make_settings(
        tmp_path,
        tiny_models,
        face_recognizer_model=str(SHARED_MODELS / "mobilefacenet" / "mobilefacenet.onnx"),
        database_url=database_url,
        # These tests run each clustering themselves and check its outcome: no background
        # organise run (test_faces_organize covers those) may change faces in between.
        face_auto_organize=False,
    )
    services = Services.build(settings, with_library=True)
    with TestClient(create_app(settings, services)) as test_client:
        yield test_client, services
    services.close()


def ingest(client: TestClient, services: Services, names: list[str]) -> dict[str, int]:
    ids = {}
    for name in names:
        response = client.post(
            "/api/v1/assets", files={"files": (name, (FOLDER / name).read_bytes())}
        )
        ids[name] = response.json()[0]["asset"]["id"]
    library = services.require_library()
    deadline = time.monotonic() + 120
    assert all(w.drain(max(1.0, deadline - time.monotonic())) for w in library.workers)
    return ids


def face_of(client: TestClient, asset_id: int) -> dict[str, Any]:
    faces = client.get(f"/api/v1/assets/{asset_id}/faces").json()
    return max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))


def _precision_recall(
    client: TestClient, photos: dict[str, str], assets: dict[str, int], labelled: dict[str, int]
) -> tuple[float, float, int]:
    true_positive = false_positive = missed = 0
    for name, person in photos.items():
        face = face_of(client, assets[name])
        if face["person_source"] == "manual":
            continue
        if face["person_id"] == labelled[person]:
            true_positive += 1
        elif face["person_id"] is None:
            missed += 1
        else:
            false_positive += 1
    precision = true_positive / max(true_positive + false_positive, 1)
    recall = true_positive / max(true_positive + missed + false_positive, 1)
    return precision, recall, true_positive


def test_dual_mode_assigns_labelled_people_precisely(client: tuple[TestClient, Services]) -> None:
    test_client, services = client
    photos = single_face_photos()
    assets = ingest(test_client, services, sorted(photos))
    # one labelled photo per person (the first in name order)
    labelled: dict[str, int] = {}
    for name in sorted(photos):
        person = photos[name]
        if person in labelled:
            continue
        face = face_of(test_client, assets[name])
        answer = test_client.post(f"/api/v1/faces/{face['id']}/assign", json={"name": person})
        assert answer.status_code == 200
        labelled[person] = answer.json()["person_id"]
    # The seed's default threshold (0.7) was set for its recogniser; MobileFaceNet's same-person
    # cosines reach down to ~0.54 while different people stay below ~0.3 (test_faces_index), so
    # 0.5 is its calibrated threshold. Both are measured and reported; 0.5 is asserted.
    results = {}
    for threshold in (0.7, 0.5):
        body = {"queue": False, "person_threshold": threshold}
        report = test_client.post("/api/v1/faces/cluster/dual", json=body).json()
        assert report["known_people"] == len(labelled)
        results[threshold] = _precision_recall(test_client, photos, assets, labelled)
        print(f"\ndual mode at {threshold}: precision, recall, assigned = {results[threshold]}")
    precision, recall, true_positive = results[0.5]
    assert precision == 1.0
    assert recall >= 0.9
    assert results[0.7][0] == 1.0

    # search by person: only that person's photos
    obama = labelled["barack_obama"]
    hits = test_client.post(
        "/api/v1/search", json={"query": "a portrait", "k": 50, "person_ids": [obama]}
    )
    found = {h["asset"]["original_filename"] for h in hits.json()["hits"]}
    assert found
    assert all(photos[f] == "barack_obama" for f in found)
    photos_of = test_client.get(f"/api/v1/persons/{obama}/photos").json()
    assert {p["original_filename"] for p in photos_of} == found

    stats = test_client.get("/api/v1/faces/stats").json()
    assert stats["assigned_manual"] == len(labelled)
    assert stats["assigned_auto"] == true_positive


def test_unknown_clusters_are_stable_labelled_and_corrections_stick(
    client: tuple[TestClient, Services],
) -> None:
    test_client, services = client
    photos = {
        n: p
        for n, p in single_face_photos().items()
        if p in {"barack_obama", "kit_harington", "rose_leslie"}
    }
    assets = ingest(test_client, services, sorted(photos))
    body = {"queue": False, "unknown_method": "agglomerative", "min_cluster_size": 2}
    first = test_client.post("/api/v1/faces/cluster/dual", json=body).json()
    assert first["unknown_clusters"] >= 2
    clusters = test_client.get("/api/v1/faces/clusters").json()
    again = test_client.post("/api/v1/faces/cluster/dual", json=body).json()
    assert again["unknown_clusters"] == first["unknown_clusters"]
    assert test_client.get("/api/v1/faces/clusters").json() == clusters  # stable ids

    biggest = clusters[0]
    labelled = test_client.post(
        f"/api/v1/faces/clusters/{biggest['cluster_id']}/label", json={"name": "Barack Obama"}
    )
    assert labelled.status_code == 200
    person_id = labelled.json()["person_id"]
    assert labelled.json()["faces_labeled"] == biggest["size"]
    # a second cluster labelled with the same name in another case reuses the person
    if len(clusters) > 1:
        other = test_client.post(
            f"/api/v1/faces/clusters/{clusters[1]['cluster_id']}/label",
            json={"name": "barack obama"},
        )
        assert other.json()["person_id"] == person_id
    # correction: this face is not Obama; a later run must not put it back
    face_id = biggest["face_ids"][0]
    assert test_client.post(f"/api/v1/faces/{face_id}/unassign").json()["person_source"] == "manual"
    test_client.post("/api/v1/faces/cluster/dual", json=body)
    face = test_client.get(f"/api/v1/faces/{face_id}").json()
    assert face["person_id"] is None

    # people management
    persons = test_client.get("/api/v1/persons").json()
    assert any(p["id"] == person_id for p in persons)
    renamed = test_client.patch(f"/api/v1/persons/{person_id}", json={"name": "Obama"})
    assert renamed.json()["name"] == "Obama"
    hidden = test_client.patch(f"/api/v1/persons/{person_id}", json={"hidden": True}).json()
    assert hidden["hidden"] is True
    assert all(p["id"] != person_id for p in test_client.get("/api/v1/persons").json())
    assert any(
        p["id"] == person_id
        for p in test_client.get("/api/v1/persons", params={"include_hidden": True}).json()
    )
    assert assets


def test_errors_are_404_409_and_422(client: tuple[TestClient, Services]) -> None:
    test_client, services = client
    names = ["examples__knn_examples__train__obama__obama.jpg", "examples__two_people.jpg"]
    assets = ingest(test_client, services, names)
    assert (
        test_client.post("/api/v1/faces/clusters/clu_nope/label", json={"name": "X"}).status_code
        == 404
    )
    assert test_client.post("/api/v1/faces/999999/assign", json={"name": "X"}).status_code == 404
    assert test_client.get("/api/v1/persons/999999").status_code == 404
    assert test_client.post("/api/v1/persons/999999/merge", json={"into": 1}).status_code == 404
    assert (
        test_client.post(
            "/api/v1/faces/cluster/dual", json={"unknown_method": "kmeans"}
        ).status_code
        == 422
    )
    assert test_client.post("/api/v1/faces/clusters/x/label", json={}).status_code == 422

    alice = test_client.post("/api/v1/persons", json={"name": "Alice"})
    assert alice.status_code == 201
    assert test_client.post("/api/v1/persons", json={"name": "alice"}).status_code == 409
    bob = test_client.post("/api/v1/persons", json={"name": "Bob"}).json()
    assert (
        test_client.patch(f"/api/v1/persons/{bob['id']}", json={"name": "ALICE"}).status_code == 409
    )

    two = test_client.get(f"/api/v1/assets/{assets[names[1]]}/faces").json()
    assert len(two) >= 2
    first = test_client.post(
        f"/api/v1/faces/{two[0]['id']}/assign", json={"person_id": alice.json()["id"]}
    )
    assert first.status_code == 200
    # the same photo cannot show Alice twice
    second = test_client.post(f"/api/v1/faces/{two[1]['id']}/assign", json={"name": "ALICE"})
    assert second.status_code == 409
    assert (
        test_client.post(
            f"/api/v1/faces/{two[1]['id']}/assign", json={"person_id": bob["id"]}
        ).status_code
        == 200
    )
    # merging Bob into Alice would put both faces of one photo on one person
    assert (
        test_client.post(
            f"/api/v1/persons/{bob['id']}/merge", json={"into": alice.json()["id"]}
        ).status_code
        == 409
    )
    assert (
        test_client.post(f"/api/v1/persons/{bob['id']}/merge", json={"into": bob["id"]}).status_code
        == 400
    )
    assert test_client.post("/api/v1/faces/train", json={}).status_code == 400  # not enough labels
    assert test_client.delete(f"/api/v1/persons/{bob['id']}").status_code == 204
    assert test_client.get(f"/api/v1/faces/{two[1]['id']}").json()["person_id"] is None


def test_training_reports_and_keeps_only_a_helpful_head(
    client: tuple[TestClient, Services],
) -> None:
    test_client, services = client
    photos = single_face_photos()
    assets = ingest(test_client, services, sorted(photos))
    for name, person in photos.items():
        face = face_of(test_client, assets[name])
        test_client.post(f"/api/v1/faces/{face['id']}/assign", json={"name": person})
    report = test_client.post("/api/v1/faces/train", json={"epochs": 5, "margin": 0.2}).json()
    print(f"\nface head: {report}")
    assert report["labelled_faces"] == len(photos)
    assert report["people"] >= 4
    assert 0.0 <= report["auc_before"] <= 1.0
    stats = test_client.get("/api/v1/faces/stats").json()
    assert (stats["active_head"] == report["version"]) is report["kept"]
    queued = test_client.post("/api/v1/faces/train", json={"epochs": 2, "queue": True})
    assert queued.status_code == 202
    assert "job_id" in queued.json()
