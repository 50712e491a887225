"""Regression tests from an audit of seeds 000 and 003 against their READMEs: behaviours the
seeds document that Viewfinder did differently without saying so."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings, requires_shared
from viewfinder.api.app import create_app
from viewfinder.api.uploads import FORM_OVERHEAD_BYTES
from viewfinder.testing.server import free_port

UPLOAD_LIMIT = 4096


@pytest.fixture(scope="module")
def small_client(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[TestClient]:
    """The app with a small upload limit and no reachable LLM."""
    settings = make_settings(
        tmp_path_factory.mktemp("contract"),
        tiny_models,
        max_upload_bytes=UPLOAD_LIMIT,
        ollama_host=f"http://127.0.0.1:{free_port()}",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (90, 140, 30)).save(out, format="PNG")
    return out.getvalue()


def _results(client: TestClient, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post(
        "/analyze_image_upload/",
        files={"image_file": ("x.png", _png(), "image/png")},
        data={"tasks_json": json.dumps(tasks)},
    )
    assert response.status_code == 200, response.text
    results: dict[str, Any] = response.json()["results"]
    return results


# --- seed 000: face_context matters only for a face target ---------------------------------------


def test_face_context_is_ignored_when_the_target_is_not_a_face(small_client: TestClient) -> None:
    """Seed 000: face_context says where to look "when target is prominent_face"; for any
    other target it was unused, and an unknown value there failed the task."""
    results = _results(
        small_client,
        [
            {"operation_id": "plain", "type": "embed_dino_v2"},
            {
                "operation_id": "odd_context",
                "type": "embed_dino_v2",
                "params": {"target": "whole_image", "face_context": "bogus"},
            },
            {
                "operation_id": "face",
                "type": "embed_dino_v2",
                "params": {"target": "prominent_face", "face_context": "bogus"},
            },
        ],
    )
    assert results["odd_context"]["status"] == "success", results["odd_context"]
    assert results["odd_context"]["data"] == results["plain"]["data"]
    # where it does matter, an unknown value is still an error naming the allowed ones
    assert results["face"]["status"] == "error"
    assert "whole_image" in results["face"]["error_message"]


@requires_shared
def test_person_box_detection_ignores_face_context(small_client: TestClient) -> None:
    results = _results(
        small_client,
        [
            {"operation_id": "person", "type": "detect_bounding_box"},
            {
                "operation_id": "person_odd",
                "type": "detect_bounding_box",
                "params": {"face_context": "bogus"},
            },
        ],
    )
    assert results["person_odd"]["status"] == "success", results["person_odd"]
    assert results["person_odd"] == results["person"]


# --- seed 000: classify with an id that has no classifier -----------------------------------------


def test_classify_with_a_negative_collection_id_is_skipped(small_client: TestClient) -> None:
    """Seed 000: "A task will be skipped ... if no classifier model for the requested
    collection_id is found"; a negative integer id was an error instead."""
    results = _results(
        small_client,
        [
            {"operation_id": "neg", "type": "classify", "params": {"collection_id": -3}},
            {"operation_id": "neg_text", "type": "classify", "params": {"collection_id": "-4"}},
        ],
    )
    for op_id, shown in (("neg", "-3"), ("neg_text", "-4")):
        assert results[op_id]["status"] == "skipped", results[op_id]
        message = results[op_id]["error_message"]
        assert f"No classifier model found for collection_id {shown};" in message


@pytest.mark.parametrize("value", ["--5", "\u00b2", "9" * 5000])
def test_integer_params_that_are_not_decimal_text_are_task_errors(
    small_client: TestClient, value: str
) -> None:
    """Text that str.isdigit() accepts but int() refuses used to escape as an internal error."""
    results = _results(
        small_client,
        [
            {"operation_id": "c", "type": "classify", "params": {"collection_id": value}},
            {"operation_id": "d", "type": "describe_image", "params": {"max_length": value}},
        ],
    )
    for op_id, name in (("c", "collection_id"), ("d", "max_length")):
        result = results[op_id]
        assert result["status"] == "error", result
        message = result["error_message"]
        assert message.startswith(f"Parameter '{name}' must be an integer"), message
        assert len(message) < 200


# --- seed 003: "Image file too large" ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/images/analyze", "/api/images/analyze-stream", "/analyze_image_upload/"]
)
@pytest.mark.parametrize("excess", [1, FORM_OVERHEAD_BYTES + 1])
def test_too_large_uploads_say_image_file_too_large(
    small_client: TestClient, path: str, excess: int
) -> None:
    """Seed 003's README names the error "Image file too large". One byte over the limit is
    refused while the file is read; far over it, before the body is parsed at all."""
    field = "image_file" if path == "/analyze_image_upload/" else "image"
    response = small_client.post(
        path,
        files={field: ("big.png", b"\0" * (UPLOAD_LIMIT + excess), "image/png")},
        data={"tasks_json": "[]"},
    )
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert detail.startswith("Image file too large: "), detail
    assert str(UPLOAD_LIMIT) in detail
