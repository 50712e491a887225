"""Faces that organise themselves: a debounced, durable ``faces_organize`` job.

New faces (the ``faces`` task stored some) and a user's corrections (naming a cluster,
assigning, moving, merging, rejecting) schedule the job in the same transaction as the change,
so it is as durable as the change itself. At most one such job is pending at a time (the jobs
table's ``dedupe_key``); each further change puts it off by the delay, up to
``MAX_WAIT_FACTOR`` delays after it was first scheduled, so a burst of uploads gives one run
after a short quiet period. Any worker running long jobs runs it (``library/job_kinds.py``):
``PeopleService.organize``, dual mode with the configured parameters."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from viewfinder.db import jobs as jobs_repo
from viewfinder.db.models import Job
from viewfinder.settings import Settings

FACES_ORGANIZE_JOB = "faces_organize"
ORGANIZE_KEY = "faces_organize"
# A job put off again and again still runs this many delays after it was first scheduled.
MAX_WAIT_FACTOR = 10
MIN_MAX_WAIT_S = 30.0


@dataclass(frozen=True)
class OrganizePolicy:
    enabled: bool
    delay_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> OrganizePolicy:
        return cls(settings.face_auto_organize, settings.face_organize_delay_s)

    @property
    def max_wait_s(self) -> float:
        return max(MIN_MAX_WAIT_S, MAX_WAIT_FACTOR * self.delay_s)

    def schedule(self, s: Session) -> None:
        """Schedule (or put off) the organise job in the caller's transaction; nothing when
        automatic organising is off."""
        if self.enabled:
            jobs_repo.schedule_job(
                s, FACES_ORGANIZE_JOB, {}, ORGANIZE_KEY, self.delay_s, self.max_wait_s
            )

    def schedule_now(self, s: Session) -> Job:
        """The organise job, due now (a pending one is brought forward, else one is created),
        whether or not automatic organising is on: a user asked for it."""
        return jobs_repo.schedule_job(s, FACES_ORGANIZE_JOB, {}, ORGANIZE_KEY, 0.0, 0.0)
