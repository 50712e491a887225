"""docs/deployment.md's move of a whole library from the embedded default (SQLite, local files,
FAISS) to the scale-out stores (PostgreSQL + pgvector, an S3 bucket), step by step as printed there,
with real processes: the docs' copy script, the files copied into a real S3 server on 127.0.0.1
under the same keys, `viewfinder vectors sync`, then a server on the new stores answering the same
searches with the same images, re-embedding nothing."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import serve_env
from tests.s3_fixtures import requires_s3
from tests.test_deployment import copy_script_from_docs
from viewfinder.testing.server import free_port, wait_until_serving

pytestmark = [pytest.mark.slow, requires_s3]

FOLDERS = ["trips/alps", "trips/coast", "home"]


def _photo(i: int) -> bytes:
    rng = np.random.default_rng(100 + i)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC).save(out, "JPEG")
    return out.getvalue()


def _viewfinder(env: dict[str, str], *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "viewfinder", *args],
        env=env,
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout.decode()


@contextmanager
def _server(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "viewfinder", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/health", proc, 90, log.read_text)
        yield base
    finally:
        proc.terminate()
        proc.wait(60)


def _searches(base: str, ids: list[int]) -> dict[str, Any]:
    def ranked(body: dict[str, Any]) -> list[tuple[int, float]]:
        hits = httpx.post(f"{base}/api/v1/search", json=body, timeout=30).json()["hits"]
        return [(h["asset"]["id"], round(h["similarity"], 4)) for h in hits]

    return {
        "text": ranked({"query": "a photo of the mountains", "k": 12}),
        "folder": ranked({"query": "the sea", "k": 5, "folder": "trips"}),
        "similar": ranked({"asset_id": ids[0], "k": 12}),
        "files": [httpx.get(f"{base}/api/v1/assets/{i}/file", timeout=30).content for i in ids],
    }


def test_an_embedded_library_moves_to_pgvector_and_s3(
    pgvector_admin_url: str,
    endpoint: str,
    s3: Any,
    bucket: str,
    tiny_models: dict[str, Path],
    tmp_path: Path,
) -> None:
    from viewfinder.testing.pgvector_server import fresh_database

    photos = tmp_path / "photos"
    originals = {}
    for i in range(15):
        folder = photos / FOLDERS[i % len(FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        originals[f"{i}.jpg"] = _photo(i)
        (folder / f"{i}.jpg").write_bytes(originals[f"{i}.jpg"])

    # The embedded library: `viewfinder index`, then what its server answers.
    embedded = serve_env(tmp_path / "embedded", tiny_models, VIEWFINDER_FACES="0")
    data_dir = Path(embedded["VIEWFINDER_DATA_DIR"])
    assert "15 images indexed" in _viewfinder(embedded, "index", str(photos))
    with _server(embedded, tmp_path / "embedded.log") as base:
        listed = httpx.get(f"{base}/api/v1/assets", params={"limit": 100}, timeout=30).json()
        ids = sorted(a["id"] for a in listed["items"])
        before = _searches(base, ids)
    assert len(ids) == 15
    assert sorted(before["files"]) == sorted(originals.values())

    with fresh_database(pgvector_admin_url) as database:
        stack = serve_env(
            tmp_path / "stack",
            tiny_models,
            VIEWFINDER_FACES="0",
            VIEWFINDER_DATABASE_URL=database,
            VIEWFINDER_VECTOR_STORE="pgvector",
            VIEWFINDER_S3_BUCKET=bucket,
            VIEWFINDER_S3_ENDPOINT_URL=endpoint,
            VIEWFINDER_S3_REGION="us-east-1",
        )
        # Steps 1-2: the new database, migrated.
        _viewfinder(stack, "db", "upgrade")
        # Step 3: the docs' copy script, as printed there.
        script = tmp_path / "copy_library.py"
        script.write_text(copy_script_from_docs(), encoding="utf-8")
        copy = subprocess.run(
            [sys.executable, str(script), f"sqlite:///{data_dir / 'viewfinder.db'}"],
            env=stack,
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert copy.returncode == 0, copy.stderr.decode()
        assert "assets: 15 rows" in copy.stdout.decode()
        # Step 4: the files into the bucket under the same keys (what `aws s3 sync` does).
        files = data_dir / "files"
        for path in files.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                s3.put_object(
                    Bucket=bucket, Key=path.relative_to(files).as_posix(), Body=path.read_bytes()
                )
        # Step 5: the vector store filled from the copied embeddings; nothing embedded again.
        assert "pgvector: 15 added, 0 removed, 15 vectors in the store" in _viewfinder(
            stack, "vectors", "sync"
        )
        assert "pgvector: 15 vectors; 15 embeddings in the database" in _viewfinder(
            stack, "vectors", "status"
        )
        # Step 6: the stack's server answers as the embedded one did.
        stack["VIEWFINDER_WORKER_THREADS"] = "0"
        with _server(stack, tmp_path / "stack.log") as base:
            after = _searches(base, ids)
            processing = httpx.get(f"{base}/api/v1/jobs/processing", timeout=30).json()
    assert after == before
    assert (processing["counts"]["done"], processing["indexed"]) == (15, 15)
