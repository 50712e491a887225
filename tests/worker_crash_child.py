"""A worker process for tests/test_worker_leases.py: works through the ``noop`` tasks with a
TaskWorker and dies with ``os._exit`` (as an out-of-memory kill would) when the poison asset is in
a batch it computes. Not a test module: ``python -m tests.worker_crash_child URL BLOBS POISON
LOG``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session

from viewfinder.db.engine import make_engine, make_session_factory
from viewfinder.library.processing import TaskWorker
from viewfinder.storage.blobs import LocalBlobStore

KIND = "noop"
LEASE_S = 0.5


class PoisonProcessor:
    kind = KIND
    min_side: int | None = None

    def __init__(self, poison: int, log: Path) -> None:
        self._poison = poison
        self._log = log

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        with self._log.open("a") as out:
            out.write(" ".join(str(i) for i in sorted(images)) + "\n")
        if self._poison in images:
            os._exit(137)
        return {i: i for i in images}

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        return

    def after_commit(self, results: dict[int, Any]) -> None:
        return


def main() -> None:
    url, blobs, poison, log = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    engine = make_engine(url)
    worker = TaskWorker(
        PoisonProcessor(poison, log),
        make_session_factory(engine),
        LocalBlobStore(blobs),
        batch_size=8,
        max_attempts=3,
        lease_s=LEASE_S,
    )
    # What a starting worker does: take back the claims of dead workers (lease expired), then
    # work until the queue is empty.
    worker.recover(LEASE_S)
    while worker.process_batch():
        pass
    engine.dispose()


if __name__ == "__main__":
    main()
