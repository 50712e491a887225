"""The Analyse view in a real browser against a real ``viewfinder serve`` (real person and face
detectors, tiny CLIP and caption checkpoints): a real photo is analysed with seed 000's
operations and the page draws exactly the boxes the API answered, shows the crop and summarises
the embedding; seed 003's prompt arrives token by token from an LLM that speaks Ollama's API on
loopback (it holds its second token back until the page shows the first); without a working LLM
the page says the prompt was composed without one; a refused URL shows the server's reason."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import requires_shared, shared_data
from tests.web_fixtures import accessibility_violations, screenshot, ui_page, ui_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PHOTO = ("person_scenes", "yolov5__zidane.jpg")  # two men, faces visible
TOKENS = ["Two men ", "in suits ", "under warm ", "stadium light"]
MODEL = "fake-llm:7b"


class FakeLLM:
    """Ollama's ``POST /api/generate`` streaming NDJSON; after the first token it waits for
    ``gate`` (the test opens it once the page shows that token). ``failing`` answers 500."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.failing = False
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if fake.failing:
                    data = b'{"error": "model runner crashed"}'
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.end_headers()
                for index, token in enumerate(TOKENS):
                    line = {"model": body["model"], "response": token, "done": False}
                    self.wfile.write(json.dumps(line).encode() + b"\n")
                    self.wfile.flush()
                    if index == 0:
                        fake.gate.wait(60)
                self.wfile.write(b'{"response": "", "done": true}\n')

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.gate.set()
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], llm: FakeLLM
) -> Iterator[str]:
    with ui_server(
        tmp_path_factory.mktemp("web-analyse"),
        tiny_models,
        ollama_host=llm.url,
        ollama_model=MODEL,
        ollama_read_timeout_s=90.0,
    ) as base:
        yield base


def _operations_ready(page: Page) -> None:
    page.locator('fieldset[data-operation="detect_bounding_box"]').wait_for()


@requires_shared
@pytest.mark.slow
def test_a_photo_gets_its_boxes_crop_embedding_and_a_streamed_prompt(
    server: str, browser: Browser, llm: FakeLLM
) -> None:
    photo = shared_data(*PHOTO)
    with ui_page(browser, server, "/analyse") as (page, errors):
        _operations_ready(page)
        assert accessibility_violations(page) == []
        # The defaults: both boxes, a CLIP embedding of the whole image, a caption.
        assert page.is_checked("#op-detect_bounding_box-prominent_person")
        assert page.is_checked("#op-detect_bounding_box-prominent_face")
        assert page.is_checked("#op-embed_clip_vit_b_32-whole_image")
        page.check("#op-embed_clip_vit_b_32-prominent_face")  # an embedding with its crop
        page.set_input_files("#analyse-file", str(photo))
        page.fill("#analyse-user-prompt", "a football photo")

        with page.expect_response("**/analyze_image_upload/") as answered:
            page.get_by_role("button", name="Analyse", exact=True).click()
        answer = answered.value.json()["results"]

        # The prompt streams: the LLM has sent one token and waits until the page shows it.
        prompt = page.locator(".analyse-prompt")
        page.wait_for_function(
            "t => { const p = document.querySelector('.analyse-prompt');"
            " return p && p.dataset.state === 'streaming' && p.textContent === t; }",
            arg=TOKENS[0],
        )
        assert prompt.get_attribute("data-tokens") == "1"
        llm.gate.set()
        page.locator('.analyse-prompt[data-state="complete"]').wait_for()
        assert prompt.inner_text() == "".join(TOKENS)
        assert prompt.get_attribute("data-source") == "llm"
        assert page.inner_text(".analyse-prompt-source") == "Written by the LLM."
        assert llm.requests[-1]["stream"] is True
        assert llm.requests[-1]["model"] == MODEL
        assert "a football photo" in llm.requests[-1]["prompt"]
        categories = page.locator(".analyse-category").evaluate_all(
            "nodes => nodes.map(n => n.dataset.category)"
        )
        assert categories == ["style", "mood", "composition", "color_palette", "subjects"]

        # Boxes: one drawn per box the API found, at the API's pixel coordinates.
        found = {
            op: r["data"]
            for op, r in answer.items()
            if op.startswith("detect_bounding_box:") and r["status"] == "success" and r["data"]
        }
        assert set(found) == {
            "detect_bounding_box:prominent_person",
            "detect_bounding_box:prominent_face",
        }
        page.locator(".analyse-boxes g.box").nth(len(found) - 1).wait_for()
        drawn = page.locator(".analyse-boxes g.box").evaluate_all(
            """nodes => nodes.map(g => { const r = g.querySelector('rect.frame');
                return [g.dataset.target, ['x', 'y', 'width', 'height'].map(
                    a => Number(r.getAttribute(a)))]; })"""
        )
        assert sorted(drawn) == sorted(
            [op.split(":")[1], [x0, y0, x1 - x0, y1 - y0]] for op, (x0, y0, x1, y1) in found.items()
        )
        # The overlay covers the displayed image: the face box sits inside the person box on
        # screen too.
        person = page.locator('.analyse-boxes g[data-target="prominent_person"] rect.frame')
        face = page.locator('.analyse-boxes g[data-target="prominent_face"] rect.frame')
        p, f = person.bounding_box(), face.bounding_box()
        assert p
        assert f
        assert p["x"] <= f["x"]
        assert f["x"] + f["width"] <= p["x"] + p["width"] + 1
        assert p["y"] <= f["y"]
        assert f["y"] + f["height"] <= p["y"] + p["height"] + 1

        # The face embedding's crop loads, at the size of the box the API used.
        crop_card = page.locator('[data-operation-id="embed_clip_vit_b_32:prominent_face"]')
        crop = crop_card.locator(".analyse-crop img")
        crop.wait_for()
        size = crop.evaluate(
            "img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
        )
        x0, y0, x1, y1 = answer["embed_clip_vit_b_32:prominent_face"]["cropped_image_bbox"]
        assert size == [x1 - x0, y1 - y0]

        # The embedding is summarised, not listed: its dimension as the API's vector has it.
        whole = answer["embed_clip_vit_b_32:whole_image"]
        card = page.locator('[data-operation-id="embed_clip_vit_b_32:whole_image"]')
        assert card.locator(".dims").inner_text() == str(len(whole["data"]))
        assert "CLIP ViT-B/32" in card.inner_text()
        caption = answer["describe_image:whole_image"]
        assert caption["status"] == "success"
        assert (
            page.locator(
                '[data-operation-id="describe_image:whole_image"] .analyse-caption'
            ).inner_text()
            == caption["data"].strip()
        )

        assert accessibility_violations(page) == []
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "analyse", full_page=True)
        assert errors == []


@requires_shared
@pytest.mark.slow
def test_no_llm_and_a_refused_url_are_explained(
    server: str, browser: Browser, llm: FakeLLM
) -> None:
    llm.failing = True
    try:
        with ui_page(browser, server, "/analyse", dark=True, mobile=True) as (page, errors):
            _operations_ready(page)
            for box in ("prominent_person", "prominent_face"):
                page.uncheck(f"#op-detect_bounding_box-{box}")
            page.uncheck("#op-embed_clip_vit_b_32-whole_image")
            page.uncheck("#op-describe_image-whole_image")
            page.set_input_files("#analyse-file", str(shared_data(*PHOTO)))
            page.get_by_role("button", name="Analyse", exact=True).click()
            page.locator('.analyse-prompt[data-state="complete"]').wait_for()
            assert page.get_attribute(".analyse-prompt", "data-source") == "fallback"
            note = page.inner_text(".analyse-prompt-source")
            assert "No LLM wrote this prompt" in note
            assert "VIEWFINDER_OLLAMA_HOST" in note
            assert page.inner_text(".analyse-prompt").strip()  # the composed prompt
            assert page.locator(".analyse-results .analyse-cards").count() == 0  # no seed 000
            page.evaluate("window.scrollTo(0, 0)")
            screenshot(page, "analyse-dark-mobile", full_page=True)
            assert accessibility_violations(page) == []

            # A URL the server may not fetch (cloud metadata): its reason, as an alert.
            page.check("#op-embed_clip_vit_b_32-whole_image")
            page.fill("#analyse-url", "http://169.254.169.254/latest/meta-data/photo.jpg")
            page.get_by_role("button", name="Analyse", exact=True).click()
            alert = page.locator(".analyse-error")
            alert.wait_for()
            text = alert.inner_text()
            assert text.startswith("The image was not analysed: Could not download image")
            assert "169.254.169.254" in text
            assert "need an uploaded image" in page.inner_text(".analyse-results")
            assert accessibility_violations(page) == []
            # The browser itself logs the refused request; the page adds no error of its own.
            assert len(errors) == 1, errors
            assert "status of 400" in errors[0]
    finally:
        llm.failing = False
