"""Claims that recover while the cluster runs: leases renewed by a live worker and taken back from
a dead one, a crash counted as an attempt, the task that kills its worker isolated and parked as
failed with its reason, and claims released at once when storing fails. Real databases (SQLite and
PostgreSQL), real worker threads, and real processes that die with ``os._exit``."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from tests.db_fixtures import add_stored_png
from tests.worker_crash_child import KIND, LEASE_S
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.models import AssetTask
from viewfinder.library.processing import TaskWorker
from viewfinder.storage.blobs import LocalBlobStore

REPO = Path(__file__).resolve().parents[1]


def _png(n: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (n % 256, n // 256 % 256, 7)).save(out, format="PNG")
    return out.getvalue()


def add_images(sessions: sessionmaker[Session], blobs: LocalBlobStore, count: int) -> list[int]:
    """Assets with real PNG originals in the blob store and a pending ``noop`` task each."""
    with sessions.begin() as s:
        return [add_stored_png(s, blobs, _png(n), f"{n}.png", [KIND]).id for n in range(count)]


class RecordingProcessor:
    """A no-model processor: its result is the asset id; what it stored is recorded."""

    kind = KIND
    min_side: int | None = None

    def __init__(self, gate: threading.Event | None = None, fail_store: bool = False) -> None:
        self.gate = gate
        self.fail_store = fail_store
        self.computing = threading.Event()
        self.stored: list[int] = []

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        self.computing.set()
        if self.gate is not None and not self.gate.wait(30):
            raise TimeoutError("the test never opened the gate")
        return {i: i for i in images}

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        if self.fail_store:
            raise RuntimeError("the store is down")
        self.stored.append(asset_id)

    def after_commit(self, results: dict[int, Any]) -> None:
        return


def states(sessions: sessionmaker[Session]) -> dict[int, tuple[str, int, str | None]]:
    with sessions() as s:
        rows = s.query(AssetTask).filter(AssetTask.kind == KIND).all()
        return {t.asset_id: (t.state, t.attempts, t.claimed_by) for t in rows}


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.02)


def worker(
    sessions: sessionmaker[Session], blobs: LocalBlobStore, processor: RecordingProcessor
) -> TaskWorker:
    return TaskWorker(processor, sessions, blobs, batch_size=8, max_attempts=3, lease_s=LEASE_S)


def test_a_live_worker_takes_back_the_claims_of_a_dead_one(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ids = add_images(sessions, blobs, 5)
    with sessions.begin() as s:  # a worker claims everything, then dies: it never renews
        tasks_repo.claim_tasks(s, KIND, "dead-host:1/abc", 10)
    processor = RecordingProcessor()
    live = worker(sessions, blobs, processor)
    live.start(threads=1, orphan_lease_s=3600)  # at start the dead claims are still fresh
    try:
        wait_for(lambda: all(state == "done" for state, _, _ in states(sessions).values()))
    finally:
        live.stop()
    assert sorted(processor.stored) == ids  # each stored exactly once
    assert {attempts for _, attempts, _ in states(sessions).values()} == {1}


def test_a_long_batch_keeps_its_lease(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    ids = add_images(sessions, blobs, 3)
    gate = threading.Event()
    slow = RecordingProcessor(gate)
    busy = worker(sessions, blobs, slow)
    thread = threading.Thread(target=busy.process_batch)
    thread.start()
    try:
        assert slow.computing.wait(10)
        time.sleep(LEASE_S * 3)  # three leases pass while the batch computes
        other = worker(sessions, blobs, RecordingProcessor())
        assert other.recover(LEASE_S) == 0  # renewed: not taken for a dead worker's
        held = states(sessions)
        assert {state for state, _, _ in held.values()} == {"running"}
        assert {attempts for _, attempts, _ in held.values()} == {0}
    finally:
        gate.set()
        thread.join(30)
    assert sorted(slow.stored) == ids
    assert {state for state, _, _ in states(sessions).values()} == {"done"}


def test_a_failing_store_releases_the_claims_at_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    add_images(sessions, blobs, 4)
    broken = worker(sessions, blobs, RecordingProcessor(fail_store=True))
    with pytest.raises(RuntimeError, match="the store is down"):
        broken.process_batch()
    assert set(states(sessions).values()) == {("pending", 0, None)}


def test_stop_hands_back_what_it_holds(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    add_images(sessions, blobs, 2)
    leaving = worker(sessions, blobs, RecordingProcessor())
    with sessions.begin() as s:  # a claim of this process that no thread will finish
        tasks_repo.claim_tasks(s, KIND, f"{leaving.name}/lost", 10)
    leaving.stop()
    assert set(states(sessions).values()) == {("pending", 0, None)}


def test_a_task_that_kills_its_worker_is_isolated_and_parked(
    database_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Worker processes die (``os._exit``) whenever the poison image is in their batch. The first
    death costs its whole batch an attempt; each of those is then retried alone, the innocent
    ones succeed, and the poison fails after three deaths with the reason, instead of killing
    every worker in turn."""
    blobs_root = tmp_path / "blobs"
    blobs = LocalBlobStore(blobs_root)
    ids = add_images(sessions, blobs, 12)
    poison = ids[2]
    log = tmp_path / "batches.log"
    deaths = 0
    for _ in range(8):  # bounded: each worker runs until it dies or the queue is empty
        counts = {state for state, _, _ in states(sessions).values()}
        if counts <= {"done", "failed"}:
            break
        time.sleep(LEASE_S * 1.2)  # let a dead worker's lease expire
        child = "tests.worker_crash_child"
        run = subprocess.run(
            [sys.executable, "-m", child, database_url, str(blobs_root), str(poison), str(log)],
            check=False,
            cwd=REPO,
            capture_output=True,
            timeout=120,
        )
        assert run.returncode in (0, 137), run.stderr.decode()
        deaths += run.returncode == 137
    final = states(sessions)
    assert final[poison][:2] == ("failed", 3)
    with sessions() as s:
        task = tasks_repo.task_state(s, poison, KIND)
        assert task is not None
        assert task.last_error is not None
        assert "stopped while processing it" in task.last_error
    assert all(final[i][0] == "done" for i in ids if i != poison)
    assert deaths == 3
    batches = [[int(i) for i in line.split()] for line in log.read_text().splitlines()]
    assert batches[0] == ids[:8]  # the first batch, with the poison in it
    # Its members are retried one at a time, the poison until it is parked; then the rest of
    # the queue goes in batches again.
    singles = [b for b in batches[1:] if len(b) == 1]
    assert sorted(b[0] for b in singles if b[0] != poison) == [i for i in ids[:8] if i != poison]
    assert [b[0] for b in singles].count(poison) == 2  # its 2nd and 3rd deaths
    assert batches[-1] == ids[8:]
