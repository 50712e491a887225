"""Settings, seed aliases, device selection and model sources."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from viewfinder.errors import DeviceUnavailableError, ModelUnavailableError
from viewfinder.runtime import device as device_module
from viewfinder.runtime.device import FP32, Precision, inference_precision, select_device
from viewfinder.runtime.sources import ModelSource, resolve
from viewfinder.settings import Settings


def test_seed_environment_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_EMBED_DEVICE", "cpu")
    monkeypatch.setenv("IMAGE_EMBED_REQUIRE_GPU", "1")
    monkeypatch.setenv("CLIP_MODEL_NAME", "some/clip")
    monkeypatch.setenv("VIEWFINDER_PRELOAD", "clip_image, face_detector")
    monkeypatch.setenv("VIEWFINDER_FETCH_ALLOW_HOSTS", "127.0.0.1,localhost")
    settings = Settings()
    assert settings.device == "cpu"
    assert settings.require_gpu is True
    assert settings.clip_model == "some/clip"
    assert settings.preload == ["clip_image", "face_detector"]
    assert settings.fetch_allow_hosts == ["127.0.0.1", "localhost"]


def test_seed_001_qdrant_settings_choose_the_qdrant_store(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().vector_store_kind == "embedded"
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "secret")
    settings = Settings()
    assert (settings.vector_store_kind, settings.qdrant_url, settings.qdrant_api_key) == (
        "qdrant",
        "http://qdrant:6333",
        "secret",
    )
    monkeypatch.setenv("VIEWFINDER_VECTOR_STORE", "pgvector")  # an explicit choice wins
    assert Settings().vector_store_kind == "pgvector"
    monkeypatch.setenv("VIEWFINDER_WORKER_KINDS", "embed, faces")
    assert Settings().worker_kinds == ["embed", "faces"]


def test_a_dotenv_file_is_read_as_the_seeds_read_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seed 004's example .env, with a key Viewfinder has no use for.
    (tmp_path / ".env").write_text(
        "APP_NAME=AI Image Organizer\nCLIP_DEVICE=cpu\nKMEANS_CLUSTERS=3\nKMEANS_BATCH_SIZE=32\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.device, settings.kmeans_clusters, settings.kmeans_batch_size) == ("cpu", 3, 32)
    monkeypatch.setenv("KMEANS_CLUSTERS", "5")  # the environment wins over the file
    assert Settings().kmeans_clusters == 5


def test_viewfinder_name_wins_over_nothing_and_defaults_are_documented() -> None:
    settings = Settings()
    assert settings.clip_model == "openai/clip-vit-base-patch32"
    assert settings.dinov2_model == "facebook/dinov2-base"
    assert settings.dinov3_model == "facebook/dinov3-vitl16-pretrain-lvd1689m"
    assert settings.caption_model == "Salesforce/blip-image-captioning-large"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.port == 8000


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU path")
def test_require_gpu_without_gpu_fails_loudly() -> None:
    with pytest.raises(DeviceUnavailableError, match="REQUIRE_GPU"):
        select_device(Settings(require_gpu=True))
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        select_device(Settings(device="cuda"))
    assert select_device(Settings(device="auto")) == "cpu"


def test_precision_follows_device_and_cpu_bf16_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert inference_precision("cuda", Settings()) == Precision(weights=torch.float16)
    assert inference_precision("cuda", Settings(cpu_bf16=True)).cpu_bf16_autocast is False
    assert inference_precision("cpu", Settings()) == FP32
    monkeypatch.setenv("VIEWFINDER_CPU_BF16", "1")
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert inference_precision("cpu", Settings()) == Precision(cpu_bf16_autocast=True)
    # Emulated bf16 is slower than fp32: the setting is ignored, loudly.
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING"):
        assert inference_precision("cpu", Settings()) == FP32
    assert "neither AVX512-BF16 nor AMX" in caplog.text


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU path")
def test_serve_refuses_to_start_on_cpu_when_gpu_required(tmp_path: Path) -> None:
    env = {**os.environ, "IMAGE_EMBED_REQUIRE_GPU": "1", "VIEWFINDER_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "viewfinder", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "no GPU is available" in proc.stderr


def test_offline_hub_model_error_names_model_setting_and_pull(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, offline=True)
    source = ModelSource("clip_image", "clip_model", "openai/clip-vit-base-patch32")
    with pytest.raises(ModelUnavailableError) as info:
        resolve(source, settings)
    message = str(info.value)
    assert "clip_image" in message
    assert "VIEWFINDER_CLIP_MODEL" in message
    assert "viewfinder models pull" in message


def test_offline_url_model_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, offline=True)
    source = ModelSource("person_detector", "person_detector_model", "https://example.org/x.onnx")
    with pytest.raises(ModelUnavailableError, match="viewfinder models pull"):
        resolve(source, settings)


def test_local_sources(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, offline=True)
    folder = tmp_path / "mtcnn"
    folder.mkdir()
    (folder / "pnet.pt").write_bytes(b"x")
    source = ModelSource("face_detector", "mtcnn_model", str(folder))
    with pytest.raises(ModelUnavailableError, match=r"lacks rnet\.pt"):
        resolve(source, settings, ("pnet.pt", "rnet.pt"))
    assert resolve(source, settings, ("pnet.pt",)) == folder
    missing = ModelSource("x", "clip_model", str(tmp_path / "nope"))
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve(missing, settings)


def test_url_source_is_downloaded_once_into_the_cache(
    tmp_path: Path, http_server: str, web_root: Path
) -> None:
    (web_root / "weights.onnx").write_bytes(b"model-bytes")
    settings = Settings(data_dir=tmp_path)
    source = ModelSource("person_detector", "person_detector_model", f"{http_server}/weights.onnx")
    path = resolve(source, settings)
    assert path.read_bytes() == b"model-bytes"
    (web_root / "weights.onnx").unlink()
    assert resolve(source, settings.model_copy(update={"offline": True})) == path
