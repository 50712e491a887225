"""Work queue benchmark: tasks claimed and completed per second on PostgreSQL with a no-op model,
for 1, 4 and 16 concurrent worker processes (issue 9's target: at least 5,000 tasks/s, so the
queue never limits a GPU fleet; one H100 embeds about 10,000 images/s).

A fresh database on the machine's PostgreSQL (``--admin-url``), migrated to head, gets ``--tasks``
assets with one pending ``embed`` task each (bulk Core inserts). Each worker is a process with its
own engine that loops until the queue is empty. Two loops are measured:

- ``queue``: ``tasks_repo.claim_tasks`` (batch ``--batch``) in one transaction, then
  ``tasks_repo.complete_tasks`` with the claim token in another, as ``TaskWorker`` does: the queue's
  own ceiling.
- ``TaskWorker``: the real ``TaskWorker.process_batch`` with a processor that computes nothing,
  whose originals are a 1x1 JPEG held in memory: the queue plus everything the worker loop does
  around it (the assets' lookup, the lease renewer thread, settling), and decoding that JPEG
  (about 70 us per task here: a good part of this loop's time, and no part of the queue's).

Between runs every task goes back to pending and the table is vacuumed; the configurations run
interleaved in ``--rounds`` rounds, so a change in the host's load affects all of them alike.

    .venv/bin/python -m benchmarks.queue [--tasks 100000] [--batch 256] [--workers 1,4,16]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from PIL import Image
from sqlalchemy import create_engine, event, insert, text, update
from sqlalchemy.orm import Session

from viewfinder.db import tasks as tasks_repo
from viewfinder.db.engine import make_engine, make_session_factory
from viewfinder.db.migrate import upgrade
from viewfinder.db.models import Asset, AssetTask, TaskState, utcnow
from viewfinder.testing.pgvector_server import fresh_database

# ``viewfinder.library.processing.EMBED_TASK``; that module is imported only where the
# TaskWorker loop runs: it pulls in torch (8 s and 400 MB per spawned worker process).
EMBED_TASK = "embed"

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FILL_CHUNK = 10_000


def _tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1, 1), (127, 127, 127)).save(out, "JPEG")
    return out.getvalue()


class _NoopProcessor:
    """A TaskProcessor whose model does nothing: each image's result is None."""

    kind = EMBED_TASK
    min_side: int | None = None

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        return dict.fromkeys(images)

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        return

    def after_commit(self, results: dict[int, Any]) -> None:
        return


class _MemoryOriginals:
    """Every asset's original is the same 1x1 JPEG: no file system in the measurement."""

    def __init__(self) -> None:
        self._data = _tiny_jpeg()

    def read(self, sha256: str, uri: str | None) -> bytes:
        return self._data


class _Loop:
    """A drain loop on this process's own engine."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url, pool_size=3)

    def connect(self) -> None:
        """Open the pool's first connection, so the measurement does not."""
        with self._engine.connect():
            pass

    def __call__(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        self._engine.dispose()


class _QueueLoop(_Loop):
    """claim -> complete until the queue is empty."""

    def __init__(self, url: str, batch: int) -> None:
        super().__init__(url)
        self._sessions = make_session_factory(self._engine)
        self._batch = batch
        self._name = f"bench:{os.getpid()}"

    def __call__(self) -> int:
        settled = 0
        while True:
            claimant = f"{self._name}/{uuid.uuid4().hex[:8]}"
            with self._sessions.begin() as session:
                claimed = tasks_repo.claim_tasks(session, EMBED_TASK, claimant, self._batch)
            if not claimed:
                return settled
            with self._sessions.begin() as session:
                done = tasks_repo.complete_tasks(session, list(claimed), EMBED_TASK, claimant)
            settled += len(done)


class _TaskWorkerLoop(_Loop):
    """``TaskWorker.process_batch`` with a no-op processor until the queue is empty."""

    def __init__(self, url: str, batch: int) -> None:
        from viewfinder.library import processing

        assert processing.EMBED_TASK == EMBED_TASK
        super().__init__(url)
        self._worker = processing.TaskWorker(
            _NoopProcessor(),
            make_session_factory(self._engine),
            None,  # type: ignore[arg-type]  # never read: the originals come from memory
            batch_size=batch,
            originals=_MemoryOriginals(),  # type: ignore[arg-type]
        )

    def __call__(self) -> int:
        settled = 0
        while (done := self._worker.process_batch()) > 0:
            settled += done
        return settled


LOOPS: dict[str, Callable[[str, int], _Loop]] = {
    "queue": _QueueLoop,
    "TaskWorker": _TaskWorkerLoop,
}


def _run_worker(loop: str, url: str, batch: int, start: Any, results: Any) -> None:
    """Connect, report ready, wait for the start, drain, report (settled, finish time): the
    start-up of a spawned process (imports, connecting) is not in the measurement."""
    try:
        drain = LOOPS[loop](url, batch)
        try:
            drain.connect()
            results.put(("ready", 0, 0.0))
            start.wait()
            settled = drain()
            results.put(("done", settled, time.perf_counter()))
        finally:
            drain.close()
    except BaseException as exc:
        results.put(("error", 0, repr(exc)))
        raise


def fill(url: str, tasks: int) -> None:
    """``tasks`` assets, each with one pending embed task, in chunks of Core inserts."""
    engine = make_engine(url)
    now = utcnow()
    try:
        for first in range(1, tasks + 1, FILL_CHUNK):
            ids = range(first, min(tasks, first + FILL_CHUNK - 1) + 1)
            with engine.begin() as connection:
                connection.execute(
                    insert(Asset),
                    [
                        {
                            "id": i,
                            "sha256": f"{i:064x}",
                            "original_filename": f"{i}.jpg",
                            "folder": f"f{i % 10}",
                            "content_type": "image/jpeg",
                            "size_bytes": 1000,
                            "width": 1,
                            "height": 1,
                            "created_at": now,
                        }
                        for i in ids
                    ],
                )
                connection.execute(
                    insert(AssetTask),
                    [
                        {
                            "asset_id": i,
                            "kind": EMBED_TASK,
                            "state": TaskState.PENDING.value,
                            "attempts": 0,
                            "updated_at": now,
                        }
                        for i in ids
                    ],
                )
        with engine.begin() as connection:
            # Identity continues after the explicit ids (not used here, but keeps it valid).
            connection.execute(
                text("SELECT setval(pg_get_serial_sequence('assets', 'id'), :n)"), {"n": tasks}
            )
    finally:
        engine.dispose()


def reset(url: str) -> None:
    """Every task back to pending, then VACUUM ANALYZE so each run starts from the same table
    (a run leaves two dead row versions per task behind)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(AssetTask).values(
                    state=TaskState.PENDING.value, claimed_by=None, claimed_at=None, attempts=0
                )
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE asset_tasks"))
    finally:
        engine.dispose()


def remaining(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return tasks_repo.task_counts(session, EMBED_TASK)
    finally:
        engine.dispose()


def run(url: str, loop: str, workers: int, batch: int, tasks: int) -> float:
    """Tasks per second of ``workers`` processes draining the queue with ``loop``: from the
    moment every process is connected and told to start until the last one finds it empty."""
    reset(url)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    procs = [
        context.Process(target=_run_worker, args=(loop, url, batch, start, results))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        _expect(results, "ready")
    began = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on Linux
    start.set()
    finished = [_expect(results, "done") for _ in procs]
    elapsed = max(when for _, _, when in finished) - began
    settled = sum(count for _, count, _ in finished)
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a {loop} worker exited with {proc.exitcode}")
    counts = remaining(url)
    if settled != tasks or counts[TaskState.DONE.value] != tasks:
        raise RuntimeError(f"{loop} x{workers}: settled {settled} of {tasks}; table: {counts}")
    return settled / elapsed


def _expect(results: Any, what: str) -> tuple[str, int, float]:
    message = results.get(timeout=900)
    if message[0] != what:
        raise RuntimeError(f"a worker failed: {message[2]}")
    return message  # type: ignore[no-any-return]


def claim_plan(url: str, batch: int) -> str:
    """EXPLAIN ANALYZE of the statement ``tasks_repo.claim_tasks`` sends, on the full queue (rolled
    back): the statement and its parameters are captured as the driver receives them."""
    engine = make_engine(url)
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        sent.append((statement, parameters))

    try:
        with make_session_factory(engine)() as session:
            event.listen(engine, "before_cursor_execute", capture)
            tasks_repo.claim_tasks(session, EMBED_TASK, "plan/x", batch)
            event.remove(engine, "before_cursor_execute", capture)
            session.rollback()
            statement, parameters = sent[-1]
            cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement, parameters)
            plan = "\n".join(f"    {row[0]}" for row in cursor.fetchall())
            session.rollback()
            return plan
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=256, help="tasks per claim")
    parser.add_argument("--workers", default="1,4,16", help="comma-separated process counts")
    parser.add_argument("--loops", default="queue,TaskWorker", help=f"of {', '.join(LOOPS)}")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--explain", action="store_true", help="print the claim's plan")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    loops = [name.strip() for name in args.loops.split(",")]

    admin = create_engine(args.admin_url)
    with admin.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar()
        sync = connection.execute(text("SHOW synchronous_commit")).scalar()
    admin.dispose()
    print(
        f"PostgreSQL {version} at {args.admin_url.split('@')[-1]} (synchronous_commit={sync}); "
        f"{args.tasks:,} tasks, batch {args.batch}, {args.rounds} interleaved rounds; "
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}"
    )
    with fresh_database(args.admin_url) as url:
        started = time.perf_counter()
        upgrade(url)
        fill(url, args.tasks)
        print(f"migrate + fill: {time.perf_counter() - started:.1f} s", flush=True)
        if args.explain:
            print(f"claim plan (batch {args.batch}, full queue):\n{claim_plan(url, args.batch)}")
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for loop in loops:
                for count in workers:
                    rate = run(url, loop, count, args.batch, args.tasks)
                    rates.setdefault((loop, count), []).append(rate)
                    print(f"  {loop} x{count}: {rate:,.0f} tasks/s", flush=True)
    print(f"tasks claimed and completed per second (batch {args.batch}; target >= 5,000)")
    print(f"{'loop':<12} {'workers':>7} {'mean':>9} {'rounds':>20}")
    for (loop, count), values in rates.items():
        each = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{loop:<12} {count:7d} {statistics.mean(values):9,.0f} {each:>20}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
