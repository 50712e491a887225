"""What the library's background work is doing, read from the database so every process (the API
replicas, ``viewfinder worker`` processes on other machines) sees the same answer: per task kind
the tasks in each state, the latest failures with their errors and whether (and why) the kind's
processing is paused; the running and latest long jobs; the vectors indexed. ``readiness`` says
why the deployment is not doing its work (database unreachable, processing paused), if it is not."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import jobs as jobs_repo
from viewfinder.db import pauses as pauses_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.db.models import Job, TaskState, utcnow
from viewfinder.db.statements import ping
from viewfinder.library.processing import PAUSE_STALE_S
from viewfinder.library.stores import VectorStore

log = logging.getLogger(__name__)

FAILURES_SHOWN = 10  # latest failures listed per kind
JOBS_SHOWN = 10  # latest jobs listed


@dataclass(frozen=True)
class TaskFailure:
    asset_id: int
    error: str
    attempts: int
    failed_at: datetime


@dataclass(frozen=True)
class Pause:
    """A worker of ``kind`` that cannot work (its model is not available), and since when."""

    kind: str
    worker: str
    reason: str
    since: datetime
    seen_at: datetime  # its latest failed try


@dataclass(frozen=True)
class KindStatus:
    kind: str
    configured: bool  # this deployment's settings process this kind (else: only old tasks)
    counts: dict[str, int]  # per TaskState, zeros included
    retrying: int  # pending tasks that failed before and will be tried again
    waiting_since: datetime | None  # the oldest pending task's queue time
    failures: list[TaskFailure]  # the latest first
    pauses: list[Pause]  # the workers of this kind that are paused now


@dataclass(frozen=True)
class LibraryStatus:
    kinds: list[KindStatus]
    running_jobs: list[Job]
    recent_jobs: list[Job]
    indexed: int | None  # vectors in the store; None when the store cannot be asked
    index_error: str | None


class StatusService:
    def __init__(
        self, sessions: sessionmaker[Session], index: VectorStore, kinds: Sequence[str]
    ) -> None:
        self._sessions = sessions
        self._index = index
        self._kinds = tuple(kinds)  # the task kinds this deployment processes

    def report(
        self, failures_shown: int = FAILURES_SHOWN, jobs_shown: int = JOBS_SHOWN
    ) -> LibraryStatus:
        """The whole picture, read in one session."""
        with self._sessions() as s:
            counts = tasks_repo.counts_by_kind(s)
            pauses = self._pauses(s)
            kinds = list(self._kinds) + sorted((set(counts) | set(pauses)) - set(self._kinds))
            empty = {state.value: 0 for state in TaskState}
            statuses = [
                KindStatus(
                    kind=kind,
                    configured=kind in self._kinds,
                    counts=counts.get(kind, empty),
                    retrying=tasks_repo.retrying_count(s, kind),
                    waiting_since=tasks_repo.oldest_pending(s, kind),
                    failures=[
                        TaskFailure(t.asset_id, t.last_error or "", t.attempts, t.updated_at)
                        for t in tasks_repo.recent_failures(s, kind, failures_shown)
                    ],
                    pauses=pauses.get(kind, []),
                )
                for kind in kinds
            ]
            running = jobs_repo.jobs_in_state(s, TaskState.RUNNING.value)
            recent = jobs_repo.list_jobs(s, limit=jobs_shown)
        indexed, index_error = self._indexed()
        return LibraryStatus(statuses, running, recent, indexed, index_error)

    @staticmethod
    def _pauses(s: Session) -> dict[str, list[Pause]]:
        """The live pauses per kind (a row not refreshed for ``PAUSE_STALE_S`` is ignored: its
        worker died while paused)."""
        by_kind: dict[str, list[Pause]] = {}
        for row in pauses_repo.active_pauses(s, utcnow() - timedelta(seconds=PAUSE_STALE_S)):
            pause = Pause(row.kind, row.worker, row.reason, row.since, row.seen_at)
            by_kind.setdefault(row.kind, []).append(pause)
        return by_kind

    def _indexed(self) -> tuple[int | None, str | None]:
        try:
            return self._index.count(), None
        except Exception as exc:  # a status page must answer when a store does not
            log.warning("the vector store cannot count its vectors", exc_info=True)
            return None, f"the vector store ({self._index.kind}) cannot be read: {exc}"

    def readiness(self) -> list[str]:
        """Why the library is not doing its work now; empty when it is."""
        try:
            with self._sessions() as s:
                ping(s)
                pauses = self._pauses(s)
        except SQLAlchemyError as exc:
            return [f"database unreachable: {_first_line(exc)}"]
        return [
            f"{p.kind} processing paused since {p.since.isoformat(timespec='seconds')} "
            f"(worker {p.worker}): {p.reason}"
            for kind_pauses in pauses.values()
            for p in kind_pauses
        ]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
