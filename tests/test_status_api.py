"""Status and readiness through HTTP, on SQLite and PostgreSQL: a worker whose embedding model is
genuinely unavailable (its path does not exist) pauses, and the API of another ``Services`` (as
another process would: it shares only the database) shows why in ``/api/v1/status`` and answers
503 on ``/ready``; once the model is there the worker resumes and both clear. Failed tasks show
their error; an unreachable database makes ``/ready`` 503."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.library.library import Library
from viewfinder.runtime import pool as pool_module
from viewfinder.storage.blobs import original_key


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, format="PNG")
    return out.getvalue()


def wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kind(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(k for k in status["processing"] if k["kind"] == name)


@pytest.fixture
def api(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> Iterator[tuple[TestClient, Services]]:
    """The API process: no worker threads of its own, a working CLIP."""
    settings = make_settings(
        tmp_path / "api",
        tiny_models,
        database_url=database_url,
        worker_threads=0,
        faces_enabled=False,
        task_max_attempts=1,
    )
    services = Services.build(settings, with_library=True)
    try:
        with TestClient(create_app(settings, services)) as client:
            yield client, services
    finally:
        services.close()


def start_worker(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str, clip: Path, data_dir: Path
) -> Services:
    """A worker 'process' on the same database and files whose CLIP setting is ``clip``."""
    settings = make_settings(
        tmp_path / "worker",
        tiny_models,
        database_url=database_url,
        data_dir=data_dir,
        clip_model=str(clip),
        faces_enabled=False,
        task_max_attempts=1,
        worker_kinds=["embed"],
    )
    services = Services.build(settings, with_library=True)
    lib = services.require_library()
    lib.worker.pause_retry_s = 0.2  # retry quickly instead of every 10 s
    services.start()
    return services


def test_a_paused_kind_shows_its_reason_and_ready_answers_503_until_it_resumes(
    api: tuple[TestClient, Services],
    tmp_path: Path,
    tiny_models: dict[str, Path],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, api_services = api
    monkeypatch.setattr(pool_module, "FAILURE_MEMORY_S", 0.1)  # retry the load at once
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "reasons": [], "detail": None}
    uploaded = client.post("/api/v1/assets", files=[("files", ("a.png", png((200, 10, 10))))])
    assert uploaded.status_code == 201, uploaded.text
    waiting = kind(client.get("/api/v1/status").json(), "embed")  # no worker anywhere yet
    assert waiting["counts"]["pending"] == 1
    assert waiting["paused"] is False
    assert waiting["waiting_since"] is not None

    missing = tmp_path / "clip-not-here"
    data_dir = api_services.settings.data_dir
    worker = start_worker(tmp_path, tiny_models, database_url, missing, data_dir)
    try:
        status = wait_for(
            lambda: (s := client.get("/api/v1/status").json()) and kind(s, "embed")["paused"] and s
        )
        embed = kind(status, "embed")
        assert embed["configured"] is True
        assert embed["counts"] == {"pending": 1, "running": 0, "done": 0, "failed": 0}
        reason = embed["paused_reason"]
        assert reason.startswith("model not available: ")
        assert "VIEWFINDER_CLIP_MODEL" in reason
        assert str(missing) in reason
        assert embed["paused_since"] is not None
        assert [p["reason"] for p in embed["pauses"]] == [reason]
        assert status["ready"] is False
        assert status["indexed"] == 0
        # The API's own CLIP is fine: the pause came through the database, not its pool.
        clip = next(m for m in status["models"] if m["name"] == "clip_image")
        assert clip["available"] is True
        assert clip["setting"] == "VIEWFINDER_CLIP_MODEL"

        not_ready = client.get("/ready")
        assert not_ready.status_code == 503
        body = not_ready.json()
        assert body["ready"] is False
        assert len(body["reasons"]) == 1
        assert body["reasons"][0].startswith("embed processing paused since ")
        assert str(missing) in body["reasons"][0]
        assert body["detail"] == body["reasons"][0]
        assert client.get("/health").json() == {"status": "ok"}  # unchanged: the process is up

        missing.symlink_to(tiny_models["clip"], target_is_directory=True)  # the model arrives
        status = wait_for(
            lambda: (
                (s := client.get("/api/v1/status").json())
                and kind(s, "embed")["counts"]["done"] == 1
                and not kind(s, "embed")["paused"]
                and s
            )
        )
        embed = kind(status, "embed")
        assert embed["paused_reason"] is None
        assert embed["waiting_since"] is None
        assert embed["pauses"] == []
        assert status["ready"] is True
        if api_services.require_library().index.shared:  # pgvector: the worker's vector counts
            assert status["indexed"] == 1
        assert client.get("/ready").status_code == 200
    finally:
        worker.close()


def test_failures_are_listed_with_their_error(
    api: tuple[TestClient, Services],
    tmp_path: Path,
    tiny_models: dict[str, Path],
    database_url: str,
) -> None:
    client, api_services = api
    lib: Library = api_services.require_library()
    good = client.post("/api/v1/assets", files=[("files", ("g.png", png((0, 200, 0))))]).json()
    bad = client.post("/api/v1/assets", files=[("files", ("b.png", png((0, 0, 200))))]).json()
    bad_asset = bad[0]["asset"]
    lib.blobs.delete(original_key(bad_asset["sha256"]))  # its original is gone before embedding

    data_dir = api_services.settings.data_dir
    worker = start_worker(tmp_path, tiny_models, database_url, tiny_models["clip"], data_dir)
    try:
        status = wait_for(
            lambda: (
                (s := client.get("/api/v1/status").json())
                and kind(s, "embed")["counts"]["done"] + kind(s, "embed")["counts"]["failed"] == 2
                and s
            )
        )
    finally:
        worker.close()
    embed = kind(status, "embed")
    assert embed["counts"] == {"pending": 0, "running": 0, "done": 1, "failed": 1}
    assert embed["paused"] is False
    [failure] = embed["failures"]
    assert failure["asset_id"] == bad_asset["id"] != good[0]["asset"]["id"]
    assert failure["error"].startswith("cannot read image")
    assert failure["attempts"] == 1
    assert status["ready"] is True
    assert client.get("/ready").status_code == 200


def test_jobs_show_in_status_with_their_progress(api: tuple[TestClient, Services]) -> None:
    client, _ = api
    job = client.post("/api/v1/reindex", json={"reembed": False}).json()
    status = client.get("/api/v1/status").json()
    assert [j["id"] for j in status["recent_jobs"]] == [job["id"]]
    assert status["recent_jobs"][0]["state"] == "pending"  # no job runner in this process
    assert {"done", "failed", "total"} <= set(status["recent_jobs"][0])
    assert status["running_jobs"] == []


def test_ready_is_503_when_the_database_is_unreachable(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    db_dir = tmp_path / "db"
    settings = make_settings(
        tmp_path,
        tiny_models,
        database_url=f"sqlite:///{db_dir / 'viewfinder.db'}",
        worker_threads=0,
        faces_enabled=False,
    )
    services = Services.build(settings, with_library=True)
    try:
        with TestClient(create_app(settings, services)) as client:
            assert client.get("/ready").status_code == 200
            services.require_library().engine.dispose()  # no open connection survives
            db_dir.rename(tmp_path / "db-gone")  # SQLite cannot open a file in no folder
            try:
                response = client.get("/ready")
                assert client.get("/health").status_code == 200
            finally:
                (tmp_path / "db-gone").rename(db_dir)
            assert response.status_code == 503
            reasons = response.json()["reasons"]
            assert len(reasons) == 1
            assert reasons[0].startswith("database unreachable: ")
            assert client.get("/ready").status_code == 200  # back
    finally:
        services.close()
