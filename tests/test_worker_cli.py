"""`viewfinder worker`: refused, with what to change, where it would corrupt or split the library
(the single-process SQLite default; embedding beside the embedded index), and on PostgreSQL a
worker that starts, works, and stops cleanly on SIGTERM."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from tests.conftest import serve_env
from viewfinder.db.engine import make_engine


def _worker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewfinder", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_worker_on_the_embedded_sqlite_database_is_refused_before_touching_it(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    env = serve_env(tmp_path, tiny_models)
    run = _worker(env)
    assert run.returncode == 1
    assert "SQLite is the embedded single-process default" in run.stderr
    assert "VIEWFINDER_DATABASE_URL" in run.stderr
    assert not Path(env["VIEWFINDER_DATA_DIR"]).exists()  # nothing created


def test_a_worker_that_embeds_beside_the_embedded_index_is_refused(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is refused first: see the test above")
    env = serve_env(tmp_path, tiny_models, VIEWFINDER_DATABASE_URL=database_url)
    run = _worker(env, "--kinds", "embed")
    assert run.returncode == 1
    assert "VIEWFINDER_VECTOR_STORE=pgvector" in run.stderr
    unknown = _worker(env, "--kinds", "embed,colour")
    assert unknown.returncode == 1
    assert "unknown worker kinds ['colour']" in unknown.stderr


def test_a_faces_and_jobs_worker_runs_and_stops_cleanly_on_sigterm(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> None:
    """Beside the embedded index, a worker may still do the work whose results live in the
    database (faces, long jobs): it takes a queued folder import and stops on SIGTERM."""
    if database_url.startswith("sqlite"):
        pytest.skip("workers need PostgreSQL")
    photos = tmp_path / "imports" / "photos"
    photos.mkdir(parents=True)
    for n in range(3):
        out = io.BytesIO()
        Image.new("RGB", (64, 48), (40 * n, 90, 20)).save(out, "JPEG")
        (photos / f"{n}.jpg").write_bytes(out.getvalue())
    env = serve_env(
        tmp_path,
        tiny_models,
        VIEWFINDER_DATABASE_URL=database_url,
        VIEWFINDER_FACES="0",
        VIEWFINDER_LOG_LEVEL="INFO",
    )
    from viewfinder.db.migrate import upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (id, kind, state, params, total, done, failed, attempts, "
                "created_at, updated_at) VALUES ('j1', 'import_folder', 'pending', :p, 0, 0, 0, "
                "0, now(), now())"
            ),
            {"p": f'{{"path": "{photos}", "folder_prefix": ""}}'},
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "viewfinder", "worker", "--kinds", "jobs"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        state = None
        while state != "done":
            assert time.monotonic() < deadline, "the worker did not run the job"
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
            with engine.connect() as connection:
                state = connection.execute(text("SELECT state FROM jobs WHERE id = 'j1'")).scalar()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as connection:
        assets = connection.execute(text("SELECT count(*) FROM assets")).scalar()
        running = connection.execute(
            text("SELECT count(*) FROM asset_tasks WHERE state = 'running'")
        ).scalar()
    engine.dispose()
    assert (assets, running) == (3, 0)
    output = proc.stdout.read() if proc.stdout else ""
    assert "worker " in output
    assert "stopping" in output
