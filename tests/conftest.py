"""Shared fixtures: tiny offline checkpoints, real weights and photos from ../shared, settings
that never touch the network, the app behind a real ASGI client, and a loopback HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from viewfinder.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from viewfinder.container import Services

pytest_plugins = ["tests.db_fixtures", "tests.s3_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_MODELS = SHARED / "models"
SHARED_DATA = SHARED / "data"

requires_shared = pytest.mark.skipif(
    not (SHARED_MODELS.is_dir() and SHARED_DATA.is_dir()),
    reason="../shared (real photos and weights) is absent beside the repository",
)


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data; the calling test is skipped when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared not beside the repository)")
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random checkpoints of the real architectures, built offline once per session."""
    from viewfinder.testing import checkpoints

    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "clip": checkpoints.build_tiny_clip(root / "clip"),
        "dinov2": checkpoints.build_tiny_dinov2(root / "dinov2"),
        "dinov3": checkpoints.build_tiny_dinov3(root / "dinov3"),
        "caption": checkpoints.build_tiny_blip(root / "blip"),
    }


def make_settings(tmp_path: Path, tiny_models: dict[str, Path], **overrides: Any) -> Settings:
    """Offline settings on tiny checkpoints and, where present, the real detector weights."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "offline": True,
        "clip_model": str(tiny_models["clip"]),
        "dinov2_model": str(tiny_models["dinov2"]),
        "dinov3_model": str(tiny_models["dinov3"]),
        "caption_model": str(tiny_models["caption"]),
        "person_detector_model": str(SHARED_MODELS / "yolox" / "yolox_nano.onnx"),
        "object_detector_model": str(SHARED_MODELS / "yolox" / "yolox_nano.onnx"),
        "yunet_model": str(SHARED_MODELS / "yunet" / "face_detection_yunet_opencv_zoo.onnx"),
        "mtcnn_model": str(SHARED_MODELS / "mtcnn"),
        "face_recognizer_model": str(SHARED_MODELS / "mobilefacenet" / "mobilefacenet.onnx"),
        "ocr_enabled": False,  # the default; tests/test_ocr.py turns it on where it is tested
        "fetch_allow_hosts": ["127.0.0.1:*"],  # loopback test servers listen on random ports
        "model_idle_ttl_s": 0,
        "batch_max_wait_ms": 2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, tiny_models: dict[str, Path]) -> Settings:
    return make_settings(tmp_path, tiny_models)


@pytest.fixture(scope="module")
def module_services(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[Services]:
    """Services shared by a test module, so models load once per module."""
    from viewfinder.container import Services

    services = Services.build(make_settings(tmp_path_factory.mktemp("svc"), tiny_models))
    yield services
    services.close()


@pytest.fixture(scope="module")
def client(module_services: Services) -> Iterator[TestClient]:
    from viewfinder.api.app import create_app

    with TestClient(create_app(module_services.settings, module_services)) as test_client:
        yield test_client


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="session")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files served by ``http_server``; tests drop files here."""
    root = tmp_path_factory.mktemp("web")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "red.png")
    (root / "not-an-image.txt").write_text("hello")
    return root


@pytest.fixture(scope="session")
def http_server(web_root: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving ``web_root``; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(web_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def serve_env(tmp_path: Path, tiny_models: dict[str, Path], **extra: str) -> dict[str, str]:
    """The environment for a ``viewfinder serve`` subprocess on ``make_settings``' models."""
    settings = make_settings(tmp_path, tiny_models)
    env = {**os.environ, "VIEWFINDER_OFFLINE": "1", "VIEWFINDER_LOG_LEVEL": "WARNING"}
    for name in ("data_dir", "clip_model", "dinov2_model", "dinov3_model", "caption_model"):
        env[f"VIEWFINDER_{name.upper()}"] = str(getattr(settings, name))
    env.update(extra)
    return env


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (never a browser Playwright downloads); the test
    is skipped, saying why, where either is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (the dev extra)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()
