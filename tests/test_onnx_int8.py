"""VIEWFINDER_CPU_INT8: the CLIP towers exported to ONNX, quantised to int8 weights and cached.

The export itself is checked without quantisation (it must equal the torch tower); the int8
graphs are then held to the torch fp32 encoders by cosine. Thresholds come from measurements on
the tiny checkpoint (cosine to fp32: image >= 0.99988, text >= 0.99960; a batch against the same
items one by one would be image >= 0.99988, text >= 0.99870, which is why the encoders run each item
alone) with about ten times the margin."""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.errors import ModelUnavailableError
from viewfinder.model_registry import model_entries
from viewfinder.models import onnx_int8
from viewfinder.models.clip import ClipImageEncoder, ClipTextEncoder
from viewfinder.models.onnx_int8 import OnnxClipImageEncoder, OnnxClipTextEncoder
from viewfinder.runtime.device import FP32

IMAGE_MIN_COSINE = 0.999  # measured >= 0.99988
TEXT_MIN_COSINE = 0.995  # measured >= 0.99960
TEXTS = [
    "a dog",
    "a photo of a red car on the beach at night",
    "x",
    "green trees in a park " * 20,  # longer than the context: truncated
]


def photos() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noisy = [Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(5)]
    return [*noisy, Image.new("RGB", (50, 40), (200, 30, 30)), Image.new("RGB", (30, 90), "blue")]


def rows(vectors: Sequence[NDArray[np.float32]]) -> NDArray[np.float32]:
    return np.stack(vectors)


@pytest.fixture(scope="module")
def clip_dir(tiny_models: dict[str, Path]) -> Path:
    return tiny_models["clip"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def torch_image(clip_dir: Path) -> ClipImageEncoder:
    return ClipImageEncoder(clip_dir, "cpu", FP32)


@pytest.fixture(scope="module")
def torch_text(clip_dir: Path) -> ClipTextEncoder:
    return ClipTextEncoder(clip_dir, "cpu", FP32)


@pytest.fixture(scope="module")
def int8_image(clip_dir: Path, cache_dir: Path) -> OnnxClipImageEncoder:
    return OnnxClipImageEncoder.int8(clip_dir, cache_dir, threads=2)


@pytest.fixture(scope="module")
def int8_text(clip_dir: Path, cache_dir: Path) -> OnnxClipTextEncoder:
    return OnnxClipTextEncoder.int8(clip_dir, cache_dir, threads=2)


def test_fp32_export_equals_the_torch_towers(
    clip_dir: Path, tmp_path: Path, torch_image: ClipImageEncoder, torch_text: ClipTextEncoder
) -> None:
    onnx_int8.export_tower(clip_dir, "image", tmp_path / "image.onnx", quantize=False)
    onnx_int8.export_tower(clip_dir, "text", tmp_path / "text.onnx", quantize=False)
    image = OnnxClipImageEncoder(clip_dir, tmp_path / "image.onnx", threads=2)
    text = OnnxClipTextEncoder(clip_dir, tmp_path / "text.onnx", threads=2)
    assert (image.dim, text.dim) == (torch_image.dim, torch_text.dim)

    pixels = [image.preprocess(photo) for photo in photos()]
    assert all(
        np.array_equal(a, torch_image.preprocess(p)) for a, p in zip(pixels, photos(), strict=True)
    )
    np.testing.assert_allclose(
        rows(image.forward(pixels)), rows(torch_image.forward(pixels)), atol=1e-5
    )

    tokens = [text.preprocess(t) for t in TEXTS]
    assert [list(t) for t in tokens] == [list(torch_text.preprocess(t)) for t in TEXTS]
    assert len({len(t) for t in tokens}) == len(TEXTS)  # the batch is padded
    np.testing.assert_allclose(
        rows(text.forward(tokens)), rows(torch_text.forward(tokens)), atol=1e-5
    )
    for ids in tokens:  # alone, unpadded: other sequence lengths than the traced ones
        np.testing.assert_allclose(text.forward([ids])[0], torch_text.forward([ids])[0], atol=1e-5)


def test_int8_encoders_stay_close_to_fp32_but_are_quantised(
    int8_image: OnnxClipImageEncoder,
    int8_text: OnnxClipTextEncoder,
    torch_image: ClipImageEncoder,
    torch_text: ClipTextEncoder,
) -> None:
    pixels = [int8_image.preprocess(photo) for photo in photos()]
    fast, exact = rows(int8_image.forward(pixels)), rows(torch_image.forward(pixels))
    assert fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert (fast * exact).sum(axis=1).min() >= IMAGE_MIN_COSINE
    assert np.abs(fast - exact).max() > 1e-3  # the fp32 export agrees to 1e-5: this is int8

    tokens = [int8_text.preprocess(t) for t in TEXTS]
    fast, exact = rows(int8_text.forward(tokens)), rows(torch_text.forward(tokens))
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert (fast * exact).sum(axis=1).min() >= TEXT_MIN_COSINE
    assert np.abs(fast - exact).max() > 1e-3


def test_int8_embeddings_do_not_depend_on_their_batch(
    int8_image: OnnxClipImageEncoder, int8_text: OnnxClipTextEncoder
) -> None:
    # Activations are quantised with one scale per run, so each item runs alone: the same
    # input gives the same embedding whatever the load put next to it.
    pixels = [int8_image.preprocess(photo) for photo in photos()]
    batched = rows(int8_image.forward(pixels))
    singles = rows([int8_image.forward([p])[0] for p in pixels])
    np.testing.assert_array_equal(batched, singles)
    assert np.abs(batched[0] - batched[1]).max() > 1e-3  # different photos, different rows

    tokens = [int8_text.preprocess(t) for t in TEXTS]
    batched = rows(int8_text.forward(tokens))
    singles = rows([int8_text.forward([t])[0] for t in tokens])
    np.testing.assert_array_equal(batched, singles)


def test_cache_is_reused_and_keyed_by_the_weights(
    clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = onnx_int8.int8_tower(clip_dir, "image", cache)
    assert first.parent == cache / "onnx-int8"

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again instead of reusing the cache")

    monkeypatch.setattr(onnx_int8, "export_tower", no_export)
    assert onnx_int8.int8_tower(clip_dir, "image", cache) == first
    encoder = OnnxClipImageEncoder.int8(clip_dir, cache, threads=1)
    assert len(encoder.forward([encoder.preprocess(photos()[0])])) == 1
    with pytest.raises(AssertionError, match="exported again"):  # the text tower is not cached
        onnx_int8.int8_tower(clip_dir, "text", cache)
    assert sorted(p.name for p in (cache / "onnx-int8").iterdir()) == [first.name]

    changed = tmp_path / "changed"
    shutil.copytree(clip_dir, changed)
    assert onnx_int8.cache_key(changed, "image") == onnx_int8.cache_key(clip_dir, "image")
    assert onnx_int8.cache_key(clip_dir, "text") != onnx_int8.cache_key(clip_dir, "image")
    (weights,) = changed.glob("*.safetensors")
    tensors = load_file(weights)
    name = next(n for n in tensors if n.startswith("vision_model.") and n.endswith(".weight"))
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, weights, metadata={"format": "pt"})
    assert onnx_int8.cache_key(changed, "image") != onnx_int8.cache_key(clip_dir, "image")


def test_a_failed_build_leaves_no_cache_entry(
    clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(graph: Path, out: Path) -> None:
        out.write_bytes(b"half a model")
        raise RuntimeError("killed mid-quantisation")

    monkeypatch.setattr(onnx_int8, "_quantize", crash)
    with pytest.raises(RuntimeError, match="mid-quantisation"):
        onnx_int8.int8_tower(clip_dir, "image", tmp_path)
    assert list((tmp_path / "onnx-int8").iterdir()) == []


def test_missing_onnx_package_names_the_extra(
    tmp_path: Path, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    settings = make_settings(tmp_path, tiny_models, cpu_int8=True, device="cpu")
    entries = model_entries(settings, "cpu")
    for name in ("clip_image", "clip_text"):
        with pytest.raises(ModelUnavailableError, match=r"pip install 'viewfinder\[int8\]'"):
            entries[name].build(tiny_models["clip"])


def test_the_setting_only_switches_clip_on_the_cpu(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    settings = make_settings(tmp_path, tiny_models, cpu_int8=True, device="cpu")
    assert not (settings.model_cache_dir / "onnx-int8").exists()
    entries = model_entries(settings, "cpu")
    assert isinstance(entries["clip_image"].build(tiny_models["clip"]), OnnxClipImageEncoder)
    assert isinstance(entries["clip_text"].build(tiny_models["clip"]), OnnxClipTextEncoder)
    assert len(list((settings.model_cache_dir / "onnx-int8").glob("*.onnx"))) == 2
    assert type(entries["dinov2"].build(tiny_models["dinov2"])).__name__ == "DinoEncoder"
    off = make_settings(tmp_path, tiny_models, device="cpu")
    assert isinstance(
        model_entries(off, "cpu")["clip_image"].build(tiny_models["clip"]), ClipImageEncoder
    )


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


def test_http_embedding_and_text_search_run_on_int8(
    tmp_path: Path,
    tiny_models: dict[str, Path],
    torch_image: ClipImageEncoder,
) -> None:
    settings = make_settings(
        tmp_path, tiny_models, cpu_int8=True, device="cpu", index_save_interval_s=0
    )
    photo = jpeg(7)
    with TestClient(create_app(settings)) as client:
        task = {"operation_id": "e", "type": "embed_clip_vit_b_32", "params": {}}
        response = client.post(
            "/analyze_image_upload/",
            files={"image_file": ("x.jpg", photo, "application/octet-stream")},
            data={"tasks_json": json.dumps([task])},
        )
        assert response.status_code == 200, response.text
        result = response.json()["results"]["e"]
        assert result["status"] == "success", result
        served = np.asarray(result["data"], dtype=np.float32)

        stored = client.post(
            "/api/v1/assets",
            files=[("files", ("x.jpg", photo, "application/octet-stream"))],
            data={"folder": ""},
        )
        assert stored.status_code == 201, stored.text
        asset_id = stored.json()[0]["asset"]["id"]
        deadline = time.monotonic() + 60
        while client.get("/api/v1/jobs/processing").json()["indexed"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        hits = client.post("/api/v1/search", json={"query": "a red car", "k": 5}).json()["hits"]

    # What the server ran is the cached int8 graph, not the torch tower.
    image = OnnxClipImageEncoder.int8(tiny_models["clip"], settings.model_cache_dir, threads=1)
    text = OnnxClipTextEncoder.int8(tiny_models["clip"], settings.model_cache_dir, threads=1)
    assert served.shape == (torch_image.dim,)
    pixels = image.preprocess(Image.open(io.BytesIO(photo)).convert("RGB"))
    np.testing.assert_allclose(served, image.forward([pixels])[0], atol=1e-5)
    assert np.abs(served - torch_image.forward([pixels])[0]).max() > 1e-3
    assert [hit["asset"]["id"] for hit in hits] == [asset_id]
    expected = float(text.forward([text.preprocess("a red car")])[0] @ served)
    assert hits[0]["score"] == pytest.approx(expected, abs=1e-4)
