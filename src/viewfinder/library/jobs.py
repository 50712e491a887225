"""Long jobs (a folder import, face clustering, training...) as rows of the ``jobs`` table that
workers claim: the threads of a server with workers, or of any ``viewfinder worker`` process on
the same database. ``GET /api/v1/jobs/{id}`` shows their state and progress.

A job's life: ``submit`` inserts it pending (any process can, with or without runner threads);
a runner claims it (SKIP LOCKED on PostgreSQL), renews its heartbeat every ``lease_s / 4`` while
its handler runs, and records it done (with the handler's result) or failed (with the error).

- A handler that raises a ``ViewfinderError`` (bad input, no model) fails its job at once:
  running it again would not help. Any other exception counts an attempt and the job is run
  again, until ``max_attempts``.
- A job whose worker died (heartbeat older than ``lease_s``) is requeued by whichever runner
  notices first (every runner checks every ``lease_s / 4``), counting an attempt; at
  ``max_attempts`` it fails with "its worker stopped responding (N attempts)". Handlers are
  written so that running them again is safe (see ``job_kinds``).
- ``stop`` stops claiming and gives running jobs ``grace_s`` to finish; a job still running then
  is handed back (pending again, no attempt counted) for the next worker, and its handler is
  left to end on its daemon thread: its next progress call raises ``JobInterrupted``, and the
  writes it would still make are ignored, because every write of a claim is fenced on the
  claim's token. The default grace is short so that a worker hands its jobs back before a
  container manager's kill (Docker waits 10 s after SIGTERM).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import jobs as jobs_repo
from viewfinder.db.models import Job, utcnow
from viewfinder.errors import NotFoundError, ViewfinderError

log = logging.getLogger(__name__)

JOBS_KIND = "jobs"  # the name of long jobs in ``VIEWFINDER_WORKER_KINDS``

C = TypeVar("C")

# A handler reports progress as (done, failed, total); it may be called as often as convenient.
Progress = Callable[[int, int, int], None]
# A handler gets the context (the Library), the job's params (JSON) and a progress callback, and
# returns the job's result (JSON).
JobHandler = Callable[[C, dict[str, Any], Progress], dict[str, Any]]


class JobInterrupted(BaseException):
    """Raised by ``progress`` when this worker no longer holds the job (it was handed back at a
    stop, or requeued by another worker after its heartbeat went stale): the handler should stop.

    A ``BaseException``, like ``asyncio.CancelledError``, so a handler's ``except Exception``
    does not swallow it."""


@dataclass
class _Claim:
    job_id: str
    kind: str
    params: dict[str, Any]
    token: str  # claimed_by: unique per claim, so a stale claim's writes are ignored
    finished: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread = field(default_factory=threading.current_thread)


class JobRunner(Generic[C]):
    """Runs the long jobs of ``handlers``' kinds on its own threads (``start``) or on the
    caller's (``run_one``); ``context`` is what every handler gets first (the Library)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        handlers: Mapping[str, JobHandler[C]],
        context: C,
        *,
        lease_s: float = 600.0,
        max_attempts: int = 3,
        grace_s: float = 5.0,
        poll_interval_s: float = 2.0,
    ) -> None:
        self._sessions = sessions
        self._handlers = dict(handlers)
        self._context = context
        self._lease_s = lease_s
        self._max_attempts = max_attempts
        self._grace_s = grace_s
        self._poll_interval_s = poll_interval_s
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._claims = itertools.count(1)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, _Claim] = {}  # by claim token
        self._changed = threading.Condition()  # guards _running; notified when a job ends

    @property
    def kinds(self) -> list[str]:
        return list(self._handlers)

    def submit(self, kind: str, params: Mapping[str, Any]) -> Job:
        """Record a pending job (``params`` must be JSON) for whichever worker claims it first."""
        if kind not in self._handlers:
            raise ValueError(f"unknown job kind {kind!r}; known: {sorted(self._handlers)}")
        with self._sessions.begin() as session:
            job = jobs_repo.create_job(session, kind, params)
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job:
        with self._sessions() as session:
            job = jobs_repo.get_job(session, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return job

    def recent(self, kind: str | None = None) -> list[Job]:
        """The latest jobs (of ``kind``), newest first."""
        with self._sessions() as session:
            return jobs_repo.list_jobs(session, kind=kind)

    # --- running ------------------------------------------------------------------------------

    def run_one(self) -> bool:
        """Claim the oldest pending job and run it on this thread; False when there was none
        (or this runner is stopping)."""
        if self._stopping.is_set():
            return False
        token = f"{self.name}/{next(self._claims)}"
        with self._sessions.begin() as session:
            job = jobs_repo.claim_job(session, self.kinds, token)
            if job is None:
                return False
            claim = _Claim(job.id, job.kind, dict(job.params), token)
        with self._changed:  # atomic with stop's look at what is running
            stopping = self._stopping.is_set()
            if not stopping:
                self._running[claim.token] = claim
        if stopping:
            with self._sessions.begin() as session:
                jobs_repo.release_job(session, claim.job_id, claim.token)
            return False
        beats = threading.Thread(
            target=self._beat, args=(claim,), name=f"job-heartbeat-{claim.job_id[:8]}", daemon=True
        )
        beats.start()
        try:
            self._execute(claim)
        finally:
            claim.finished.set()
            with self._changed:
                self._running.pop(claim.token, None)
                self._changed.notify_all()
            beats.join()
        return True

    def _execute(self, claim: _Claim) -> None:
        log.info("job %s (%s) started", claim.job_id, claim.kind)

        def progress(done: int, failed: int, total: int) -> None:
            with self._sessions.begin() as session:
                held = jobs_repo.heartbeat_job(
                    session, claim.job_id, claim.token, done=done, failed=failed, total=total
                )
            if not held:
                raise JobInterrupted(f"job {claim.job_id} is no longer held by this worker")

        try:
            result = self._handlers[claim.kind](self._context, claim.params, progress)
        except JobInterrupted:
            log.info("job %s (%s) stopped: handed to another worker", claim.job_id, claim.kind)
            return
        except Exception as exc:  # noqa: BLE001 - recorded on the job, the runner goes on
            self._fail(claim, exc)
            return
        with self._sessions.begin() as session:
            recorded = jobs_repo.finish_job(session, claim.job_id, claim.token, result)
        if recorded:
            log.info("job %s (%s) done", claim.job_id, claim.kind)
        else:
            log.warning("job %s finished after it was handed back; it will run again", claim.job_id)

    def _fail(self, claim: _Claim, exc: Exception) -> None:
        expected = isinstance(exc, ViewfinderError)  # bad input, no model: one line, no retry
        if expected:
            log.warning("job %s (%s) failed: %s", claim.job_id, claim.kind, exc)
        else:
            log.exception("job %s (%s) failed", claim.job_id, claim.kind)
        attempts = 1 if expected else self._max_attempts
        with self._sessions.begin() as session:
            state = jobs_repo.fail_job(session, claim.job_id, claim.token, str(exc), attempts)
        if state is not None and state != "failed":
            log.info("job %s will be tried again", claim.job_id)
            self._wake.set()

    def _beat(self, claim: _Claim) -> None:
        """Renew the claim's heartbeat until the job ends, even if its handler is silent."""
        while not claim.finished.wait(self._lease_s / 4):
            try:
                with self._sessions.begin() as session:
                    if not jobs_repo.heartbeat_job(session, claim.job_id, claim.token):
                        return
            except Exception:
                log.warning("job %s: heartbeat failed", claim.job_id, exc_info=True)

    # --- recovery -----------------------------------------------------------------------------

    def recover(self, lease_s: float | None = None) -> int:
        """Requeue (or fail, at ``max_attempts``) running jobs whose heartbeat is older than
        ``lease_s`` (default: the runner's lease; 0: every running job, right at the start of
        the one process of the embedded SQLite database). Returns how many."""
        lease = self._lease_s if lease_s is None else lease_s
        older_than = utcnow() - timedelta(seconds=lease)
        with self._sessions.begin() as session:
            requeued, failed = jobs_repo.requeue_stale_jobs(session, older_than, self._max_attempts)
        if requeued or failed:
            log.warning("jobs of dead workers: %d requeued, %d failed", requeued, failed)
            self._wake.set()
        return requeued + failed

    # --- threads ------------------------------------------------------------------------------

    def start(self, threads: int = 1, orphan_lease_s: float | None = None) -> None:
        """Recover the jobs of dead workers (heartbeat older than ``orphan_lease_s``, default
        the lease), then run jobs on ``threads`` threads, recovering every ``lease_s / 4``,
        until ``stop``."""
        self._stopping.clear()
        self.recover(orphan_lease_s)
        targets = [self._loop] * threads + [self._recover_loop]
        for n, target in enumerate(targets):
            name = f"job-runner-{n}" if n < threads else "job-recovery"
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming; wait up to ``grace_s`` (default: the runner's) for running jobs to
        finish, then hand back those still running (pending, no attempt counted)."""
        deadline = time.monotonic() + (self._grace_s if grace_s is None else grace_s)
        with self._changed:
            self._stopping.set()
            self._wake.set()
            self._changed.wait_for(
                lambda: not self._running, timeout=max(0.0, deadline - time.monotonic())
            )
            unfinished = list(self._running.values())
        for claim in unfinished:
            with self._sessions.begin() as session:
                if jobs_repo.release_job(session, claim.job_id, claim.token):
                    log.warning("job %s (%s) handed back unfinished", claim.job_id, claim.kind)
        abandoned = {claim.thread for claim in unfinished}  # daemons, still in their handlers
        for thread in self._threads:
            if thread not in abandoned:
                thread.join()
        self._threads.clear()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                ran = self.run_one()
            except Exception:
                log.exception("job runner: claiming a job failed")
                ran = False
            if not ran:
                self._wake.wait(self._poll_interval_s)

    def _recover_loop(self) -> None:
        while not self._stopping.wait(self._lease_s / 4):
            try:
                self.recover()
            except Exception:
                log.exception("job runner: recovering the jobs of dead workers failed")
