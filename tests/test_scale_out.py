"""The scale-out deployment, as processes: PostgreSQL + pgvector, two API replicas that run no
background work (``VIEWFINDER_WORKER_THREADS=0``), ``viewfinder worker`` processes, one shared
storage folder. 120 concurrent uploads go to replica A while a worker is killed with SIGKILL in
the middle of a batch and another is started; then every acknowledged image is embedded exactly
once, replica B finds each (by id, by text, with a folder filter giving as many hits as asked), a
delete on A is gone from B's results at once, and SIGTERM stops the workers cleanly."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import Engine, text

from tests.conftest import serve_env
from viewfinder.db.engine import make_engine
from viewfinder.testing.server import free_port, wait_until_serving

pytestmark = pytest.mark.slow

UPLOADS = 120
FOLDERS = ["f0", "f1", "f2", "f3"]
LEASE_S = 2.0


def _image(i: int) -> bytes:
    """A distinct JPEG big enough that decoding a batch of them takes a visible moment."""
    rng = np.random.default_rng(i)
    small = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((1280, 960)).save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def database(pgvector_admin_url: str) -> Iterator[str]:
    from viewfinder.testing.pgvector_server import fresh_database

    with fresh_database(pgvector_admin_url) as url:
        yield url


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "viewfinder", *args], env=env, stdout=handle, stderr=handle
    )


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s:g} s")
        time.sleep(0.01)


def _rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def test_replicas_and_workers_share_one_library(
    database: str, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    shared = {
        "VIEWFINDER_DATABASE_URL": database,
        "VIEWFINDER_VECTOR_STORE": "pgvector",
        "VIEWFINDER_STORAGE_ROOT": str(tmp_path / "files"),
        "VIEWFINDER_FACES": "0",
        "VIEWFINDER_WORKER_LEASE_S": str(LEASE_S),
        "VIEWFINDER_WORKER_BATCH_SIZE": "16",
        "VIEWFINDER_TORCH_THREADS": "1",
        "VIEWFINDER_LOG_LEVEL": "INFO",
    }

    def env(name: str, **extra: str) -> dict[str, str]:
        return serve_env(tmp_path / name, tiny_models, **shared, **extra)

    engine = make_engine(database)
    logs = tmp_path / "logs"
    logs.mkdir()
    upgrade = subprocess.run(
        [sys.executable, "-m", "viewfinder", "db", "upgrade"],
        env=env("migrate"),
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr.decode()

    with ExitStack() as stack:
        procs: list[subprocess.Popen[bytes]] = []

        def start(args: list[str], name: str, **extra: str) -> subprocess.Popen[bytes]:
            proc = _start(args, env(name, **extra), logs / f"{name}.log")
            procs.append(proc)
            return proc

        def cleanup() -> None:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(30)

        stack.callback(cleanup)
        urls = {}
        for name in ("a", "b"):
            port = free_port()
            proc = start(["serve", "--port", str(port)], name, VIEWFINDER_WORKER_THREADS="0")
            urls[name] = f"http://127.0.0.1:{port}"
            wait_until_serving(
                f"{urls[name]}/health", proc, 90, lambda n=name: (logs / f"{n}.log").read_text()
            )
        doomed = start(["worker", "--kinds", "embed"], "worker1")
        start(["worker", "--kinds", "embed"], "worker2")

        def upload(i: int) -> int:
            response = httpx.post(
                f"{urls['a']}/api/v1/assets",
                files={"files": (f"{i}.jpg", _image(i), "image/jpeg")},
                data={"folder": FOLDERS[i % len(FOLDERS)]},
                timeout=60,
            )
            assert response.status_code == 201, response.text
            return int(response.json()[0]["asset"]["id"])

        pool = stack.enter_context(ThreadPoolExecutor(8))
        futures = [pool.submit(upload, i) for i in range(UPLOADS)]

        # SIGKILL the first worker while it holds a claim: in the middle of a batch.
        held = "SELECT asset_id FROM asset_tasks WHERE state = 'running' AND claimed_by LIKE :c"
        mine = f"%:{doomed.pid}/%"
        _wait(lambda: bool(_rows(engine, held, c=mine)), 90, "a claim by worker 1")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(30)
        killed_mid_batch = {int(row[0]) for row in _rows(engine, held, c=mine)}
        assert killed_mid_batch, "worker 1 finished its batch before the kill landed"
        start(["worker", "--kinds", "embed"], "worker3")

        acknowledged = sorted(f.result(timeout=120) for f in futures)
        assert len(set(acknowledged)) == UPLOADS

        pending = "SELECT count(*) FROM asset_tasks WHERE kind = 'embed' AND state <> 'done'"
        _wait(lambda: _rows(engine, pending)[0][0] == 0, 180, "every image embedded")

        # Exactly once: one embedding and one pgvector row per acknowledged image; the killed
        # batch cost its tasks one attempt each (their lease expired), nothing else was retried.
        assert _rows(engine, "SELECT asset_id FROM embeddings ORDER BY 1") == [
            (i,) for i in acknowledged
        ]
        assert _rows(engine, "SELECT asset_id FROM vector_embeddings ORDER BY 1") == [
            (i,) for i in acknowledged
        ]
        attempts = dict(_rows(engine, "SELECT asset_id, attempts FROM asset_tasks"))
        assert {i for i, n in attempts.items() if n} == killed_mid_batch
        assert set(attempts.values()) == {0, 1}
        print(f"{UPLOADS} uploads, {len(killed_mid_batch)} tasks held by the killed worker")

        b = urls["b"]
        for asset_id in acknowledged:
            assert httpx.get(f"{b}/api/v1/assets/{asset_id}", timeout=10).status_code == 200
        by_text = httpx.post(
            f"{b}/api/v1/search", json={"query": "a photo", "k": 20, "folder": "f1"}, timeout=30
        ).json()["hits"]
        assert len(by_text) == 20
        assert {hit["asset"]["folder"] for hit in by_text} == {"f1"}
        probe, victim = acknowledged[0], acknowledged[1]
        similar = httpx.post(
            f"{b}/api/v1/search", json={"asset_id": probe, "k": 1000}, timeout=30
        ).json()["hits"]
        assert sorted(h["asset"]["id"] for h in similar) == acknowledged[1:]

        assert httpx.delete(f"{urls['a']}/api/v1/assets/{victim}", timeout=30).status_code == 204
        similar = httpx.post(
            f"{b}/api/v1/search", json={"asset_id": probe, "k": 1000}, timeout=30
        ).json()["hits"]
        assert sorted(h["asset"]["id"] for h in similar) == acknowledged[2:]

        # SIGTERM: the workers finish what they hold, hand back the rest, and exit cleanly.
        for proc in procs[3:]:
            proc.send_signal(signal.SIGTERM)
        for proc in procs[3:]:
            assert proc.wait(60) == 0
        assert _rows(engine, "SELECT count(*) FROM asset_tasks WHERE state = 'running'") == [(0,)]
    engine.dispose()
