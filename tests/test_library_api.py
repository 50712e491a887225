"""The image library through HTTP: ingest (upload, URL, server folder), storage, background
embedding, the vector index, search, duplicates, and the seed 002 / 004 surfaces. Real SQLite,
real files, the tiny CLIP for plumbing; the ranking itself is checked in test_search_geometry."""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import text

from tests.conftest import SHARED_DATA, make_settings
from viewfinder.api.app import create_app
from viewfinder.settings import Settings


def jpeg(
    color: tuple[int, int, int], size: tuple[int, int] = (64, 48), seed: int = 0, **save: Any
) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="JPEG", quality=90, **save)
    return out.getvalue()


def wait_processed(client: TestClient, expected: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get("/api/v1/jobs/processing").json()
        counts = state["counts"]
        if counts["done"] + counts["failed"] >= expected and state["indexed"] >= counts["done"]:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


@pytest.fixture
def library_settings(tmp_path: Path, tiny_models: dict[str, Path]) -> Settings:
    roots = tmp_path / "imports"
    roots.mkdir()
    return make_settings(tmp_path, tiny_models, import_roots=[roots], index_save_interval_s=0)


@pytest.fixture
def client(library_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(library_settings)) as test_client:
        yield test_client


def upload(client: TestClient, *files: tuple[str, bytes], folder: str = "") -> Any:
    return client.post(
        "/api/v1/assets",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data={"folder": folder},
    )


def test_upload_stores_metadata_thumbnails_and_deduplicates(client: TestClient) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2021:06:05 14:30:00"
    photo = jpeg((200, 30, 30), size=(300, 200), exif=exif.tobytes())
    response = upload(
        client, ("red.jpg", photo), ("blue.png.jpg", jpeg((20, 20, 220))), folder="a/b"
    )
    assert response.status_code == 201, response.text
    first, second = response.json()
    assert first["created"] is True
    asset = first["asset"]
    assert asset["original_filename"] == "red.jpg"
    assert asset["folder"] == "a/b"
    assert asset["content_type"] == "image/jpeg"
    assert (asset["width"], asset["height"]) == (300, 200)
    assert asset["size_bytes"] == len(photo)
    assert asset["captured_at"].startswith("2021-06-05T14:30:00")
    assert second["asset"]["id"] != asset["id"]

    again = upload(client, ("copy.jpg", photo)).json()[0]
    assert again["created"] is False
    assert again["asset"]["id"] == asset["id"]

    original = client.get(f"/api/v1/assets/{asset['id']}/file")
    assert original.content == photo
    thumb = Image.open(io.BytesIO(client.get(asset["thumbnail_url"]).content))
    preview = Image.open(io.BytesIO(client.get(asset["preview_url"]).content))
    assert thumb.format == preview.format == "JPEG"
    assert max(thumb.size) == 256
    assert preview.size == (300, 200)  # never upscaled
    assert client.get("/api/v1/assets").json()["total"] == 2


def test_non_images_are_refused_and_leave_nothing(
    client: TestClient, library_settings: Settings
) -> None:
    response = upload(client, ("evil.jpg", b"<?php echo 1; ?>"))
    assert response.status_code == 400
    assert "Could not process image" in response.json()["detail"]
    assert client.get("/api/v1/assets").json()["total"] == 0
    files = [p for p in library_settings.blob_root.rglob("*") if p.is_file()]
    assert files == []
    assert upload(client, ("x.jpg", jpeg((1, 2, 3))), folder="../etc").status_code == 400


def test_one_bad_file_refuses_the_whole_upload_and_stores_nothing(
    client: TestClient, library_settings: Settings
) -> None:
    good = [("a.jpg", jpeg((200, 10, 10), seed=1)), ("b.jpg", jpeg((10, 200, 10), seed=2))]
    response = upload(client, good[0], ("notes.jpg", b"not an image at all"), good[1])
    assert response.status_code == 400
    assert response.json()["detail"].startswith("file 2 ('notes.jpg'): ")
    assert client.get("/api/v1/assets").json()["total"] == 0
    assert [p for p in library_settings.blob_root.rglob("*") if p.is_file()] == []

    # Without the bad file the same request goes through; a repeated file is one asset.
    response = upload(client, good[0], good[1], ("again.jpg", good[0][1]))
    assert response.status_code == 201, response.text
    assert [item["created"] for item in response.json()] == [True, True, False]
    assert len({item["asset"]["id"] for item in response.json()}) == 2


def test_processing_embeds_and_indexes_every_asset(client: TestClient) -> None:
    files = [(f"{i}.jpg", jpeg((i * 20, 100, 50), seed=i)) for i in range(6)]
    assert upload(client, *files).status_code == 201
    state = wait_processed(client, 6)
    assert state["counts"] == {"pending": 0, "running": 0, "done": 6, "failed": 0}
    assert state["indexed"] == 6
    asset = client.get("/api/v1/assets").json()["items"][0]
    assert client.get(f"/api/v1/assets/{asset['id']}").json()["processing"] == {"embed": "done"}


def test_search_by_text_image_and_asset_with_filters(client: TestClient) -> None:
    upload(client, *[(f"n{i}.jpg", jpeg((30, 160, 40), seed=i)) for i in range(4)], folder="nature")
    upload(
        client, *[(f"c{i}.jpg", jpeg((90, 90, 95), seed=10 + i)) for i in range(3)], folder="city"
    )
    wait_processed(client, 7)

    everything = client.post("/api/v1/search", json={"query": "green trees", "k": 7}).json()["hits"]
    assert len(everything) == 7
    scores = [h["score"] for h in everything]
    assert scores == sorted(scores, reverse=True)

    nature = client.post("/api/v1/search", json={"query": "trees", "k": 10, "folder": "nature"})
    assert {h["asset"]["folder"] for h in nature.json()["hits"]} == {"nature"}
    assert len(nature.json()["hits"]) == 4

    page = client.post("/api/v1/search", json={"query": "green trees", "k": 3, "offset": 2})
    assert [h["asset"]["id"] for h in page.json()["hits"]] == [
        h["asset"]["id"] for h in everything[2:5]
    ]
    none = client.post("/api/v1/search", json={"query": "green trees", "min_score": 0.9999})
    assert none.json()["hits"] == []

    target = everything[0]["asset"]["id"]
    similar = client.post("/api/v1/search", json={"asset_id": target, "k": 10}).json()["hits"]
    assert target not in [h["asset"]["id"] for h in similar]
    assert len(similar) == 6

    by_upload = client.post(
        "/api/v1/search/image",
        files={"file": ("q.jpg", jpeg((30, 160, 40), seed=1))},
        data={"k": 2},
    ).json()["hits"]
    assert by_upload[0]["score"] == pytest.approx(1.0, abs=1e-3)  # the same bytes are stored

    assert client.post("/api/v1/search", json={"k": 3}).status_code == 400
    assert client.post("/api/v1/search", json={"asset_id": 999999}).status_code == 404
    assert client.post("/api/v1/search", json={"query": "x", "k": 0}).status_code == 422


def test_ingest_by_url_follows_the_same_address_rules(
    client: TestClient, http_server: str, web_root: Path
) -> None:
    (web_root / "url.jpg").write_bytes(jpeg((5, 5, 200)))
    made = client.post("/api/v1/assets/from-url", json={"url": f"{http_server}/url.jpg"})
    assert made.status_code == 201
    assert made.json()["asset"]["original_filename"] == "url.jpg"
    port = http_server.rsplit(":", 1)[1]
    refused = client.post(
        "/api/v1/assets/from-url", json={"url": f"http://127.0.0.2:{port}/url.jpg"}
    )
    assert refused.status_code == 400
    missing = client.post("/api/v1/assets/from-url", json={"url": f"{http_server}/none.jpg"})
    assert missing.status_code == 400


def test_folder_import_job_records_relative_folders(
    client: TestClient, library_settings: Settings, tmp_path: Path
) -> None:
    root = library_settings.import_roots[0] / "photos"
    (root / "nature" / "forest").mkdir(parents=True)
    (root / "animals").mkdir()
    (root / "nature" / "a.jpg").write_bytes(jpeg((10, 150, 10), seed=1))
    (root / "nature" / "forest" / "b.jpg").write_bytes(jpeg((10, 140, 20), seed=2))
    (root / "animals" / "cat.png").write_bytes(jpeg((150, 120, 90), seed=3))
    (root / "notes.txt").write_text("not an image")
    outside = tmp_path / "outside"
    outside.mkdir()
    assert client.post("/api/v1/imports", json={"path": str(outside)}).status_code == 400
    escape = str(library_settings.import_roots[0] / ".." / "outside")
    assert client.post("/api/v1/imports", json={"path": escape}).status_code == 400

    job = client.post("/api/v1/imports", json={"path": str(root)})
    assert job.status_code == 202
    job_id = job.json()["id"]
    deadline = time.monotonic() + 30
    while (state := client.get(f"/api/v1/jobs/{job_id}").json())["state"] != "done":
        assert state["state"] != "failed", state
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["result"]["created"] == 3
    assert [s["path"] for s in state["result"]["skipped"]] == ["notes.txt"]
    folders = {a["folder"] for a in client.get("/api/v1/assets").json()["items"]}
    assert folders == {"nature", "nature/forest", "animals"}
    assert client.get("/api/v1/assets", params={"folder": "nature"}).json()["total"] == 2
    assert client.get("/api/v1/jobs/nope").status_code == 404


def test_delete_removes_asset_files_and_search_hits(client: TestClient) -> None:
    ids = [
        r["asset"]["id"]
        for r in upload(client, ("a.jpg", jpeg((1, 200, 1))), ("b.jpg", jpeg((200, 1, 1)))).json()
    ]
    wait_processed(client, 2)
    assert client.delete(f"/api/v1/assets/{ids[0]}").status_code == 204
    assert client.get(f"/api/v1/assets/{ids[0]}").status_code == 404
    assert client.get(f"/api/v1/assets/{ids[0]}/file").status_code == 404
    assert client.delete(f"/api/v1/assets/{ids[0]}").status_code == 404
    hits = client.post("/api/v1/search", json={"query": "anything", "k": 10}).json()["hits"]
    assert [h["asset"]["id"] for h in hits] == [ids[1]]


def test_near_duplicates_are_grouped(client: TestClient) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared is absent")
    photo = (SHARED_DATA / "faces_face_recognition" / "examples__obama-720p.jpg").read_bytes()
    smaller = io.BytesIO()
    Image.open(io.BytesIO(photo)).resize((640, 360)).save(smaller, format="JPEG", quality=70)
    other = (SHARED_DATA / "captioned_skimage" / "rocket.jpg").read_bytes()
    upload(client, ("big.jpg", photo), ("small.jpg", smaller.getvalue()), ("rocket.jpg", other))
    wait_processed(client, 3)
    groups = client.get("/api/v1/duplicates", params={"min_score": 0.97}).json()
    assert len(groups) == 1
    assert len(groups[0]["asset_ids"]) == 2
    assert groups[0]["min_score"] >= 0.97


# --- seed 002 ----------------------------------------------------------------------------------


def test_seed002_text_search_with_folder_detection(client: TestClient) -> None:
    upload(client, *[(f"n{i}.jpg", jpeg((30, 160, 40), seed=i)) for i in range(3)], folder="nature")
    upload(
        client,
        *[(f"a{i}.jpg", jpeg((160, 100, 40), seed=5 + i)) for i in range(3)],
        folder="animals",
    )
    wait_processed(client, 6)
    url = "/api/demo_backend_v2/image_search/search"

    hits = client.post(url, json={"query": "beautiful sunset over mountains"}).json()
    assert len(hits) == 5  # k defaults to 5, no folder detected
    assert set(hits[0]) == {"distance", "folder", "s3_path", "image_url"}
    distances = [h["distance"] for h in hits]
    assert distances == sorted(distances)
    assert all(0 <= d <= 2 for d in distances)

    assert {
        h["folder"]
        for h in client.post(url, json={"query": "show me Nature photos", "k": 10}).json()
    } == {"nature"}
    assert {
        h["folder"]
        for h in client.post(url, json={"query": "find animal pictures", "k": 10}).json()
    } == {"animals"}
    explicit = client.post(
        url, json={"query": "show me nature photos", "folder": "animals", "k": 10}
    )
    assert {h["folder"] for h in explicit.json()} == {"animals"}
    image_url = hits[0]["image_url"]
    assert client.get(image_url).status_code == 200
    assert hits[0]["s3_path"].startswith("file://")
    assert client.post(url, json={"k": 3}).status_code == 422


def test_seed002_search_by_image(client: TestClient) -> None:
    query = jpeg((30, 160, 40), seed=0)
    upload(
        client,
        ("same.jpg", query),
        *[(f"o{i}.jpg", jpeg((200, 20, 200), seed=i + 1)) for i in range(6)],
    )
    wait_processed(client, 7)
    url = "/api/demo_backend_v2/image_search/search_by_image"
    as_query = client.post(url, params={"k": 3}, files={"file": ("q.jpg", query)}).json()
    assert len(as_query) == 3
    assert as_query[0]["distance"] == pytest.approx(0.0, abs=1e-3)
    as_form = client.post(url, data={"k": "2"}, files={"file": ("q.jpg", query)}).json()
    assert len(as_form) == 2
    default = client.post(url, files={"file": ("q.jpg", query)}).json()
    assert len(default) == 5
    bad = client.post(url, files={"file": ("q.jpg", b"not an image")})
    assert bad.status_code == 400
    assert client.post(url).status_code == 422


def test_l2_distance_matches_cosine() -> None:
    from viewfinder.api.routes.seed002 import Seed002Hit  # noqa: F401  (shape documented above)

    a = np.array([1.0, 0.0])
    b = np.array([math.cos(1.0), math.sin(1.0)])
    assert np.linalg.norm(a - b) == pytest.approx(math.sqrt(2 - 2 * float(a @ b)))


# --- seed 004 ----------------------------------------------------------------------------------


def test_seed004_images_clusters_and_health(client: TestClient, library_settings: Settings) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    made = client.post("/images", files={"file": ("x.jpg", jpeg((10, 10, 10)))})
    assert made.status_code == 201
    body = made.json()
    for key in (
        "id",
        "original_filename",
        "content_type",
        "size_bytes",
        "width",
        "height",
        "created_at",
        "image_url",
    ):
        assert key in body
    assert client.get(body["image_url"]).status_code == 200
    for i in range(11):
        color = (200, 30, 30) if i % 2 else (30, 30, 200)
        client.post("/images", files={"file": (f"{i}.jpg", jpeg(color, seed=100 + i))})
    listed = client.get("/images").json()
    assert len(listed) == 12
    clusters = client.get("/clusters").json()
    members = [i for c in clusters for i in c["image_ids"]]
    assert sorted(members) == sorted(img["id"] for img in listed)  # each image exactly once
    assert len(clusters) <= library_settings.kmeans_clusters
    assert all(len(c["centroid"]) == len(clusters[0]["centroid"]) for c in clusters)
    assert client.get("/clusters").json() == clusters  # cached until the library changes
    client.post("/images", files={"file": ("new.jpg", jpeg((0, 255, 0)))})
    assert len([i for c in client.get("/clusters").json() for i in c["image_ids"]]) == 13
    assert client.post("/images", files={"file": ("x.txt", b"hello")}).status_code == 400


def test_library_end_to_end_on_both_databases(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> None:
    """Upload, background embedding, search and delete, on SQLite and on PostgreSQL."""
    settings = make_settings(tmp_path, tiny_models, database_url=database_url)
    with TestClient(create_app(settings)) as pg_client:
        made = upload(
            pg_client,
            *[(f"{i}.jpg", jpeg((i * 40, 90, 90), seed=i)) for i in range(4)],
            folder="x/y",
        )
        assert made.status_code == 201
        again = upload(pg_client, ("dup.jpg", jpeg((0, 90, 90), seed=0)))
        assert again.json()[0]["created"] is False
        wait_processed(pg_client, 4)
        hits = pg_client.post("/api/v1/search", json={"query": "a photo", "k": 10, "folder": "x"})
        assert len(hits.json()["hits"]) == 4
        first = made.json()[0]["asset"]["id"]
        assert pg_client.delete(f"/api/v1/assets/{first}").status_code == 204
        assert pg_client.get("/api/v1/assets").json()["total"] == 3


def _job_result(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (state := client.get(f"/api/v1/jobs/{job_id}").json())["state"] != "done":
        assert state["state"] != "failed", state
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result: dict[str, Any] = state["result"]
    return result


def test_reindex_job_syncs_the_store_or_embeds_everything_again(client: TestClient) -> None:
    ids = [
        r["asset"]["id"]
        for r in upload(client, ("a.jpg", jpeg((1, 200, 1))), ("b.jpg", jpeg((200, 1, 1)))).json()
    ]
    wait_processed(client, 2)
    lib = client.app.state.services.require_library()  # type: ignore[attr-defined]
    lib.index.remove(np.array(ids[:1], dtype=np.int64))  # a vector lost (a crash, a bad copy)
    assert client.get("/api/v1/jobs/processing").json()["indexed"] == 1

    job = client.post("/api/v1/reindex", json={})
    assert job.status_code == 202
    assert _job_result(client, job.json()["id"]) == {"added": 1, "removed": 0, "total": 2}
    assert client.get("/api/v1/jobs/processing").json()["indexed"] == 2

    def embedded_at() -> dict[int, Any]:
        with lib.sessions() as session:
            rows = session.execute(text("SELECT asset_id, created_at FROM embeddings"))
            return dict(rows.all())

    before = embedded_at()
    job = client.post("/api/v1/reindex", json={"reembed": True})
    assert _job_result(client, job.json()["id"]) == {"queued": 2}
    assert wait_processed(client, 2)["indexed"] == 2
    after = embedded_at()
    assert sorted(after) == sorted(ids)
    assert all(after[i] != before[i] for i in ids)  # each embedded again
    assert client.post("/api/v1/reindex", json={"reembed": "x"}).status_code == 422


def test_a_large_upload_finds_its_library_copy_at_similarity_one(client: TestClient) -> None:
    """Library images are embedded from a reduced decode (EMBED_MIN_SIDE); search by upload
    decodes the same way, so the same large image gives the same vector."""
    rng = np.random.default_rng(5)
    # Fine detail everywhere, so a decode at another scale would give other pixels.
    noisy = rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy).save(out, "JPEG", quality=75)
    stored = upload(client, ("big.jpg", out.getvalue())).json()[0]["asset"]
    assert (stored["width"], stored["height"]) == (2000, 1500)  # the original's size
    wait_processed(client, 1)
    hits = client.post(
        "/api/v1/search/image", files={"file": ("q.jpg", out.getvalue())}, data={"k": 1}
    ).json()["hits"]
    assert hits[0]["asset"]["id"] == stored["id"]
    assert hits[0]["similarity"] == pytest.approx(1.0, abs=1e-6)


def test_analysis_of_the_whole_image_decodes_as_the_library_does(client: TestClient) -> None:
    """A request whose tasks only embed the whole image decodes at EMBED_MIN_SIDE, as the
    library does: its CLIP vector is the library's vector of the same bytes. One that detects
    keeps every pixel (its boxes are in the original's coordinates)."""
    rng = np.random.default_rng(6)
    noisy = rng.integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy).save(out, "JPEG", quality=75)
    stored = upload(client, ("big.jpg", out.getvalue())).json()[0]["asset"]
    wait_processed(client, 1)
    library = client.app.state.services.require_library()  # type: ignore[attr-defined]
    in_library = library.search.asset_vector(stored["id"])

    def clip_vector(extra_tasks: list[dict[str, object]]) -> NDArray[np.float32]:
        tasks = [{"operation_id": "e", "type": "embed_clip_vit_b_32"}, *extra_tasks]
        response = client.post(
            "/analyze_image_upload/",
            files={"image_file": ("big.jpg", out.getvalue())},
            data={"tasks_json": json.dumps(tasks)},
        )
        assert response.status_code == 200, response.text
        return np.asarray(response.json()["results"]["e"]["data"], dtype=np.float32)

    assert float(clip_vector([]) @ in_library) == pytest.approx(1.0, abs=1e-6)
    detect = {
        "operation_id": "d",
        "type": "detect_bounding_box",
        "params": {"target": "prominent_person"},
    }
    full = clip_vector([detect])
    assert float(full @ in_library) < 1.0 - 1e-6  # decoded whole: other pixels, another vector
