"""The ``viewfinder`` command: analyze prints the API's JSON; models list / pull; serve."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.cli.main import app
from viewfinder.testing.server import free_port, wait_until_serving


def _env(tmp_path: Path, tiny_models: dict[str, Path]) -> dict[str, str]:
    settings = make_settings(tmp_path, tiny_models)
    env = {
        f"VIEWFINDER_{name.upper()}": str(getattr(settings, name))
        for name in (
            "data_dir",
            "clip_model",
            "dinov2_model",
            "dinov3_model",
            "caption_model",
            "person_detector_model",
            "yunet_model",
        )
    }
    env["VIEWFINDER_OFFLINE"] = "1"
    return env


def test_analyze_prints_the_same_json_as_the_api(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    image = tmp_path / "pic.png"
    Image.new("RGB", (30, 20), (5, 100, 5)).save(image)
    env = _env(tmp_path, tiny_models)
    result = CliRunner().invoke(
        app, ["analyze", str(image), "--task", "embed_dino_v2", "--task", "describe_image"], env=env
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["image_url"] == str(image)
    assert set(printed["results"]) == {"embed_dino_v2", "describe_image"}

    settings = make_settings(tmp_path, tiny_models)
    with TestClient(create_app(settings)) as client:
        api = client.post(
            "/analyze_image_upload/",
            files={"image_file": ("pic.png", image.read_bytes())},
            data={
                "tasks_json": json.dumps(
                    [
                        {"operation_id": "embed_dino_v2", "type": "embed_dino_v2"},
                        {"operation_id": "describe_image", "type": "describe_image"},
                    ]
                )
            },
        ).json()
    assert api["results"].keys() == printed["results"].keys()
    for key in api["results"]:
        assert api["results"][key]["status"] == printed["results"][key]["status"] == "success"
    assert api["results"]["describe_image"]["data"] == printed["results"]["describe_image"]["data"]
    assert api["results"]["embed_dino_v2"]["data"] == printed["results"]["embed_dino_v2"]["data"]


def test_analyze_reports_bad_input_clearly(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    env = _env(tmp_path, tiny_models)
    runner = CliRunner()
    missing = runner.invoke(
        app, ["analyze", str(tmp_path / "nope.jpg"), "-t", "embed_dino_v2"], env=env
    )
    assert missing.exit_code == 1
    assert "cannot read" in missing.stderr
    text = tmp_path / "t.jpg"
    text.write_text("not an image")
    bad = runner.invoke(app, ["analyze", str(text), "-t", "embed_dino_v2"], env=env)
    assert bad.exit_code == 1
    assert "Could not process image" in bad.stderr
    none = runner.invoke(app, ["analyze", str(text)], env=env)
    assert none.exit_code == 1
    assert "--task" in none.stderr


def test_models_list_and_offline_pull(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    env = _env(tmp_path, tiny_models)
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"], env=env)
    assert listed.exit_code == 0
    assert "clip_image" in listed.stdout
    assert "VIEWFINDER_CLIP_MODEL" in listed.stdout
    assert "available" in listed.stdout
    env["VIEWFINDER_DINOV3_MODEL"] = "facebook/dinov3-vitl16-pretrain-lvd1689m"
    pulled = runner.invoke(app, ["models", "pull", "dinov3", "clip_image"], env=env)
    assert pulled.exit_code == 1
    assert "dinov3: FAILED" in pulled.stderr
    assert "clip_image:" in pulled.stdout
    unknown = runner.invoke(app, ["models", "pull", "nonsense"], env=env)
    assert unknown.exit_code == 2


def test_serve_answers_http_with_docs(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    port = free_port()
    env = {**os.environ, **_env(tmp_path, tiny_models), "VIEWFINDER_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "viewfinder", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        stderr = proc.stderr
        wait_until_serving(f"{base}/docs", proc, 60, lambda: stderr.read() if stderr else "")
        ops = httpx.get(f"{base}/available_operations/").json()["operations"]
        assert "detect_bounding_box" in ops
        png = io.BytesIO()
        Image.new("RGB", (8, 8)).save(png, format="PNG")
        response = httpx.post(
            f"{base}/analyze_image_upload/",
            files={"image_file": ("a.png", png.getvalue())},
            data={"tasks_json": '[{"operation_id": "e", "type": "embed_dino_v2"}]'},
            timeout=60,
        )
        assert response.status_code == 200
        assert response.json()["results"]["e"]["status"] == "success"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
