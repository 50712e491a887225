"""Bulk jobs (a folder import...) recorded in the ``jobs`` table and run on a background thread,
so their progress and outcome are visible through ``GET /api/v1/jobs/{id}``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import repository as repo
from viewfinder.db.models import Job, TaskState
from viewfinder.errors import ViewfinderError

log = logging.getLogger(__name__)

# A job body gets a progress callback (done, failed, total) and returns the job's result.
Progress = Callable[[int, int, int], None]
JobBody = Callable[[Progress], dict[str, Any]]


class JobRunner:
    def __init__(self, sessions: sessionmaker[Session], workers: int = 1) -> None:
        self._sessions = sessions
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="job")

    def submit(self, kind: str, params: dict[str, Any], body: JobBody) -> Job:
        with self._sessions.begin() as session:
            job = repo.create_job(session, kind, params)
        self._executor.submit(self._run, job.id, body)
        return job

    def _run(self, job_id: str, body: JobBody) -> None:
        with self._sessions.begin() as session:
            repo.update_job(session, job_id, state=TaskState.RUNNING)

        def progress(done: int, failed: int, total: int) -> None:
            with self._sessions.begin() as session:
                repo.update_job(session, job_id, done=done, failed=failed, total=total)

        try:
            result = body(progress)
        except Exception as exc:
            if isinstance(exc, ViewfinderError):  # expected (bad input, no model): one line
                log.warning("job %s failed: %s", job_id, exc)
            else:
                log.exception("job %s failed", job_id)
            with self._sessions.begin() as session:
                repo.update_job(session, job_id, state=TaskState.FAILED, error=str(exc))
            return
        with self._sessions.begin() as session:
            repo.update_job(session, job_id, state=TaskState.DONE, result=result)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
