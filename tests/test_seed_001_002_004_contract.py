"""Statements of seeds 001, 002 and 004's READMEs that the other tests did not hold Viewfinder to,
each checked through HTTP: the organizer lists every image and never answers an empty cluster,
a queued training run that cannot run is refused up front, the seed's own dual-mode requests, and
the image formats the search seed lists."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.db import assets as assets_repo
from viewfinder.db.models import Asset

SEARCH_BY_IMAGE = "/api/demo_backend_v2/image_search/search_by_image"


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def noisy(color: tuple[int, int, int], seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def wait_processed(client: TestClient, expected: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get("/api/v1/jobs/processing").json()
        if state["counts"]["done"] >= expected and state["indexed"] >= expected:
            return
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


@pytest.fixture
def app(tmp_path: Path, tiny_models: dict[str, Path]) -> Iterator[tuple[TestClient, Services]]:
    settings = make_settings(
        tmp_path, tiny_models, index_save_interval_s=0, face_person_match_threshold=0.55
    )
    services = Services.build(settings, with_library=True)
    with TestClient(create_app(settings, services)) as client:
        yield client, services
    services.close()


# --- seed 004: "GET /images: list stored images" ----------------------------------------------


def test_get_images_lists_every_image_beyond_one_page(app: tuple[TestClient, Services]) -> None:
    """It answered only the first 1000 images, silently: the seed lists all of them."""
    client, services = app
    library = services.require_library()
    count = 1005
    with library.sessions.begin() as session:
        for i in range(count):
            asset = Asset(
                sha256=f"{i:064x}",
                original_filename=f"{i}.png",
                folder="",
                content_type="image/png",
                size_bytes=100,
                width=2,
                height=2,
            )
            assets_repo.add_asset(session, asset, ())
    listed = client.get("/images")
    assert listed.status_code == 200
    ids = [image["id"] for image in listed.json()]
    assert len(ids) == count
    assert ids == sorted(ids)  # oldest first
    assert len(set(ids)) == count
    page = client.get("/images", params={"limit": 3, "offset": 1000}).json()
    assert [image["id"] for image in page] == ids[1000:1003]
    assert [image["id"] for image in client.get("/images", params={"offset": 1003}).json()] == ids[
        1003:
    ]
    assert client.get("/images", params={"limit": 0}).status_code == 422


# --- seed 004: "GET /clusters: recompute clusters from stored embeddings" ------------------------


def test_clusters_are_never_empty(app: tuple[TestClient, Services]) -> None:
    """The same pixels saved as PNG, BMP and TIFF are three images with one embedding: k capped at
    the number of images alone (4 here) left MiniBatchKMeans two clusters without members."""
    client, _ = app
    same = noisy((120, 40, 200), seed=1)
    ids = [
        client.post("/images", files={"file": (f"same.{fmt.lower()}", encode(same, fmt))}).json()[
            "id"
        ]
        for fmt in ("PNG", "BMP", "TIFF")
    ]
    other = encode(noisy((10, 200, 10), seed=2), "JPEG")
    ids.append(client.post("/images", files={"file": ("other.jpg", other)}).json()["id"])
    assert len(set(ids)) == 4

    clusters = client.get("/clusters").json()
    assert all(cluster["image_ids"] for cluster in clusters)
    assert [cluster["cluster_id"] for cluster in clusters] == list(range(len(clusters)))
    members = sorted(i for cluster in clusters for i in cluster["image_ids"])
    assert members == sorted(ids)  # every image exactly once
    together = next(c["image_ids"] for c in clusters if ids[0] in c["image_ids"])
    assert set(ids[:3]) <= set(together)  # identical embeddings share their cluster


# --- seed 001: the README's own requests ---------------------------------------------------------


def test_queued_training_that_cannot_run_is_refused_up_front(
    app: tuple[TestClient, Services],
) -> None:
    """``{"epochs": 20, "margin": 0.2, "queue": true}`` without labelled people was accepted (202)
    and then failed in the background; the synchronous call already answered 400."""
    client, _ = app
    body = {"epochs": 20, "margin": 0.2, "queue": True}
    queued = client.post("/api/v1/faces/train", json=body)
    assert queued.status_code == 400
    assert "two people" in queued.json()["detail"]
    assert client.get("/api/v1/jobs", params={"kind": "faces_train"}).json() == []


def wait_job(client: TestClient, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_dual_mode_requests_of_the_readme(app: tuple[TestClient, Services]) -> None:
    """Synchronous (``queue: false``) answers the report; ``queue: true`` a job whose result is the
    same report; unspecified options come from the FACE_* settings."""
    client, _ = app
    url = "/api/v1/faces/cluster/dual"
    now = client.post(
        url, json={"person_threshold": 0.7, "unknown_method": "hdbscan", "queue": False}
    )
    assert now.status_code == 200
    report = now.json()
    assert set(report) == {
        "faces",
        "known_people",
        "assigned",
        "unknown_clusters",
        "clustered_faces",
        "noise_faces",
        "head_version",
    }
    later = client.post(url, json={"person_threshold": 0.7, "queue": True})
    assert later.status_code == 202
    job = wait_job(client, later.json()["job_id"])
    assert job["state"] == "done"
    assert job["result"] == report
    assert job["params"]["person_threshold"] == 0.7
    assert job["params"]["method"] == "hdbscan"  # FACE_UNKNOWN_CLUSTERING_METHOD's default

    defaults = client.post(url, json={"queue": True}).json()["job"]["params"]
    assert defaults["person_threshold"] == 0.55  # this app's FACE_PERSON_MATCH_THRESHOLD
    assert defaults["min_cluster_size"] == 3  # FACE_UNKNOWN_MIN_CLUSTER_SIZE's default


# --- seed 002: "Supported Image Formats: PNG, JPG/JPEG, GIF, BMP, TIFF" ---------------------------


def test_search_by_image_reads_every_format_the_seed_lists(
    app: tuple[TestClient, Services],
) -> None:
    client, _ = app
    stored = noisy((30, 160, 40), seed=0)
    made = client.post(
        "/api/v1/assets", files={"files": ("stored.png", encode(stored, "PNG"))}, data={}
    )
    assert made.status_code == 201
    for i in range(3):
        decoy = encode(noisy((200, 20, 200), seed=10 + i), "PNG")
        client.post("/api/v1/assets", files={"files": (f"decoy{i}.png", decoy)})
    wait_processed(client, 4)
    stored_url = made.json()[0]["asset"]["file_url"]
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF"):
        hits = client.post(
            SEARCH_BY_IMAGE,
            params={"k": 2},
            files={"file": (f"q.{fmt.lower()}", encode(stored, fmt))},
        )
        assert hits.status_code == 200, (fmt, hits.text)
        assert len(hits.json()) == 2
        if fmt in ("PNG", "BMP", "TIFF"):  # lossless: the very same pixels
            assert hits.json()[0]["image_url"] == stored_url
            assert hits.json()[0]["distance"] == pytest.approx(0.0, abs=1e-3)


# --- docs/library.md: the search options apply to POST /api/v1/search/image too -------------------


def test_search_by_upload_takes_the_documented_filters(app: tuple[TestClient, Services]) -> None:
    """``include_subfolders`` and ``captured_from`` / ``captured_to`` were ignored there."""
    client, _ = app
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2021:06:05 14:30:00"
    top = io.BytesIO()
    noisy((30, 160, 40), seed=0).save(top, format="JPEG", exif=exif.tobytes())
    client.post(
        "/api/v1/assets", files={"files": ("top.jpg", top.getvalue())}, data={"folder": "a"}
    )
    nested = encode(noisy((30, 160, 40), seed=1), "PNG")
    client.post("/api/v1/assets", files={"files": ("nested.png", nested)}, data={"folder": "a/b"})
    wait_processed(client, 2)
    query = {"file": ("q.png", encode(noisy((30, 160, 40), seed=2), "PNG"))}

    def folders(**form: str) -> list[str]:
        answer = client.post("/api/v1/search/image", files=query, data={"folder": "a", **form})
        assert answer.status_code == 200, answer.text
        return sorted(h["asset"]["folder"] for h in answer.json()["hits"])

    assert folders() == ["a", "a/b"]
    assert folders(include_subfolders="false") == ["a"]
    assert folders(captured_from="2021-01-01T00:00:00Z", captured_to="2022-01-01T00:00:00Z") == [
        "a"
    ]
    assert folders(captured_from="2022-01-01T00:00:00Z") == []
