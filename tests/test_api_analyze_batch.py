"""Seed 000's to-do through HTTP: POST /analyze_images/ (many URLs, one request, the models see
them together), the CLIP model chosen per task (``params.model``), and seed 000's ``skipped``
for an unknown operation or a target the operation does not take. Images come from a loopback
HTTP server that counts the downloads running at once."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from tests.conftest import SHARED_DATA, make_settings, requires_shared
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.imaging.budget import decode_budget
from viewfinder.model_registry import clip_image_models, model_entries
from viewfinder.settings import Settings

MAX_URLS = 6
FETCH_CONCURRENCY = 2
WIDE_DIM = 24  # the second tiny CLIP's vector length (the default one's is 16)
OBAMA = ("faces_face_recognition", "examples__obama-720p.jpg")
EAGLE = ("person_scenes", "darknet__eagle.jpg")
COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200), "grey": (90,) * 3}


def task(op_id: str, kind: str, **params: Any) -> dict[str, Any]:
    return {"operation_id": op_id, "type": kind, "params": params}


class _Counting(http.server.SimpleHTTPRequestHandler):
    """Serves the web root; ``/slow/NAME`` waits before answering, ``/held/NAME`` until
    ``release`` is set. Counts requests and the most that ran at once."""

    lock = threading.Lock()
    release = threading.Event()
    running = 0
    most = 0
    hits = 0

    def do_GET(self) -> None:
        cls = _Counting  # the counters live here, not on the per-site subclass
        with cls.lock:
            cls.running += 1
            cls.hits += 1
            cls.most = max(cls.most, cls.running)
        try:
            if self.path.startswith("/slow/"):
                time.sleep(0.25)
                self.path = self.path.removeprefix("/slow")
            elif self.path.startswith("/held/"):
                cls.release.wait(timeout=30)
                self.path = self.path.removeprefix("/held")
            super().do_GET()
        finally:
            with cls.lock:
                cls.running -= 1

    def log_message(self, format: str, *args: Any) -> None:
        return

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.most = cls.hits = 0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("batch-web")
    for name, colour in COLOURS.items():
        Image.new("RGB", (64, 48), colour).save(root / f"{name}.png")
    (root / "not-an-image.txt").write_text("hello")
    if SHARED_DATA.is_dir():
        for parts in (OBAMA, EAGLE):
            shutil.copy(SHARED_DATA.joinpath(*parts), root / parts[1])

    class Handler(_Counting):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def wide_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from viewfinder.testing import checkpoints

    return checkpoints.build_tiny_clip(tmp_path_factory.mktemp("wide-clip"), WIDE_DIM)


@pytest.fixture(scope="module")
def batch_services(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], wide_clip: Path
) -> Iterator[Services]:
    settings = make_settings(
        tmp_path_factory.mktemp("batch"),
        tiny_models,
        analyze_batch_max_urls=MAX_URLS,
        analyze_batch_fetch_concurrency=FETCH_CONCURRENCY,
        clip_models={"wide": str(wide_clip)},
        # long enough that items queued together always share a forward, even on a busy CI
        batch_max_wait_ms=100,
    )
    services = Services.build(settings)
    yield services
    services.close()


@pytest.fixture(scope="module")
def api(batch_services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(batch_services.settings, batch_services)) as client:
        yield client


def batching(services: Services, model: str) -> tuple[int, int]:
    loaded = services.pool.get(model)
    return loaded.batcher.batches_run, loaded.batcher.items_run


def assert_same_analysis(batch_item: dict[str, Any], single: dict[str, Any]) -> None:
    """The batch item is what /analyze_image/ answered for its URL; vectors computed in a
    batch of several images may differ in the last float bits from a batch of one."""
    assert batch_item["image_url"] == single["image_url"]
    assert batch_item["results"].keys() == single["results"].keys()
    for op_id, expected in single["results"].items():
        got = batch_item["results"][op_id]
        assert {k: v for k, v in got.items() if k != "data"} == {
            k: v for k, v in expected.items() if k != "data"
        }, op_id
        if isinstance(expected["data"], list) and expected["data"]:
            assert np.allclose(got["data"], expected["data"], atol=1e-5), op_id
        else:
            assert got["data"] == expected["data"], op_id


# --- the batch route ------------------------------------------------------------------------


def test_items_keep_request_order_and_equal_the_single_route(api: TestClient, site: str) -> None:
    tasks = [
        task("clip", "embed_clip_vit_b_32"),
        task("dino", "embed_dino_v2"),
        task("wide", "embed_clip_vit_b_32", model="wide"),
        task("caption", "describe_image", max_length=6),
        task("coffee", "make_coffee"),
        task("box_of_image", "detect_bounding_box", target="whole_image"),
    ]
    urls = [
        f"{site}/green.png",
        f"{site}/missing.png",
        f"{site}/red.png",
        f"{site}/not-an-image.txt",
        f"{site}/blue.png",
        f"{site}/green.png",  # a repeated URL gets its item again
    ]
    response = api.post("/analyze_images/", json={"image_urls": urls, "tasks": tasks})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["image_url"] for item in items] == urls
    for url, item in zip(urls, items, strict=True):
        single = api.post("/analyze_image/", json={"image_url": url, "tasks": tasks})
        if single.status_code == 200:
            assert "detail" not in item
            assert_same_analysis(item, single.json())
            assert item["results"]["clip"]["status"] == "success"
            assert item["results"]["coffee"]["status"] == "skipped"
        else:
            # the download or decode failure /analyze_image/ answers with, for this URL only
            assert single.status_code == 400
            assert item == {"image_url": url, "detail": single.json()["detail"]}
    assert items[1]["detail"].startswith("Could not download image from URL:")
    assert items[3]["detail"].startswith("Could not process image:")
    assert items[5] == items[0]
    # distinct images give distinct vectors: each item is its own image's analysis
    assert items[0]["results"]["clip"]["data"] != items[2]["results"]["clip"]["data"]


def test_the_models_see_the_whole_batch_at_once(
    api: TestClient, site: str, batch_services: Services
) -> None:
    urls = [f"{site}/{name}.png" for name in COLOURS]
    tasks = [task("clip", "embed_clip_vit_b_32"), task("dino", "embed_dino_v2")]
    api.post("/analyze_image/", json={"image_url": urls[0], "tasks": tasks})  # models loaded
    clip_before, dino_before = (
        batching(batch_services, "clip_image"),
        batching(batch_services, "dinov2"),
    )
    response = api.post("/analyze_images/", json={"image_urls": urls, "tasks": tasks})
    assert response.status_code == 200
    assert all(item["results"]["clip"]["status"] == "success" for item in response.json()["items"])
    clip_after, dino_after = (
        batching(batch_services, "clip_image"),
        batching(batch_services, "dinov2"),
    )
    # one forward pass per model served all four images
    assert (clip_after[0] - clip_before[0], clip_after[1] - clip_before[1]) == (1, len(urls))
    assert (dino_after[0] - dino_before[0], dino_after[1] - dino_before[1]) == (1, len(urls))
    # the same images one request at a time: one forward each
    for url in urls:
        api.post("/analyze_image/", json={"image_url": url, "tasks": tasks})
    assert batching(batch_services, "clip_image")[0] - clip_after[0] == len(urls)


def test_downloads_run_concurrently_within_the_limit(api: TestClient, site: str) -> None:
    urls = [f"{site}/slow/{name}.png" for name in COLOURS] + [f"{site}/slow/red.png?again"]
    _Counting.reset()
    started = time.perf_counter()
    response = api.post(
        "/analyze_images/",
        json={"image_urls": urls, "tasks": [task("dino", "embed_dino_v2")]},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert all("results" in item for item in response.json()["items"])
    assert _Counting.hits == len(urls)
    assert _Counting.most == FETCH_CONCURRENCY  # concurrent, and never more than the setting
    assert elapsed < len(urls) * 0.25  # faster than one download after another


def test_past_the_url_cap_is_413_and_bad_requests_fetch_nothing(api: TestClient, site: str) -> None:
    _Counting.reset()
    too_many = [f"{site}/red.png"] * (MAX_URLS + 1)
    response = api.post(
        "/analyze_images/", json={"image_urls": too_many, "tasks": [task("a", "embed_dino_v2")]}
    )
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert f"at most {MAX_URLS}" in detail
    assert "VIEWFINDER_ANALYZE_BATCH_MAX_URLS" in detail
    repeated = [task("same", "embed_dino_v2"), task("same", "describe_image")]
    response = api.post(
        "/analyze_images/", json={"image_urls": [f"{site}/red.png"], "tasks": repeated}
    )
    assert response.status_code == 422  # as /analyze_image/ answers repeated ids
    assert "same" in response.json()["detail"]
    assert api.post("/analyze_images/", json={"image_urls": "x", "tasks": []}).status_code == 422
    assert _Counting.hits == 0
    empty = api.post("/analyze_images/", json={"image_urls": [], "tasks": []})
    assert empty.json() == {"items": []}
    assert (
        api.post(
            "/analyze_images/", json={"image_urls": [f"{site}/red.png"] * MAX_URLS, "tasks": []}
        ).json()["items"]
        == [{"image_url": f"{site}/red.png", "results": {}}] * MAX_URLS
    )


def test_batches_past_the_process_limit_are_told_to_retry(
    api: TestClient, batch_services: Services, site: str
) -> None:
    """VIEWFINDER_ANALYZE_BATCH_REQUESTS (2 by default) batches run at once; another is a 429
    with Retry-After at once (it holds nothing), and is served once one finishes."""
    assert batch_services.settings.analyze_batch_requests == 2
    body = {"image_urls": [f"{site}/held/red.png"], "tasks": [task("d", "embed_dino_v2")]}
    _Counting.reset()
    _Counting.release.clear()
    answers: list[int] = []
    running = [
        threading.Thread(
            target=lambda: answers.append(api.post("/analyze_images/", json=body).status_code)
        )
        for _ in range(2)
    ]
    try:
        for thread in running:
            thread.start()
        deadline = time.monotonic() + 10
        while _Counting.running < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _Counting.running == 2  # both batches are downloading, holding their slots
        refused = api.post("/analyze_images/", json={**body, "image_urls": [f"{site}/red.png"]})
        assert refused.status_code == 429, refused.text
        assert "VIEWFINDER_ANALYZE_BATCH_REQUESTS" in refused.json()["detail"]
        assert "retry-after" in refused.headers
        assert _Counting.hits == 2  # the refused batch downloaded nothing
    finally:
        _Counting.release.set()
        for thread in running:
            thread.join(timeout=30)
    assert answers == [200, 200]
    again = api.post("/analyze_images/", json={**body, "image_urls": [f"{site}/red.png"]})
    assert again.status_code == 200, again.text


def test_groups_never_hold_more_pixels_than_the_decode_budget(
    site: str, batch_services: Services
) -> None:
    """With room for two 64x48 images in the decode budget, five images go in three groups:
    three forward passes, each over at most two images."""
    from viewfinder.analysis.results import Task

    budget = decode_budget()
    capacity = budget.capacity
    budget.resize(2 * 64 * 48)
    try:
        before = batching(batch_services, "dinov2")
        urls = [f"{site}/{name}.png" for name in COLOURS] + [f"{site}/red.png?5"]
        outcomes = batch_services.analysis.analyze_urls(urls, [Task("d", "embed_dino_v2")])
        after = batching(batch_services, "dinov2")
    finally:
        budget.resize(capacity)
    assert all(not isinstance(o, Exception) for o in outcomes)
    assert after[1] - before[1] == len(urls)
    assert after[0] - before[0] == 3


@requires_shared
def test_real_photos_detections_run_once_per_batch(
    api: TestClient, site: str, batch_services: Services
) -> None:
    tasks = [
        task("person", "detect_bounding_box"),
        task("face", "detect_bounding_box", target="prominent_face"),
        task("face_emb", "embed_clip_vit_b_32", target="prominent_face"),
        task("person_emb", "embed_dino_v2", target="prominent_person"),
    ]
    urls = [f"{site}/{OBAMA[1]}", f"{site}/{EAGLE[1]}", f"{site}/red.png"]
    singles = [api.post("/analyze_image/", json={"image_url": u, "tasks": tasks}) for u in urls]
    persons = batching(batch_services, "person_detector")
    faces = batching(batch_services, "face_detector")
    response = api.post("/analyze_images/", json={"image_urls": urls, "tasks": tasks})
    items = response.json()["items"]
    for item, single in zip(items, singles, strict=True):
        assert_same_analysis(item, single.json())
    obama = items[0]["results"]
    assert obama["face"]["data"] is not None
    assert obama["face_emb"]["cropped_image_bbox"] == obama["face"]["data"]
    assert items[1]["results"]["face_emb"]["status"] == "skipped"  # no face on the eagle
    # one person detection and one face detection per image, each in one forward pass
    assert np.subtract(batching(batch_services, "person_detector"), persons).tolist() == [1, 3]
    assert np.subtract(batching(batch_services, "face_detector"), faces).tolist() == [1, 3]


# --- the CLIP model, per task ---------------------------------------------------------------


def test_available_operations_lists_the_clip_models(api: TestClient) -> None:
    body = api.get("/available_operations/").json()
    assert body["clip_models"] == ["default", "wide"]
    assert set(body["operations"]["embed_clip_vit_b_32"]) == {
        "description",
        "allowed_targets",
        "default_target",
    }


def test_the_vector_length_follows_params_model(api: TestClient, site: str) -> None:
    tasks = [
        task("plain", "embed_clip_vit_b_32"),
        task("default", "embed_clip_vit_b_32", model="default"),
        task("wide", "embed_clip_vit_b_32", model="wide"),
        task("unknown", "embed_clip_vit_b_32", model="vit-h-14"),
        task("not_text", "embed_clip_vit_b_32", model=7),
    ]
    response = api.post("/analyze_image/", json={"image_url": f"{site}/red.png", "tasks": tasks})
    results = response.json()["results"]
    assert len(results["plain"]["data"]) == 16
    assert results["default"]["data"] == results["plain"]["data"]
    assert len(results["wide"]["data"]) == WIDE_DIM
    for op_id in ("unknown", "not_text"):
        assert results[op_id]["status"] == "skipped", results[op_id]
        assert results[op_id]["data"] is None
        assert "configured: default, wide" in results[op_id]["error_message"]


def test_clip_models_setting(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        clip_model="openai/clip-vit-base-patch32",
        clip_models=" vit-l-14=openai/clip-vit-large-patch14, same=openai/clip-vit-base-patch32,",
    )
    assert settings.clip_models == {
        "vit-l-14": "openai/clip-vit-large-patch14",
        "same": "openai/clip-vit-base-patch32",
    }
    # the one with the default's source is the default's tower, not a second copy
    assert clip_image_models(settings) == {
        "default": "clip_image",
        "vit-l-14": "clip_image:vit-l-14",
        "same": "clip_image",
    }
    entry = model_entries(settings, "cpu")["clip_image:vit-l-14"]
    assert entry.source.spec == "openai/clip-vit-large-patch14"
    assert entry.source.env_var == "VIEWFINDER_CLIP_MODELS"
    assert "clip_image:same" not in model_entries(settings, "cpu")
    for bad in ("vit-l-14", "default=x", "a b=x", "empty="):
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path, clip_models=bad)


# --- seed 000: unknown operations and targets are skipped -----------------------------------


def test_unknown_operation_and_disallowed_target_are_skipped(api: TestClient, site: str) -> None:
    tasks = [
        task("coffee", "make_coffee"),
        task("whole_box", "detect_bounding_box", target="whole_image"),
        task("odd_target", "embed_dino_v2", target="left_ear"),
        task("bad_context", "embed_dino_v2", target="prominent_face", face_context="elsewhere"),
        task("bad_length", "describe_image", max_length=0),
        task("ok", "embed_dino_v2"),
    ]
    response = api.post("/analyze_image/", json={"image_url": f"{site}/red.png", "tasks": tasks})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results["coffee"]["status"] == "skipped"
    assert "Unsupported operation type 'make_coffee'" in results["coffee"]["error_message"]
    assert "embed_clip_vit_b_32" in results["coffee"]["error_message"]
    for op_id in ("whole_box", "odd_target"):
        assert results[op_id]["status"] == "skipped", results[op_id]
        assert "allowed:" in results[op_id]["error_message"]
    assert "prominent_person, prominent_face" in results["whole_box"]["error_message"]
    # failures inside a task stay errors, as in seed 000
    assert results["bad_context"]["status"] == "error"
    assert results["bad_length"]["status"] == "error"
    assert results["ok"]["status"] == "success"
    # a malformed request is still a clear 4xx
    bad = api.post("/analyze_image/", json={"image_url": f"{site}/red.png", "tasks": [{}]})
    assert bad.status_code == 422
