"""Upload size limits: each file is held to VIEWFINDER_MAX_UPLOAD_BYTES ("Image file too large",
the error seed 003's users look for); the whole body of the multi-file upload route to
VIEWFINDER_MAX_REQUEST_BYTES, so a normal batch of photos is not refused for their sum."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings
from viewfinder.api.app import create_app

MB = 1024 * 1024


def noise_bmp(side: int, seed: int) -> bytes:
    """An uncompressed image of ``side``² random pixels (3 bytes each): its size is exact."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="BMP")
    return out.getvalue()


def post_files(client: TestClient, *files: bytes) -> tuple[int, str]:
    response = client.post(
        "/api/v1/assets",
        files=[("files", (f"{i}.bmp", data, "image/bmp")) for i, data in enumerate(files)],
    )
    return response.status_code, response.text


@pytest.fixture
def default_client(tmp_path: Path, tiny_models: dict[str, Path]) -> Iterator[TestClient]:
    """The default limits (20 MB a file, 200 MB a multi-file request); no background work."""
    settings = make_settings(tmp_path, tiny_models, worker_threads=0)
    assert settings.max_upload_bytes == 20 * MB
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_batch_of_five_5_mb_photos_uploads_in_one_request(default_client: TestClient) -> None:
    """The whole body used to be capped at one file's limit (20 MB): five 5 MB photos got
    "Image file too large" although each was a quarter of the limit."""
    photos = [noise_bmp(1320, seed) for seed in range(5)]
    assert all(5 * MB - 64 * 1024 < len(p) < 5 * MB for p in photos)
    status, body = post_files(default_client, *photos)
    assert status == 201, body
    listed = default_client.get("/api/v1/assets", params={"limit": 10}).json()
    assert len(listed["items"]) == 5


def test_one_file_over_the_per_file_limit_is_refused_by_name(default_client: TestClient) -> None:
    too_big = b"BM" + b"\0" * (20 * MB - 1)
    status, body = post_files(default_client, noise_bmp(64, 1), too_big)
    assert status == 413, body
    assert "Image file too large" in body
    assert str(20 * MB) in body


def test_a_body_over_the_request_limit_is_refused_before_parsing(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    settings = make_settings(
        tmp_path, tiny_models, worker_threads=0, max_upload_bytes=100_000, max_request_bytes=500_000
    )
    with TestClient(create_app(settings)) as client:
        small = [noise_bmp(150, seed) for seed in range(8)]  # 67.9 kB each, 543 kB in all
        status, body = post_files(client, *small)
        assert status == 413, body
        assert "VIEWFINDER_MAX_REQUEST_BYTES" in body
        assert "500000" in body
        assert post_files(client, *small[:7])[0] == 201
        # A single-image route still stops at one file's limit (and its room for form fields).
        response = client.post("/images", files={"file": ("big.bmp", b"\0" * 400_000, "image/bmp")})
        assert response.status_code == 413
        assert response.json()["detail"].startswith("Image file too large")
