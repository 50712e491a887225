"""Seed 003's image analyzer over HTTP: CLIP zero-shot scores (plumbing on the tiny CLIP, exact
ranking with fake embedders of known geometry), the prompt written by an LLM that speaks
Ollama's API (a real HTTP server on 127.0.0.1, recording what it is sent), the deterministic
fallback when that LLM fails in any way, and the server-sent event stream."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from PIL import Image

from tests.conftest import make_settings
from viewfinder.analyzer.labels import LabelConfigError, load_label_config
from viewfinder.analyzer.prompt import clean_llm_text, ollama_base_url
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.errors import ModelUnavailableError
from viewfinder.settings import Settings

TOKENS = ["A misty ", "pine forest ", "at dawn, ", "soft golden light"]
MODEL = "fake-mistral:7b"
CATEGORIES = ["style", "mood", "composition", "color_palette", "subjects"]


# --- a fake Ollama ------------------------------------------------------------------------------


class FakeOllama:
    """``POST /api/generate`` as Ollama answers it, or broken in a chosen way (``mode``)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.gate = threading.Event()  # "gated" mode waits on it after the first token
        self.gate_opened_in_time = False
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, **body})
                fake.answer(self, body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests.clear()
        self.gate.clear()
        self.gate_opened_in_time = False

    def answer(self, out: http.server.BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if self.mode == "error":
            self._send(out, 500, b'{"error": "model runner crashed"}')
        elif self.mode == "garbage":
            self._send(out, 200, b"<html>I am not Ollama</html>")
        elif self.mode == "redirect":
            out.send_response(307)
            out.send_header("Location", f"{self.url}/elsewhere")
            out.end_headers()
        elif not body["stream"]:
            done = {"model": body["model"], "response": "".join(TOKENS), "done": True}
            data = json.dumps(done).encode()
            # "break": the connection drops halfway through the announced body
            self._send(out, 200, data, len(data) // 2 if self.mode == "break" else len(data))
        else:
            self._stream(out, body)

    def _stream(self, out: http.server.BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        out.send_response(200)
        out.send_header("Content-Type", "application/x-ndjson")
        out.end_headers()
        tokens = TOKENS[:2] if self.mode == "break" else TOKENS
        for index, token in enumerate(tokens):
            line = {"model": body["model"], "response": token, "done": False}
            out.wfile.write(json.dumps(line).encode() + b"\n")
            out.wfile.flush()
            if index == 0 and self.mode == "gated":
                self.gate_opened_in_time = self.gate.wait(10)
        if self.mode != "break":  # "break" closes the connection without the final line
            out.wfile.write(json.dumps({"response": "", "done": True}).encode() + b"\n")

    @staticmethod
    def _send(
        out: http.server.BaseHTTPRequestHandler, status: int, data: bytes, sent: int | None = None
    ) -> None:
        out.send_response(status)
        out.send_header("Content-Type", "application/json")
        out.send_header("Content-Length", str(len(data)))
        out.end_headers()
        out.wfile.write(data[:sent])


@pytest.fixture(scope="module")
def fake_ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def ollama(fake_ollama: FakeOllama) -> FakeOllama:
    fake_ollama.reset()
    return fake_ollama


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- the app ------------------------------------------------------------------------------------


def _settings(tmp_path: Path, tiny_models: dict[str, Path], **overrides: Any) -> Settings:
    values: dict[str, Any] = {"ollama_model": MODEL, "ollama_read_timeout_s": 20.0}
    values.update(overrides)
    return make_settings(tmp_path, tiny_models, **values)


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_models: dict[str, Path],
    fake_ollama: FakeOllama,
) -> Iterator[TestClient]:
    """The app on the tiny CLIP, its LLM the fake Ollama."""
    settings = _settings(
        tmp_path_factory.mktemp("analyzer"), tiny_models, ollama_host=fake_ollama.url
    )
    services = Services.build(settings)
    with TestClient(create_app(settings, services)) as test_client:
        yield test_client
    services.close()


def _png(colour: tuple[int, int, int] = (30, 120, 60), size: tuple[int, int] = (48, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _form(user_prompt: str | None = None, deep: bool | None = None) -> dict[str, str]:
    data = {}
    if user_prompt is not None:
        data["user_prompt"] = user_prompt
    if deep is not None:
        data["deep_thinking"] = "true" if deep else "false"
    return data


def _analyze(client: TestClient, user_prompt: str | None = None, deep: bool | None = None) -> Any:
    response = client.post(
        "/api/images/analyze",
        files={"image": ("photo.png", _png(), "image/png")},
        data=_form(user_prompt, deep),
    )
    assert response.status_code == 200, response.text
    return response.json()


def _parse_events(body: str) -> list[dict[str, Any]]:
    """Each event is exactly ``data: {json}`` followed by a blank line."""
    assert body.endswith("\n\n")
    events = []
    for block in body[:-2].split("\n\n"):
        assert block.startswith("data: ")
        assert "\n" not in block
        events.append(json.loads(block[len("data: ") :]))
    return events


def _stream(
    client: TestClient, user_prompt: str | None = None, deep: bool | None = None
) -> list[dict[str, Any]]:
    response = client.post(
        "/api/images/analyze-stream",
        files={"image": ("photo.png", _png(), "image/png")},
        data=_form(user_prompt, deep),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return _parse_events(response.text)


def _expected_fallback(analysis: dict[str, list[dict[str, Any]]], user_prompt: str) -> str:
    """The default label file's phrasing of each category's best label, after the user's words."""
    best = {category: analysis[category][0]["value"] for category in CATEGORIES}
    return ", ".join(
        [
            user_prompt,
            f"{best['style']} style",
            f"{best['mood']} mood",
            f"{best['composition']} composition",
            f"{best['color_palette']} color palette",
            f"featuring {best['subjects']}",
        ]
    )


# --- zero-shot on the tiny CLIP -------------------------------------------------------------------


def test_analyze_response_has_the_seed_shape(client: TestClient, ollama: FakeOllama) -> None:
    body = _analyze(client, "  a misty forest  ")
    assert set(body) == {"success", "generatedPrompt", "analysis", "userInput", "promptSource"}
    assert body["success"] is True
    assert body["userInput"] == "a misty forest"
    assert body["promptSource"] == "llm"
    assert body["generatedPrompt"] == "".join(TOKENS)
    defaults = load_label_config()
    assert list(body["analysis"]) == CATEGORIES
    for category, top in body["analysis"].items():
        assert len(top) == 3
        assert all(set(entry) == {"value", "score"} for entry in top)
        assert {entry["value"] for entry in top} <= set(defaults.categories[category].labels)
        scores = [entry["score"] for entry in top]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert sum(scores) <= 1.0 + 1e-6


def test_no_user_prompt_is_null(client: TestClient, ollama: FakeOllama) -> None:
    assert _analyze(client)["userInput"] is None
    assert _analyze(client, "   ")["userInput"] is None
    assert "no request of their own" in ollama.requests[-1]["prompt"]


# --- what reaches the LLM -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deep", "temperature", "num_predict"), [(None, 0.5, 150), (False, 0.5, 150), (True, 0.7, 300)]
)
def test_llm_request_follows_deep_thinking(
    client: TestClient, ollama: FakeOllama, deep: bool | None, temperature: float, num_predict: int
) -> None:
    body = _analyze(client, "a misty forest", deep)
    events = _stream(client, "a misty forest", deep)
    assert len(ollama.requests) == 2
    for sent, stream in zip(ollama.requests, (False, True), strict=True):
        assert set(sent) == {"path", "model", "prompt", "stream", "options"}
        assert sent["path"] == "/api/generate"
        assert sent["model"] == MODEL
        assert sent["stream"] is stream
        assert sent["options"] == {"temperature": temperature, "num_predict": num_predict}
        assert '"a misty forest"' in sent["prompt"]
    # every category's best labels, with their scores, are what the LLM is told
    for analysis, sent in (
        (body["analysis"], ollama.requests[0]),
        (events[1]["analysis"], ollama.requests[1]),
    ):
        for category, top in analysis.items():
            line = f"- {category.replace('_', ' ')}: " + ", ".join(
                f"{e['value']} ({e['score']:.2f})" for e in top
            )
            assert line in sent["prompt"].splitlines()


# --- the event stream ---------------------------------------------------------------------------


def test_stream_events_in_order_with_tokens(client: TestClient, ollama: FakeOllama) -> None:
    events = _stream(client, "a misty forest", deep=True)
    statuses = [e["status"] for e in events]
    assert statuses == ["analyzing", "analyzed", "generating"] + ["token"] * len(TOKENS) + [
        "complete"
    ]
    assert set(events[0]) == {"status", "message"}
    assert set(events[2]) == {"status", "message"}
    assert list(events[1]["analysis"]) == CATEGORIES
    assert [e["token"] for e in events[3:-1]] == TOKENS
    assert events[-1] == {
        "status": "complete",
        "generatedPrompt": "".join(TOKENS),
        "promptSource": "llm",
    }


def test_tokens_are_forwarded_as_they_arrive(client: TestClient, ollama: FakeOllama) -> None:
    """The fake LLM holds its second token back until the client has seen the first one: a
    server that buffered the stream would deliver nothing until the fake gave up waiting."""
    ollama.reset("gated")
    statuses = []
    with client.stream(
        "POST", "/api/images/analyze-stream", files={"image": ("p.png", _png(), "image/png")}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[len("data: ") :])
                statuses.append(event["status"])
                if event["status"] == "token":
                    ollama.gate.set()
    assert ollama.gate_opened_in_time
    assert statuses[-1] == "complete"


# --- the fallback -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["error", "garbage", "redirect", "break"])
def test_broken_llm_falls_back_to_a_composed_prompt(
    client: TestClient, ollama: FakeOllama, mode: str
) -> None:
    ollama.reset(mode)
    body = _analyze(client, "a misty forest.")
    assert body["promptSource"] == "fallback"
    assert body["generatedPrompt"] == _expected_fallback(body["analysis"], "A misty forest")
    events = _stream(client, "a misty forest.")
    tokens = [e["token"] for e in events if e["status"] == "token"]
    # a stream that breaks off midway has already sent its first tokens; the rest sent none
    assert tokens == (TOKENS[:2] if mode == "break" else [])
    assert [e["status"] for e in events[-1:]] == ["complete"]
    assert events[-1]["promptSource"] == "fallback"
    assert events[-1]["generatedPrompt"] == _expected_fallback(
        events[1]["analysis"], "A misty forest"
    )
    assert [r["path"] for r in ollama.requests] == ["/api/generate"] * 2  # redirect not followed


def test_unreachable_llm_falls_back(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    settings = _settings(tmp_path, tiny_models, ollama_host=_closed_port_url())
    services = Services.build(settings)
    with TestClient(create_app(settings, services)) as client:
        body = _analyze(client)
        events = _stream(client, deep=True)
    services.close()
    assert body["promptSource"] == "fallback"
    best_style = body["analysis"]["style"][0]["value"]
    assert body["generatedPrompt"].startswith(f"{best_style[:1].upper()}{best_style[1:]} style, ")
    assert [e["status"] for e in events] == ["analyzing", "analyzed", "generating", "complete"]
    assert events[-1]["promptSource"] == "fallback"


# --- refused uploads ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/images/analyze", "/api/images/analyze-stream"])
def test_uploads_that_are_not_images_are_400(client: TestClient, path: str) -> None:
    text = client.post(path, files={"image": ("notes.txt", b"hello there", "text/plain")})
    assert text.status_code == 400
    assert text.headers["content-type"] == "application/json"
    assert "must be an image" in text.json()["detail"]
    assert "text/plain" in text.json()["detail"]
    broken = client.post(path, files={"image": ("x.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")})
    assert broken.status_code == 400
    assert "Could not process image" in broken.json()["detail"]


def test_declared_type_does_not_matter_when_the_bytes_decode(
    client: TestClient, ollama: FakeOllama
) -> None:
    response = client.post(
        "/api/images/analyze", files={"image": ("blob", _png(), "application/octet-stream")}
    )
    assert response.status_code == 200
    assert response.json()["success"] is True


@pytest.mark.parametrize("path", ["/api/images/analyze", "/api/images/analyze-stream"])
def test_uploads_over_20_mb_are_413(client: TestClient, ollama: FakeOllama, path: str) -> None:
    limit = 20 * 1024 * 1024
    # exactly the limit is read (and refused for not being an image); one byte more is not read
    at_limit = client.post(path, files={"image": ("big.png", b"\0" * limit, "image/png")})
    assert at_limit.status_code == 400
    for size in (limit + 1, limit + 4 * 1024 * 1024):
        response = client.post(path, files={"image": ("big.png", b"\0" * size, "image/png")})
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]
    assert ollama.requests == []


# --- exact ranking with fake embedders of known geometry ------------------------------------------

# cosines of each label's sentence with the image; with CLIP's scale of 100 these differences
# give clearly unequal softmax scores (a scale of 1 would give nearly equal ones)
GEOMETRY = {
    "shade": {"crimson": 0.10, "scarlet": 0.30, "navy": 0.29, "olive": 0.25},
    "shape": {"round": 0.20, "square": 0.21},
}
TEMPLATES = {"shade": "something {label}-coloured", "shape": "a {label} object"}


def _label_vector(cosine: float) -> NDArray[np.float32]:
    return np.asarray([cosine, np.sqrt(1 - cosine**2), 0.0], dtype=np.float32)


class FixedImageEmbedder:
    """Every image embeds as the first axis."""

    fail: ClassVar[bool] = False  # raise (as a bug would) for every image but the warm-up's

    def preprocess(self, item: Image.Image) -> Image.Image:
        if item.size != (2, 2) and FixedImageEmbedder.fail:
            raise RuntimeError("a bug in preprocessing")
        return item

    def forward(self, batch: Sequence[Image.Image]) -> list[NDArray[np.float32]]:
        return [np.asarray([1.0, 0.0, 0.0], dtype=np.float32) for _ in batch]

    def postprocess(self, raw: NDArray[np.float32], prepared: Image.Image) -> NDArray[np.float32]:
        return raw

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (2, 2))


class GeometryTextEmbedder:
    """A label sentence embeds at its label's chosen cosine to the first axis; records what it
    embedded."""

    embedded: ClassVar[list[str]] = []
    vectors: ClassVar[dict[str, NDArray[np.float32]]] = {
        TEMPLATES[category].format(label=label): _label_vector(cosine)
        for category, labels in GEOMETRY.items()
        for label, cosine in labels.items()
    }

    def preprocess(self, item: str) -> str:
        return item

    def forward(self, batch: Sequence[str]) -> list[NDArray[np.float32]]:
        GeometryTextEmbedder.embedded.extend(batch)
        return [self.vectors.get(text, _label_vector(0.0)) for text in batch]

    def postprocess(self, raw: NDArray[np.float32], prepared: str) -> NDArray[np.float32]:
        return raw

    def warmup_item(self) -> str:
        return "warm-up"


@pytest.fixture
def geometry_services(
    tmp_path: Path, tiny_models: dict[str, Path], fake_ollama: FakeOllama
) -> Iterator[Services]:
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            {
                "categories": {
                    category: {"template": TEMPLATES[category], "labels": list(GEOMETRY[category])}
                    for category in GEOMETRY
                }
            }
        )
    )
    settings = _settings(tmp_path, tiny_models, ollama_host=fake_ollama.url, analyzer_labels=labels)
    services = Services.build(settings)
    services.pool.register("clip_image", FixedImageEmbedder)
    services.pool.register("clip_text", GeometryTextEmbedder)
    GeometryTextEmbedder.embedded.clear()
    FixedImageEmbedder.fail = False
    yield services
    services.close()


def _softmax_by_hand(cosines: dict[str, float]) -> list[tuple[str, float]]:
    best = max(cosines.values())
    weights = {label: float(np.exp(100 * (c - best))) for label, c in cosines.items()}
    total = sum(weights.values())
    return sorted(((label, w / total) for label, w in weights.items()), key=lambda t: -t[1])


def test_custom_labels_rank_exactly_by_scaled_softmax(
    geometry_services: Services, ollama: FakeOllama
) -> None:
    with TestClient(create_app(geometry_services.settings, geometry_services)) as client:
        analysis = _analyze(client)["analysis"]
    assert list(analysis) == ["shade", "shape"]
    for category, cosines in GEOMETRY.items():
        expected = _softmax_by_hand(cosines)[:3]
        assert [e["value"] for e in analysis[category]] == [label for label, _ in expected]
        assert [e["score"] for e in analysis[category]] == pytest.approx(
            [score for _, score in expected], abs=1e-6
        )
    # scarlet (0.30) against navy (0.29): e^1 : 1, so the top score is e / (1 + e + ...)
    assert analysis["shade"][0]["score"] == pytest.approx(0.7275, abs=1e-3)


def test_labels_are_embedded_once_per_text_model_load(
    geometry_services: Services, ollama: FakeOllama
) -> None:
    sentences = {
        TEMPLATES[category].format(label=label)
        for category in GEOMETRY
        for label in GEOMETRY[category]
    }
    health = "/api/images/health"
    with TestClient(create_app(geometry_services.settings, geometry_services)) as client:
        assert client.get(health).json() == {
            "status": "ok",
            "service": "image-analyzer",
            "analyzer_initialized": False,
        }
        assert geometry_services.pool.loaded() == []  # health loads nothing
        _analyze(client)
        _stream(client)
        assert client.get(health).json()["analyzer_initialized"] is True
        labels_embedded = [t for t in GeometryTextEmbedder.embedded if t != "warm-up"]
        assert sorted(labels_embedded) == sorted(sentences)  # once, for two requests
        geometry_services.pool.unload("clip_text")
        assert client.get(health).json()["analyzer_initialized"] is False
        _analyze(client)
        assert client.get(health).json()["analyzer_initialized"] is True
    relabelled = [t for t in GeometryTextEmbedder.embedded if t != "warm-up"]
    assert sorted(relabelled) == sorted(list(sentences) * 2)


def test_failure_after_the_stream_started_is_an_error_event(
    geometry_services: Services, ollama: FakeOllama
) -> None:
    FixedImageEmbedder.fail = True
    with TestClient(create_app(geometry_services.settings, geometry_services)) as client:
        events = _stream(client)
    assert [e["status"] for e in events] == ["analyzing", "error"]
    assert events[1]["message"] == "Image analysis failed; the server log has details."
    assert ollama.requests == []


def test_unavailable_clip_is_503_or_an_error_event(
    geometry_services: Services, ollama: FakeOllama
) -> None:
    def no_weights() -> FixedImageEmbedder:
        raise ModelUnavailableError("no CLIP weights in this test")

    geometry_services.pool.register("clip_image", no_weights)
    with TestClient(create_app(geometry_services.settings, geometry_services)) as client:
        response = client.post(
            "/api/images/analyze", files={"image": ("p.png", _png(), "image/png")}
        )
        events = _stream(client)
        health = client.get("/api/images/health")
    assert response.status_code == 503
    assert "no CLIP weights" in response.json()["detail"]
    assert [e["status"] for e in events] == ["analyzing", "error"]
    assert "no CLIP weights" in events[1]["message"]
    assert health.status_code == 200
    assert health.json()["analyzer_initialized"] is False


# --- the label file -----------------------------------------------------------------------------


def test_shipped_defaults_are_the_seed_categories() -> None:
    config = load_label_config()
    assert list(config.categories) == CATEGORIES
    for spec in config.categories.values():
        assert 8 <= len(spec.labels) <= 15
        assert all("{label}" not in p for p in spec.prompts())


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "Invalid JSON"),
        ('{"categories": {}}', "at least 1 item"),
        ('{"categories": {"mood": {"template": "a mood", "labels": ["a", "b"]}}}', "{label}"),
        ('{"categories": {"mood": {"template": "{label} {x}", "labels": ["a", "b"]}}}', "only"),
        ('{"categories": {"mood": {"template": "{label}", "labels": ["calm"]}}}', "at least 2"),
        (
            '{"categories": {"mood": {"template": "{label}", "labels": ["a", " A "]}}}',
            "more than once",
        ),
        ('{"categories": {"mood": {"template": "{label}", "lables": ["a", "b"]}}}', "lables"),
        ('{"categories": {"Mood!": {"template": "{label}", "labels": ["a", "b"]}}}', "pattern"),
    ],
)
def test_a_bad_label_file_names_itself_and_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "my-labels.json"
    path.write_text(content)
    with pytest.raises(LabelConfigError, match=r"my-labels\.json") as raised:
        load_label_config(path)
    assert problem in str(raised.value)


def test_a_bad_label_file_stops_start_up(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    missing = tmp_path / "absent-labels.json"
    settings = _settings(tmp_path, tiny_models, analyzer_labels=missing)
    services = Services.build(settings)
    app = create_app(settings, services)
    with pytest.raises(LabelConfigError, match=r"absent-labels\.json"), TestClient(app):
        pass
    services.close()


# --- configuration ------------------------------------------------------------------------------


def test_ollama_settings_accept_the_seed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://gpu-box:11434")
    monkeypatch.setenv("OLLAMA_MODEL", "llama3:8b")
    assert (Settings().ollama_host, Settings().ollama_model) == (
        "http://gpu-box:11434",
        "llama3:8b",
    )
    monkeypatch.setenv("VIEWFINDER_OLLAMA_HOST", "http://other:1")
    assert Settings().ollama_host == "http://other:1"
    monkeypatch.delenv("OLLAMA_HOST")
    monkeypatch.delenv("OLLAMA_MODEL")
    monkeypatch.delenv("VIEWFINDER_OLLAMA_HOST")
    assert (Settings().ollama_host, Settings().ollama_model) == (
        "http://localhost:11434",
        "mistral:latest",
    )


def test_ollama_host_is_read_as_ollama_reads_it() -> None:
    assert ollama_base_url("0.0.0.0:11434") == "http://0.0.0.0:11434"
    assert ollama_base_url("ollama") == "http://ollama:11434"
    assert ollama_base_url("https://llm.example.org/ollama/") == "https://llm.example.org/ollama"
    with pytest.raises(ValueError, match="OLLAMA_HOST"):
        ollama_base_url("ftp://llm.example.org")


def test_llm_answers_lose_labels_and_wrapping_quotes() -> None:
    assert clean_llm_text('  "A cat on a mat"\n') == "A cat on a mat"
    assert clean_llm_text("Prompt: A cat on a mat") == "A cat on a mat"
    assert clean_llm_text("\u201cA cat\u201d") == "A cat"
    assert clean_llm_text('"A cat" and "a dog"') == '"A cat" and "a dog"'
