"""Text in images (OCR): the real PP-OCR models the rapidocr wheel ships read rendered words
(several fonts and sizes, a rotated line) and the photos with text in ../shared; the ``ocr``
worker stores what it reads on the asset; search ranks and filters by it, through HTTP on SQLite
and PostgreSQL with the worker threads running."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings, shared_data
from viewfinder.api.app import create_app
from viewfinder.errors import ModelUnavailableError
from viewfinder.library.words import words_of
from viewfinder.model_registry import model_entries
from viewfinder.models.ocr import OcrReader, OcrResult, ctc_decode, find_model_files
from viewfinder.runtime.sources import ModelSource, resolve
from viewfinder.settings import Settings
from viewfinder.testing import text_images

pytestmark = pytest.mark.skipif(
    find_spec("rapidocr") is None, reason="the rapidocr wheel (the OCR models) is not installed"
)


@pytest.fixture(scope="module", autouse=True)
def _fonts() -> None:
    if not text_images.font_files():
        pytest.skip("no TrueType fonts on this machine (e.g. apt-get install fonts-dejavu-core)")


def sign_image() -> Image.Image:
    return text_images.sign().image


def road_image() -> Image.Image:
    return text_images.street().image


def plain_image() -> Image.Image:
    return text_images.plain().image


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> OcrReader:
    """The OCR model as the service builds it: the default setting, through the registry."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("ocr"), offline=True)
    entry = model_entries(settings, "cpu")["ocr"]
    model = entry.build(entry.resolve(settings))
    assert isinstance(model, OcrReader)
    return model


def read(model: OcrReader, image: Image.Image) -> OcrResult:
    prepared = model.preprocess(image)
    (raw,) = model.forward([prepared])
    return model.postprocess(raw, prepared)


# --- the model -------------------------------------------------------------------------------


def test_reads_rendered_words_in_several_fonts_sizes_and_a_rotated_line(reader: OcrReader) -> None:
    result = read(reader, sign_image())
    words = set(words_of(result.text))
    expected = {"harbour", "1987", "fresh", "lobster", "sold", "daily", "opening", "hours"}
    assert expected <= words, result.text
    assert {"ferry", "timetable"} <= words, result.text  # the 22-pixel line
    assert {"lighthouse", "road"} <= words, result.text  # rotated by 20 degrees
    # Reading order: the big heading first, one row per line.
    assert result.text.splitlines()[0] == "HARBOUR 1987"
    heading = next(line for line in result.lines if line.text == "HARBOUR 1987")
    xs = [x for x, _ in heading.box]
    ys = [y for _, y in heading.box]
    assert 40 < min(xs) < 80, heading.box  # in the caller's pixels
    assert 40 < min(ys) < 80, heading.box
    assert max(ys) < 140, heading.box
    assert all(line.score >= reader.min_score for line in result.lines)


def test_a_batch_reads_each_image_as_alone(reader: OcrReader) -> None:
    images = [road_image(), plain_image(), sign_image()]
    prepared = [reader.preprocess(i) for i in images]
    raw = reader.forward(prepared)
    texts = [reader.postprocess(r, p).text for r, p in zip(raw, prepared, strict=True)]
    assert texts == [read(reader, i).text for i in images]
    assert {"museum", "modern", "art", "station", "square"} <= set(words_of(texts[0]))
    assert texts[1] == ""


def test_photos_without_text_read_nothing(reader: OcrReader) -> None:
    assert read(reader, plain_image()).text == ""
    astronaut = Image.open(shared_data("captioned_skimage", "astronaut.png")).convert("RGB")
    assert words_of(read(reader, astronaut).text) == []


def test_reads_the_text_in_real_photos(reader: OcrReader) -> None:
    page = Image.open(shared_data("captioned_skimage", "page.png")).convert("RGB")
    text = read(reader, page).text
    assert text.splitlines()[0] == "Region-based segmentation", text
    assert {"markers", "coins", "background", "histogram", "unambiguously"} <= set(words_of(text))
    bus = Image.open(shared_data("person_scenes", "yolov5__bus.jpg")).convert("RGB")
    # The bus's side: "Un minibús 100% eléctrico ...", "cero emisiones" (zero emissions).
    assert {"cero", "emisiones", "minibús"} <= set(words_of(read(reader, bus).text))


def test_ctc_decoding_merges_repeats_and_drops_blanks() -> None:
    chars = ["", "a", "b"]
    steps = [1, 1, 0, 1, 2, 2, 0]  # a a _ a b b _ -> "aab"
    probs = np.full((len(steps), 3), 0.05, dtype=np.float32)
    probs[np.arange(len(steps)), steps] = 0.9
    probs[0, 1] = 0.6
    text, score = ctc_decode(probs, chars)
    assert text == "aab"
    assert score == pytest.approx((0.6 + 0.9 + 0.9) / 3)
    assert ctc_decode(np.eye(3, dtype=np.float32)[[0, 0]], chars) == ("", 0.0)


def test_model_sources_say_what_is_missing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, offline=True)
    absent = ModelSource("ocr", "ocr_model", "package:no_such_package_here/models")
    with pytest.raises(ModelUnavailableError, match=r"no_such_package_here.*not installed"):
        resolve(absent, settings)
    smaller = Settings(data_dir=tmp_path, offline=True, ocr_detect_side=640)
    entry = model_entries(smaller, "cpu")["ocr"]
    model = entry.build(entry.resolve(smaller))
    assert isinstance(model, OcrReader)
    assert model.det_max_side == 640
    assert model.preprocess(sign_image()).det_input.shape == (3, 480, 640)
    (tmp_path / "only_det.onnx").write_bytes(b"")
    with pytest.raises(ModelUnavailableError, match=r"exactly one \*rec\*\.onnx"):
        find_model_files(tmp_path)


# --- the library, through HTTP ---------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path, tiny_models: dict[str, Path], database_url: str) -> Iterator[TestClient]:
    """The app with its worker threads running: embedding (tiny CLIP) and OCR (real models)."""
    settings = make_settings(
        tmp_path,
        tiny_models,
        database_url=database_url,
        faces_enabled=False,
        ocr_enabled=True,
        index_save_interval_s=0,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def upload(client: TestClient, name: str, image: Image.Image) -> int:
    response = client.post(
        "/api/v1/assets", files=[("files", (name, jpeg(image), "application/octet-stream"))]
    )
    assert response.status_code == 201, response.text
    return int(response.json()[0]["asset"]["id"])


def wait_read(client: TestClient, asset_ids: list[int], timeout: float = 90) -> dict[int, Any]:
    """Each asset once its text is read and it is embedded."""
    deadline = time.monotonic() + timeout
    while True:
        assets = {i: client.get(f"/api/v1/assets/{i}").json() for i in asset_ids}
        done = all(a["text"] is not None for a in assets.values())
        state = client.get("/api/v1/jobs/processing").json()
        if done and state["indexed"] >= len(asset_ids):
            return assets
        assert time.monotonic() < deadline, (assets, state)
        time.sleep(0.1)


def search(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def ids(result: dict[str, Any]) -> list[int]:
    return [h["asset"]["id"] for h in result["hits"]]


def test_text_is_read_stored_shown_and_searched(client: TestClient) -> None:
    sign = upload(client, "sign.jpg", sign_image())
    road = upload(client, "road.jpg", road_image())
    plain = upload(client, "plain.jpg", plain_image())
    assets = wait_read(client, [sign, road, plain])
    assert {"harbour", "1987", "lobster", "lighthouse"} <= set(words_of(assets[sign]["text"]))
    assert {"museum", "station", "square"} <= set(words_of(assets[road]["text"]))
    assert assets[plain]["text"] == ""
    status = client.get("/api/v1/status").json()
    ocr = next(k for k in status["processing"] if k["kind"] == "ocr")
    assert ocr["counts"]["done"] == 3, ocr

    # The words of a query found in an image's text raise it to the top.
    found = search(client, query="harbour 1987", k=3)
    assert ids(found)[0] == sign, found
    top = found["hits"][0]
    assert top["text_match"] == 1.0
    assert top["score"] == pytest.approx(top["similarity"] + 0.3)
    assert all(h["text_match"] == 0.0 for h in found["hits"][1:])
    assert ids(search(client, query="station square museum", k=3))[0] == road
    half = next(h for h in search(client, query="lobster chowder", k=3)["hits"] if h["text_match"])
    assert (half["asset"]["id"], half["text_match"]) == (sign, 0.5)
    assert half["score"] == pytest.approx(half["similarity"] + 0.3 * 0.25)

    # ``text`` requires every word: case-blind, whole words, any order, with or without a query.
    assert ids(search(client, query="a photo", text="1987 Harbour", k=10)) == [sign]
    assert ids(search(client, asset_id=plain, text="museum", k=10)) == [road]
    assert ids(search(client, query="a photo", text="harbo", k=10)) == []
    nothing = search(client, query="a photo", text="harbour museum", k=10)
    assert (nothing["hits"], nothing["reason"]) == ([], "no_match_filters")

    # ``text`` alone: the images whose text has the words, newest first.
    alone = search(client, text="road", k=10)
    assert ids(alone) == [sign]
    assert alone["hits"][0]["text_match"] == 1.0
    assert ids(search(client, text="the", k=10)) == [sign]  # a filter's every word counts
    none = search(client, text="harbour museum", k=10)
    assert none["reason"] == "no_match_filters"
    assert "harbour, museum" in none["message"]

    # The same filter as a form field of a search by an uploaded image.
    response = client.post(
        "/api/v1/search/image",
        files={"file": ("q.jpg", jpeg(plain_image()))},
        data={"k": "10", "text": "Modern ART"},
    )
    assert response.status_code == 200, response.text
    assert ids(response.json()) == [road]


def upload_file(client: TestClient, path: Path) -> int:
    response = client.post(
        "/api/v1/assets", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))]
    )
    assert response.status_code == 201, response.text
    return int(response.json()[0]["asset"]["id"])


def test_real_photos_are_found_by_the_words_on_them(client: TestClient) -> None:
    """../shared's photos with text among photos without: the words read on the bus and on the
    page, and a search for those words that returns that photo first."""
    names = {
        "page": ("captioned_skimage", "page.png"),
        "bus": ("person_scenes", "yolov5__bus.jpg"),
        "dog": ("person_scenes", "darknet__dog.jpg"),
        "zebra": ("coco8", "coco8", "images", "train", "000000000034.jpg"),
        "coffee": ("captioned_skimage", "coffee.png"),
    }
    uploaded = {key: upload_file(client, shared_data(*parts)) for key, parts in names.items()}
    assets = wait_read(client, list(uploaded.values()))
    read = {key: set(words_of(assets[i]["text"])) for key, i in uploaded.items()}
    assert {"cero", "emisiones"} <= read["bus"], read["bus"]
    assert {"segmentation", "markers", "coins"} <= read["page"], read["page"]
    for query, first in (("cero emisiones", "bus"), ("segmentation of the coins", "page")):
        found = search(client, query=query, k=5)
        assert ids(found)[0] == uploaded[first], (query, found)
        assert found["hits"][0]["text_match"] == 1.0
    # Required words keep only the photo that shows them.
    only = search(client, query="a street", text="emisiones", k=5)
    assert ids(only) == [uploaded["bus"]]


BAD_SEARCHES: list[tuple[dict[str, Any], str]] = [
    ({}, "give 'query' (text), 'asset_id' (an image), or filters such as 'text'"),
    ({"text": "  !!  "}, "give 'query' (text), 'asset_id' (an image), or filters such as 'text'"),
    ({"query": "dog", "asset_id": 1}, "not both"),
    ({"text": "harbour", "min_score": 0.2}, "min_score and candidates bound the similarity"),
    ({"query": "dog", "text": " ".join(f"w{i}" for i in range(21))}, "at most 20 words"),
]


def test_bad_searches_are_refused_with_a_reason(client: TestClient) -> None:
    for body, detail in BAD_SEARCHES:
        response = client.post("/api/v1/search", json=body)
        assert response.status_code == 400, (body, response.text)
        assert detail in response.json()["detail"], body


def test_images_stored_while_ocr_was_off_are_read_once_it_is_on(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> None:
    def settings(ocr: bool) -> Settings:
        return make_settings(
            tmp_path, tiny_models, database_url=database_url, faces_enabled=False, ocr_enabled=ocr
        )

    with TestClient(create_app(settings(False))) as off:
        sign = upload(off, "sign.jpg", sign_image())
        assert off.get(f"/api/v1/assets/{sign}").json()["text"] is None
        kinds = [k["kind"] for k in off.get("/api/v1/status").json()["processing"]]
        assert "ocr" not in kinds
    with TestClient(create_app(settings(True))) as on:
        text = wait_read(on, [sign])[sign]["text"]
        assert {"harbour", "1987"} <= set(words_of(text))
        assert ids(search(on, text="harbour", k=5)) == [sign]
