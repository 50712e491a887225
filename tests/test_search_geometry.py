"""Ranking and filtering are exactly right: with a fake embedder of known geometry (an image's
embedding is its mean colour, a colour word's embedding is that colour), every score and the
order of every hit can be computed by hand. The fake follows the real models' protocol, and the
first test checks that fake and real agree on it."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from PIL import Image

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.models.clip import ClipImageEncoder, ClipTextEncoder
from viewfinder.runtime.device import FP32

COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


def _unit(v: Sequence[float]) -> NDArray[np.float32]:
    arr = np.asarray(v, dtype=np.float32)
    return arr / np.linalg.norm(arr)


class MeanColourImageEmbedder:
    dim = 3

    def preprocess(self, item: Image.Image) -> NDArray[np.float32]:
        return np.asarray(item.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0) + 1e-3

    def forward(self, batch: Sequence[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        return [_unit(v) for v in batch]

    def postprocess(
        self, raw: NDArray[np.float32], prepared: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        return raw

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (2, 2), (1, 2, 3))


class ColourWordTextEmbedder:
    dim = 3

    def preprocess(self, item: str) -> str:
        return item.lower().split()[-1]

    def forward(self, batch: Sequence[str]) -> list[NDArray[np.float32]]:
        return [_unit(COLOURS[word]) for word in batch]

    def postprocess(self, raw: NDArray[np.float32], prepared: str) -> NDArray[np.float32]:
        return raw

    def warmup_item(self) -> str:
        return "red"


def test_fakes_follow_the_real_models_protocol(tiny_models: dict[str, Path]) -> None:

    real_image = ClipImageEncoder(tiny_models["clip"], "cpu", FP32)
    real_text = ClipTextEncoder(tiny_models["clip"], "cpu", FP32)
    image = Image.new("RGB", (20, 10), (10, 200, 30))
    for real, fake, item in (
        (real_image, MeanColourImageEmbedder(), image),
        (real_text, ColourWordTextEmbedder(), "a photo of something green"),
    ):
        for model in (real, fake):
            out = model.postprocess(
                model.forward([model.preprocess(item)])[0], model.preprocess(item)
            )
            assert out.dtype == np.float32
            assert out.shape == (model.dim,)
            assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-5)


def _jpeg_free_png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(out, format="PNG")
    return out.getvalue()


# (folder, colour) of each stored image; scores against "red" are cos(angle to (1,0,0))
LIBRARY = [
    ("warm", (255, 0, 0)),
    ("warm", (255, 128, 0)),
    ("warm", (255, 255, 0)),
    ("cool", (200, 0, 40)),
    ("cool", (0, 0, 255)),
    ("cool", (0, 255, 128)),
    ("cool/deep", (128, 0, 0)),
]


@pytest.fixture
def client(tmp_path: Path, tiny_models: dict[str, Path]) -> Iterator[tuple[TestClient, list[int]]]:
    settings = make_settings(tmp_path, tiny_models, index_kind="hnsw")
    services = Services.build(settings, with_library=True)
    services.pool.register("clip_image", MeanColourImageEmbedder)
    services.pool.register("clip_text", ColourWordTextEmbedder)
    with TestClient(create_app(settings, services)) as test_client:
        ids = []
        for folder, colour in LIBRARY:
            response = test_client.post(
                "/api/v1/assets",
                files={"files": ("c.png", _jpeg_free_png(colour))},
                data={"folder": folder},
            )
            ids.append(response.json()[0]["asset"]["id"])
        deadline = time.monotonic() + 30
        while test_client.get("/api/v1/jobs/processing").json()["indexed"] < len(LIBRARY):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield test_client, ids
    services.close()


def _expected(query: str, allowed: set[int] | None, ids: list[int]) -> list[tuple[int, float]]:
    q = _unit(COLOURS[query])
    scored = [
        (asset_id, float(_unit(np.asarray(colour, dtype=np.float32) + 1e-3) @ q))
        for asset_id, (_, colour) in zip(ids, LIBRARY, strict=True)
        if allowed is None or asset_id in allowed
    ]
    return sorted(scored, key=lambda t: (-t[1], t[0]))


def test_text_ranking_is_exact(client: tuple[TestClient, list[int]]) -> None:
    test_client, ids = client
    for colour in COLOURS:
        hits = test_client.post("/api/v1/search", json={"query": f"something {colour}", "k": 7})
        got = [(h["asset"]["id"], h["score"]) for h in hits.json()["hits"]]
        expected = _expected(colour, None, ids)
        assert [g[0] for g in got] == [e[0] for e in expected]
        assert [g[1] for g in got] == pytest.approx([e[1] for e in expected], abs=1e-5)


def test_folder_filter_is_exact(client: tuple[TestClient, list[int]]) -> None:
    test_client, ids = client
    cool = {i for i, (folder, _) in zip(ids, LIBRARY, strict=True) if folder.startswith("cool")}
    only_cool = {i for i, (folder, _) in zip(ids, LIBRARY, strict=True) if folder == "cool"}
    for body, allowed in (
        ({"folder": "cool"}, cool),
        ({"folder": "cool", "include_subfolders": False}, only_cool),
    ):
        hits = test_client.post("/api/v1/search", json={"query": "red", "k": 2, **body}).json()[
            "hits"
        ]
        assert [h["asset"]["id"] for h in hits] == [
            e[0] for e in _expected("red", allowed, ids)[:2]
        ]
    seed = test_client.post(
        "/api/demo_backend_v2/image_search/search", json={"query": "red", "k": 10, "folder": "warm"}
    ).json()
    expected = _expected("red", set(ids[:3]), ids)
    assert [h["distance"] for h in seed] == pytest.approx(
        [np.sqrt(2 - 2 * s) for _, s in expected], abs=1e-4
    )


def test_min_score_can_return_nothing_and_ties_are_ordered_by_id(
    client: tuple[TestClient, list[int]],
) -> None:
    test_client, ids = client
    strict = test_client.post("/api/v1/search", json={"query": "blue", "min_score": 0.999, "k": 7})
    assert [h["asset"]["id"] for h in strict.json()["hits"]] == [ids[4]]
    # pure red (255,0,0) and dark red (128,0,0) point the same way: a tie broken by id
    reds = test_client.post("/api/v1/search", json={"query": "red", "k": 2}).json()["hits"]
    assert [h["asset"]["id"] for h in reds] == sorted([ids[0], ids[6]])
