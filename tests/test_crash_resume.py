"""kill -9 of the server in the middle of processing 200 uploaded images, then a restart: all 200
assets are present, each embedded and indexed exactly once, and work finished before the kill is
not redone. Real server processes, real SQLite, real files; prints the counts."""

from __future__ import annotations

import io
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import serve_env
from viewfinder.index import load_index
from viewfinder.testing.server import free_port, wait_until_serving

N_IMAGES = 200


@contextmanager
def server(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "viewfinder", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(f"{base}/health", proc, 60)
    try:
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def _image(i: int) -> bytes:
    rng = np.random.default_rng(i)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _embedding_times(db: Path) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT asset_id, created_at FROM embeddings").fetchall())


@pytest.mark.slow
def test_kill_9_during_processing_then_restart(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    quiet = serve_env(tmp_path, tiny_models, VIEWFINDER_WORKER_THREADS="0")
    with server(quiet) as (_, base):
        for start in range(0, N_IMAGES, 20):
            files = [("files", (f"{i}.png", _image(i))) for i in range(start, start + 20)]
            response = httpx.post(f"{base}/api/v1/assets", files=files, timeout=60)
            assert response.status_code == 201
        assert httpx.get(f"{base}/api/v1/assets").json()["total"] == N_IMAGES

    working = serve_env(
        tmp_path, tiny_models, VIEWFINDER_WORKER_THREADS="1", VIEWFINDER_WORKER_BATCH_SIZE="4"
    )
    with server(working) as (proc, base):
        deadline = time.monotonic() + 120
        while True:
            done = httpx.get(f"{base}/api/v1/jobs/processing").json()["counts"]["done"]
            if done >= 8:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                break
            assert time.monotonic() < deadline, f"only {done} embedded after 120 s"
            time.sleep(0.005)
    db = tmp_path / "data" / "viewfinder.db"
    before = _embedding_times(db)
    with sqlite3.connect(db) as conn:
        states = dict(
            conn.execute(
                "SELECT state, count(*) FROM asset_tasks WHERE kind = 'embed' GROUP BY state"
            ).fetchall()
        )
    print(f"\nat kill -9: {len(before)} embedded, task states {states}")
    assert 0 < len(before) < N_IMAGES, "the kill must land in the middle of processing"

    with server(working) as (_, base):
        deadline = time.monotonic() + 120
        while True:
            state = httpx.get(f"{base}/api/v1/jobs/processing").json()
            if state["counts"]["done"] == N_IMAGES and state["indexed"] == N_IMAGES:
                break
            assert state["counts"]["failed"] == 0
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        total = httpx.get(f"{base}/api/v1/assets").json()["total"]

    after = _embedding_times(db)
    with sqlite3.connect(db) as conn:
        asset_ids = sorted(r[0] for r in conn.execute("SELECT id FROM assets"))
        tasks = conn.execute(
            "SELECT state, count(*) FROM asset_tasks WHERE kind = 'embed' GROUP BY state"
        ).fetchall()
        (dim,) = conn.execute("SELECT dim FROM embeddings LIMIT 1").fetchone()
    index_ids = load_index(tmp_path / "data" / "index" / "clip.vfindex", dim).ids()
    print(
        f"after restart: assets={total}, embeddings={len(after)}, tasks={dict(tasks)}, "
        f"index ids={len(index_ids)} (unique {len(np.unique(index_ids))})"
    )
    assert total == len(asset_ids) == N_IMAGES
    assert sorted(after) == asset_ids
    assert dict(tasks) == {"done": N_IMAGES}
    assert sorted(index_ids.tolist()) == asset_ids
    redone = [i for i, stamp in before.items() if after[i] != stamp]
    assert redone == [], "work committed before the kill was repeated"
