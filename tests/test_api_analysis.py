"""Seed 000's analysis API through HTTP: every statement of its README, on real photos where the
statement is about real behaviour (../shared) and on synthetic images for plumbing."""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import SHARED_DATA, requires_shared, shared_data
from viewfinder.container import Services

OBAMA = ("faces_face_recognition", "examples__obama-720p.jpg")
NO_PERSON_SCENE = ("person_scenes", "darknet__eagle.jpg")


def task(op_id: str, kind: str, **params: Any) -> dict[str, Any]:
    return {"operation_id": op_id, "type": kind, "params": params}


def box_iou(a: list[int], b: list[int]) -> float:
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def upload(
    client: TestClient, data: bytes, tasks: list[dict[str, Any]], name: str = "x.png"
) -> Any:
    return client.post(
        "/analyze_image_upload/",
        files={"image_file": (name, data, "application/octet-stream")},
        data={"tasks_json": json.dumps(tasks)},
    )


@pytest.fixture(scope="module")
def served(web_root: Path) -> Path:
    """Real photos copied into the loopback web root (tests only read ../shared)."""
    if SHARED_DATA.is_dir():
        for parts in (OBAMA, NO_PERSON_SCENE):
            shutil.copy(SHARED_DATA.joinpath(*parts), web_root / parts[1])
    return web_root


# --- /available_operations/ ----------------------------------------------------------------


def test_available_operations_lists_targets_and_defaults(client: TestClient) -> None:
    body = client.get("/available_operations/").json()
    ops = body["operations"]
    assert ops["detect_bounding_box"] == {
        "description": "Detects a bounding box for a specified target.",
        "allowed_targets": ["prominent_person", "prominent_face"],
        "default_target": "prominent_person",
    }
    assert ops["embed_clip_vit_b_32"]["allowed_targets"] == [
        "whole_image",
        "prominent_person",
        "prominent_face",
    ]
    assert ops["classify"]["default_target"] == "whole_image"
    assert set(ops) == {
        "detect_bounding_box",
        "embed_clip_vit_b_32",
        "embed_dino_v2",
        "embed_dino_v3",
        "classify",
        "describe_image",
    }


# --- /analyze_image/ by URL -----------------------------------------------------------------


def test_url_whole_image_embedding_echoes_url_and_keys_by_operation_id(
    client: TestClient, http_server: str, module_services: Services
) -> None:
    url = f"{http_server}/red.png"
    response = client.post(
        "/analyze_image/",
        json={
            "image_url": url,
            "tasks": [
                task("a", "embed_clip_vit_b_32", target="whole_image"),
                task("b", "embed_dino_v2"),
                task("c", "embed_dino_v3"),
            ],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image_url"] == url
    assert set(body["results"]) == {"a", "b", "c"}
    for op_id, model in (("a", "clip_image"), ("b", "dinov2"), ("c", "dinov3")):
        result = body["results"][op_id]
        assert result["status"] == "success", result
        assert result["cropped_image_bbox"] is None
        assert result["cropped_image_base64"] is None
        assert result["error_message"] is None
        vector = np.asarray(result["data"], dtype=np.float32)
        assert vector.shape == (module_services.pool.get(model).model.dim,)  # type: ignore[attr-defined]
        assert np.isfinite(vector).all()
    assert "Server-Timing" in response.headers


def test_url_that_cannot_be_downloaded_is_400(client: TestClient, http_server: str) -> None:
    for url in (
        f"{http_server}/missing.png",
        "ftp://127.0.0.1/x.png",
        "not a url",
        f"http://127.0.0.2:{http_server.rsplit(':', 1)[1]}/red.png",  # loopback, not allowed
    ):
        response = client.post("/analyze_image/", json={"image_url": url, "tasks": []})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["detail"].startswith("Could not download image from URL:"), url


def test_url_that_is_not_an_image_is_400(client: TestClient, http_server: str) -> None:
    response = client.post(
        "/analyze_image/",
        json={
            "image_url": f"{http_server}/not-an-image.txt",
            "tasks": [task("a", "describe_image")],
        },
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Could not process image:")


def test_invalid_bodies_are_422(client: TestClient) -> None:
    assert client.post("/analyze_image/", json={"tasks": []}).status_code == 422
    assert (
        client.post("/analyze_image/", json={"image_url": "http://x", "tasks": "no"}).status_code
        == 422
    )
    missing_id = {"image_url": "http://x", "tasks": [{"type": "embed_dino_v2"}]}
    assert client.post("/analyze_image/", json=missing_id).status_code == 422


def test_duplicate_operation_ids_are_422_on_both_endpoints(client: TestClient) -> None:
    tasks = [task("same", "embed_dino_v2"), task("same", "describe_image")]
    response = client.post(
        "/analyze_image/", json={"image_url": "http://127.0.0.1:9/x", "tasks": tasks}
    )
    assert response.status_code == 422
    assert "same" in response.json()["detail"]
    response = upload(client, png_bytes(Image.new("RGB", (8, 8))), tasks)
    assert response.status_code == 422


# --- /analyze_image_upload/ -----------------------------------------------------------------


def test_upload_reports_placeholder_url_and_runs_tasks(client: TestClient) -> None:
    response = upload(
        client,
        png_bytes(Image.new("RGB", (40, 30), (10, 120, 200))),
        [task("caption", "describe_image", max_length=8)],
        name="some_person.png",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image_url"] == "uploaded:some_person.png"
    caption = body["results"]["caption"]
    assert caption["status"] == "success"
    assert isinstance(caption["data"], str)


def test_upload_errors(client: TestClient, module_services: Services) -> None:
    good = png_bytes(Image.new("RGB", (8, 8)))
    for bad in ("{not json", '{"a": 1}', '[{"type": "embed_dino_v2"}]'):
        response = client.post(
            "/analyze_image_upload/",
            files={"image_file": ("x.png", good)},
            data={"tasks_json": bad},
        )
        assert response.status_code == 400, bad
        assert "tasks_json" in response.json()["detail"]
    response = upload(client, b"GIF89a-but-not-really", [task("a", "embed_dino_v2")])
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Could not process image:")
    assert upload(client, b"", [task("a", "embed_dino_v2")]).status_code == 400
    missing_file = client.post("/analyze_image_upload/", data={"tasks_json": "[]"})
    assert missing_file.status_code == 422
    limit = module_services.settings.max_upload_bytes
    huge = upload(client, b"\0" * (limit + 1), [task("a", "embed_dino_v2")])
    assert huge.status_code == 413
    assert "VIEWFINDER_MAX_UPLOAD_BYTES" in huge.json()["detail"]


def test_odd_image_modes_are_converted(client: TestClient) -> None:
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    grey16 = Image.fromarray(np.arange(400, dtype=np.uint16).reshape(20, 20) * 100)
    palette = Image.new("P", (20, 20), 3)
    for image in (rgba, grey16, palette, Image.new("CMYK", (20, 20), (0, 255, 0, 0))):
        data = io.BytesIO()
        image.save(data, format="TIFF" if image.mode == "CMYK" else "PNG")
        response = upload(client, data.getvalue(), [task("a", "embed_clip_vit_b_32")])
        assert response.status_code == 200, image.mode
        assert response.json()["results"]["a"]["status"] == "success"


# --- per-task statuses ----------------------------------------------------------------------


def test_task_errors_never_fail_the_request(client: TestClient) -> None:
    response = upload(
        client,
        png_bytes(Image.new("RGB", (16, 16))),
        [
            task("unknown", "make_coffee"),
            task("bad_target", "detect_bounding_box", target="whole_image"),
            task("bad_context", "embed_dino_v2", target="prominent_face", face_context="elsewhere"),
            task("bad_length", "describe_image", max_length=0),
            task("ok", "embed_dino_v2"),
        ],
    )
    assert response.status_code == 200
    results = response.json()["results"]
    # seed 000 skips an operation it does not know and a target the operation does not take
    assert results["unknown"]["status"] == "skipped"
    assert "available" in results["unknown"]["error_message"]
    assert results["bad_target"]["status"] == "skipped"
    assert "prominent_person" in results["bad_target"]["error_message"]
    assert results["bad_context"]["status"] == "error"
    assert results["bad_length"]["status"] == "error"
    assert results["ok"]["status"] == "success"


def test_classify_without_or_with_unknown_collection_is_skipped(client: TestClient) -> None:
    response = upload(
        client,
        png_bytes(Image.new("RGB", (16, 16))),
        [task("missing", "classify"), task("unknown", "classify", collection_id=987654)],
    )
    results = response.json()["results"]
    assert results["missing"]["status"] == "skipped"
    assert "collection_id" in results["missing"]["error_message"]
    assert results["unknown"]["status"] == "skipped"
    assert "987654" in results["unknown"]["error_message"]


def test_caption_respects_max_length(client: TestClient, module_services: Services) -> None:
    image = png_bytes(Image.new("RGB", (32, 32), (250, 250, 10)))
    response = upload(client, image, [task("short", "describe_image", max_length=5)])
    caption = response.json()["results"]["short"]["data"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(module_services.settings.caption_model)
    assert len(tokenizer(caption, add_special_tokens=False)["input_ids"]) <= 5


# --- persons and faces on real photos -------------------------------------------------------


@requires_shared
def test_person_face_boxes_crops_and_reuse(
    client: TestClient, served: Path, http_server: str, module_services: Services
) -> None:
    photo = Image.open(shared_data(*OBAMA)).convert("RGB")
    person_model = module_services.pool.get("person_detector")
    face_model = module_services.pool.get("face_detector")
    persons_before = person_model.batcher.items_run
    faces_before = face_model.batcher.items_run
    response = client.post(
        "/analyze_image/",
        json={
            "image_url": f"{http_server}/{OBAMA[1]}",
            "tasks": [
                task("person_bbox", "detect_bounding_box"),
                task("face_bbox", "detect_bounding_box", target="prominent_face"),
                task("face_embedding", "embed_clip_vit_b_32", target="prominent_face"),
                task("person_embedding", "embed_dino_v2", target="prominent_person"),
                task(
                    "face_whole",
                    "detect_bounding_box",
                    target="prominent_face",
                    face_context="whole_image",
                ),
            ],
        },
    )
    assert response.status_code == 200
    results = response.json()["results"]
    person = results["person_bbox"]["data"]
    face = results["face_bbox"]["data"]
    assert results["person_bbox"]["cropped_image_bbox"] is None
    assert results["person_bbox"]["cropped_image_base64"] is None
    assert all(isinstance(v, int) for v in person + face)
    assert person[0] <= face[0] < face[2] <= person[2]
    assert person[1] <= face[1] < face[3] <= person[3]
    # the embedding used the same face box, and returns the exact crop as PNG
    embedded = results["face_embedding"]
    assert embedded["cropped_image_bbox"] == face
    crop = Image.open(io.BytesIO(base64.b64decode(embedded["cropped_image_base64"])))
    assert crop.format == "PNG"
    assert crop.size == (face[2] - face[0], face[3] - face[1])
    assert np.array_equal(np.asarray(crop.convert("RGB")), np.asarray(photo.crop(tuple(face))))
    assert results["person_embedding"]["cropped_image_bbox"] == person
    # the whole-image face search finds the same face (at a coarser detector scale)
    assert box_iou(results["face_whole"]["data"], face) > 0.8
    # box reuse: one person detection, one face detection per context in the whole request
    assert person_model.batcher.items_run - persons_before == 1
    assert face_model.batcher.items_run - faces_before == 2


@requires_shared
def test_person_target_falls_back_to_whole_image_and_face_is_required(
    client: TestClient,
) -> None:
    scene = shared_data(*NO_PERSON_SCENE).read_bytes()
    response = upload(
        client,
        scene,
        [
            task("person_bbox", "detect_bounding_box"),
            task("person_emb", "embed_clip_vit_b_32", target="prominent_person"),
            task("whole_emb", "embed_clip_vit_b_32"),
            task("face_emb", "embed_clip_vit_b_32", target="prominent_face"),
            task("face_caption", "describe_image", target="prominent_face"),
        ],
    )
    results = response.json()["results"]
    assert results["person_bbox"] == {
        "status": "success",
        "data": None,
        "cropped_image_bbox": None,
        "cropped_image_base64": None,
        "error_message": None,
    }
    assert results["person_emb"]["status"] == "success"
    assert results["person_emb"]["cropped_image_bbox"] is None
    assert results["person_emb"]["data"] == results["whole_emb"]["data"]
    for op_id in ("face_emb", "face_caption"):
        assert results[op_id]["status"] == "skipped"
        assert "No face found" in results[op_id]["error_message"]
        assert results[op_id]["data"] is None


def test_logging_records_duration_pid_and_operation_timings(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        upload(client, png_bytes(Image.new("RGB", (8, 8))), [task("emb", "embed_dino_v2")])
    text = caplog.text
    assert "request start POST /analyze_image_upload/" in text
    assert "request finish POST /analyze_image_upload/ status=200 duration=" in text
    assert "pid=" in text
    assert "emb=" in text  # per-operation timing


@requires_shared
def test_mtcnn_can_be_chosen_as_face_detector(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    from tests.conftest import make_settings
    from viewfinder.api.app import create_app

    settings = make_settings(tmp_path, tiny_models, face_detector="mtcnn")
    with TestClient(create_app(settings)) as mtcnn_client:
        response = upload(
            mtcnn_client,
            shared_data(*OBAMA).read_bytes(),
            [task("face", "detect_bounding_box", target="prominent_face")],
        )
    face = response.json()["results"]["face"]
    assert face["status"] == "success"
    x1, y1, x2, y2 = face["data"]
    assert 40 < x2 - x1 < 700
    assert 40 < y2 - y1 < 700
