"""Collections, classifier training (bake-off, promotion, pruning, seed import) and the
caption-folder command, through HTTP and the CLI."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.cli.main import app as cli
from viewfinder.settings import Settings
from viewfinder.testing.server import free_port


def tinted(warm: bool, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = np.array([200, 40, 30] if warm else [30, 60, 210], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def settings(tmp_path: Path, tiny_models: dict[str, Path]) -> Settings:
    return make_settings(tmp_path, tiny_models)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def wait_indexed(client: TestClient, n: int) -> None:
    deadline = time.monotonic() + 60
    while client.get("/api/v1/jobs/processing").json()["indexed"] < n:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def populate(client: TestClient, n_each: int = 30) -> tuple[list[int], list[int]]:
    warm, cool = [], []
    for i in range(n_each):
        for is_warm, bucket in ((True, warm), (False, cool)):
            response = client.post(
                "/api/v1/assets", files={"files": (f"{i}.png", tinted(is_warm, 2 * i + is_warm))}
            )
            bucket.append(response.json()[0]["asset"]["id"])
    wait_indexed(client, 2 * n_each)
    return warm, cool


def test_collection_crud_and_errors(client: TestClient) -> None:
    ids = [
        r["asset"]["id"]
        for r in client.post(
            "/api/v1/assets", files=[("files", (f"{i}.png", tinted(True, i))) for i in range(3)]
        ).json()
    ]
    made = client.post("/api/v1/collections", json={"name": "sunsets"})
    assert made.status_code == 201
    cid = made.json()["id"]
    assert made.json()["size"] == 0
    assert client.post("/api/v1/collections", json={"name": "sunsets"}).status_code == 409
    assert client.post("/api/v1/collections", json={}).status_code == 422
    assert client.get("/api/v1/collections/999").status_code == 404

    added = client.post(f"/api/v1/collections/{cid}/assets", json={"asset_ids": ids[:2]})
    assert added.json() == {"added": 2, "size": 2}
    again = client.post(f"/api/v1/collections/{cid}/assets", json={"asset_ids": ids})
    assert again.json() == {"added": 1, "size": 3}
    unknown = client.post(f"/api/v1/collections/{cid}/assets", json={"asset_ids": [424242]})
    assert unknown.status_code == 404
    members = client.get(f"/api/v1/collections/{cid}/assets").json()
    assert [m["id"] for m in members] == sorted(ids)
    removed = client.post(f"/api/v1/collections/{cid}/assets/remove", json={"asset_ids": [ids[0]]})
    assert removed.json() == {"removed": 1, "size": 2}
    assert client.delete(f"/api/v1/collections/{cid}/assets/{ids[0]}").status_code == 404
    assert client.delete(f"/api/v1/collections/{cid}/assets/{ids[1]}").status_code == 204
    listed = client.get("/api/v1/collections").json()
    assert [(c["name"], c["size"]) for c in listed] == [("sunsets", 1)]
    assert client.delete(f"/api/v1/collections/{cid}").status_code == 204
    assert client.get(f"/api/v1/collections/{cid}").status_code == 404


def test_trained_classifier_reaches_precision_and_is_used_by_classify(
    client: TestClient, settings: Settings
) -> None:
    warm, _ = populate(client)
    cid = client.post("/api/v1/collections", json={"name": "warm"}).json()["id"]
    client.post(f"/api/v1/collections/{cid}/assets", json={"asset_ids": warm})
    report = client.post("/api/v1/classifiers/train", json={"queue": False}).json()
    (entry,) = report["collections"]
    assert entry["positives"] == 30
    assert entry["negatives"] == 30
    assert entry["test_size"] == 12
    assert entry["precision"] >= 0.95
    assert (
        client.get("/api/v1/classifiers/report").json()["collections"][0]["precision"]
        == entry["precision"]
    )
    listed = client.get(f"/api/v1/collections/{cid}").json()
    assert listed["classifier"]["version"] == entry["chosen_version"]

    for is_warm in (True, False):
        response = client.post(
            "/analyze_image_upload/",
            files={"image_file": ("q.png", tinted(is_warm, 999))},
            data={
                "tasks_json": json.dumps(
                    [{"operation_id": "c", "type": "classify", "params": {"collection_id": cid}}]
                )
            },
        )
        assert response.json()["results"]["c"]["data"]["is_in_collection"] is is_warm


def test_bake_off_keeps_at_most_ten_versions_and_a_job_runs_it(
    client: TestClient, settings: Settings
) -> None:
    warm, _ = populate(client, n_each=10)
    cid = client.post("/api/v1/collections", json={"name": "warm"}).json()["id"]
    client.post(f"/api/v1/collections/{cid}/assets", json={"asset_ids": warm})
    for _ in range(11):
        client.post("/api/v1/classifiers/train", json={"queue": False, "collection_ids": [cid]})
    job = client.post("/api/v1/classifiers/train", json={"collection_ids": [cid]})
    assert job.status_code == 202
    deadline = time.monotonic() + 60
    while (state := client.get(f"/api/v1/jobs/{job.json()['id']}").json())["state"] != "done":
        assert state["state"] != "failed", state
        assert time.monotonic() < deadline
        time.sleep(0.05)
    versions = sorted(settings.classifier_dir.glob(f"collection_{cid}_classifier_*.json"))
    assert len(versions) == 10
    best = json.loads((settings.classifier_dir / "best_models.json").read_text())[str(cid)]
    assert (settings.classifier_dir / best).is_file()
    missing = client.post(
        "/api/v1/classifiers/train", json={"queue": False, "collection_ids": [999]}
    )
    assert missing.status_code == 400


def _seed_export(root: Path, dim: int = 8) -> None:
    rng = np.random.default_rng(3)
    # the seed's endpoint wraps JSON in HTML sometimes
    (root / "collections.json").write_text(
        '<html><pre>[{"id": 41, "name": "cats"}, {"bad": 1}]</pre></html>'
    )
    items: list[dict[str, Any]] = []
    for i in range(50):
        label = i % 2
        vector = rng.normal(0, 0.3, dim) + (3.0 if label else -3.0) * np.eye(dim)[0]
        items.append({"embedding": vector.tolist(), "label": bool(label)})
    (root / "collections" / "41").mkdir(parents=True)
    (root / "collections" / "41" / "training_data.json").write_text(json.dumps(items))


def test_seed_training_data_imports_from_a_folder_and_a_url(
    settings: Settings, tmp_path: Path, http_server: str, web_root: Path
) -> None:
    folder = tmp_path / "exports" / "seed000"
    folder.mkdir(parents=True)
    _seed_export(folder)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _seed_export(outside)
    settings = settings.model_copy(update={"import_roots": [tmp_path / "exports"]})
    with TestClient(create_app(settings)) as client:
        _train_from_folder_and_url(client, settings, folder, outside, http_server, web_root)


def _train_from_folder_and_url(
    client: TestClient,
    settings: Settings,
    folder: Path,
    outside: Path,
    http_server: str,
    web_root: Path,
) -> None:
    # A server folder outside VIEWFINDER_IMPORT_ROOTS is never read, even through "..".
    for path in (str(outside), f"{folder}/../../elsewhere"):
        refused = client.post("/api/v1/classifiers/train", json={"queue": False, "source": path})
        assert refused.status_code == 400
        assert "VIEWFINDER_IMPORT_ROOTS" in refused.json()["detail"]
    assert not (settings.classifier_dir / "best_models.json").exists()

    report = client.post(
        "/api/v1/classifiers/train", json={"queue": False, "source": str(folder)}
    ).json()
    (entry,) = report["collections"]
    assert (entry["collection_id"], entry["name"], entry["positives"]) == (41, "cats", 25)
    assert entry["precision"] >= 0.95
    stored = json.loads((settings.classifier_dir / "best_models.json").read_text())
    assert "41" in stored

    (web_root / "seed").mkdir()
    _seed_export(web_root / "seed")
    by_url = client.post(
        "/api/v1/classifiers/train", json={"queue": False, "source": f"{http_server}/seed"}
    )
    assert by_url.status_code == 200, by_url.text
    assert by_url.json()["collections"][0]["versions_kept"] == 2
    bad = client.post(
        "/api/v1/classifiers/train", json={"queue": False, "source": str(folder / "nope")}
    )
    assert bad.status_code == 400
    assert "not a folder" in bad.json()["detail"]


def test_train_classifiers_cli_prints_the_report(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    _seed_export(folder)
    env = {"VIEWFINDER_DATA_DIR": str(settings.data_dir), "VIEWFINDER_OFFLINE": "1"}
    result = CliRunner().invoke(cli, ["train-classifiers", "--source", str(folder)], env=env)
    assert result.exit_code == 0, result.output
    assert "cats" in result.stdout
    assert "precision" in result.stdout


# --- caption-folder ---------------------------------------------------------------------------


def _caption_env(settings: Settings) -> dict[str, str]:
    return {
        "VIEWFINDER_DATA_DIR": str(settings.data_dir),
        "VIEWFINDER_CAPTION_MODEL": settings.caption_model,
        "VIEWFINDER_OFFLINE": "1",
    }


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(tinted(True, 1))  # a PNG named .jpg: decoded by content
    (folder / "b.png").write_bytes(tinted(False, 2))
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "b.txt").write_text("existing caption\n")
    return folder


def test_caption_folder_in_process(settings: Settings, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["caption-folder", str(folder)], env=_caption_env(settings))
    assert result.exit_code == 0, result.output
    assert (folder / "a.txt").read_text().strip()
    assert (folder / "b.txt").read_text() == "existing caption\n"  # kept without --force
    assert not (folder / "broken.txt").exists()
    assert "skipped broken.jpg" in result.stderr
    forced = runner.invoke(
        cli, ["caption-folder", str(folder), "--force"], env=_caption_env(settings)
    )
    assert forced.exit_code == 0
    assert (folder / "b.txt").read_text() != "existing caption\n"


def test_caption_folder_against_a_running_server(settings: Settings, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        result = CliRunner().invoke(
            cli,
            ["caption-folder", str(folder), "--server", f"http://127.0.0.1:{port}"],
            env=_caption_env(settings),
        )
    finally:
        server.should_exit = True
        thread.join()
    assert result.exit_code == 0, result.output
    assert (folder / "a.txt").read_text().strip()
    assert "skipped broken.jpg" in result.stderr


def test_library_captions_are_stored_and_searchable(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    from viewfinder.container import Services

    settings = make_settings(tmp_path, tiny_models, caption_assets=True)
    services = Services.build(settings, with_library=True)
    with TestClient(create_app(settings, services)) as client:
        made = client.post(
            "/api/v1/assets",
            files=[("files", (f"{i}.png", tinted(i % 2 == 0, i))) for i in range(4)],
        ).json()
        ids = [m["asset"]["id"] for m in made]
        library = services.require_library()
        assert all(w.drain(60) for w in library.workers)
        captions = {i: client.get(f"/api/v1/assets/{i}").json()["caption"] for i in ids}
        assert all(isinstance(c, str) and c for c in captions.values())
        # the tiny BLIP's captions are random words: search for one of them and find its image
        target = ids[2]
        word = next(w for w in captions[target].split() if len(w) > 2 and w.isalpha())
        hits = client.post("/api/v1/search", json={"query": word, "k": 4}).json()["hits"]
        top = hits[0]
        assert top["caption_match"] == 1.0
        assert word in client.get(f"/api/v1/assets/{top['asset']['id']}").json()["caption"].split()
        assert top["score"] == pytest.approx(top["similarity"] + 0.1)
        without = [h for h in hits if h["caption_match"] == 0]
        assert all(h["score"] == pytest.approx(h["similarity"]) for h in without)
    services.close()
