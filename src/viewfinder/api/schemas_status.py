"""Wire models of the status routes: ``/api/v1/status``, ``/api/v1/models``, ``/ready``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from viewfinder.api.schemas_library import JobOut
from viewfinder.container import ModelStatus, SystemStatus
from viewfinder.library.status import KindStatus


class ModelOut(BaseModel):
    name: str
    description: str = ""
    source: str = Field(description="The setting's value: a hub repo id, a URL or a local path.")
    setting: str = Field("", description="The environment variable that names this model.")
    available: bool = Field(
        True, description="A local copy exists (checked without downloading anything)."
    )
    unavailable_reason: str | None = Field(
        None, description="Why it is not available, or why it failed to load in this process."
    )
    loaded: bool = Field(description="Loaded in this process (the API's, not a worker's).")
    load_seconds: float | None = None
    batches_run: int
    items_run: int
    mean_batch: float

    @classmethod
    def of(cls, m: ModelStatus) -> ModelOut:
        return cls(
            name=m.name,
            description=m.description,
            source=m.source,
            setting=m.setting,
            available=m.available,
            unavailable_reason=m.unavailable_reason,
            loaded=m.loaded,
            load_seconds=m.load_seconds,
            batches_run=m.batches_run,
            items_run=m.items_run,
            mean_batch=m.items_run / m.batches_run if m.batches_run else 0.0,
        )


class FailureOut(BaseModel):
    asset_id: int
    error: str
    attempts: int
    failed_at: datetime


class PauseOut(BaseModel):
    worker: str = Field(description="host:pid of the worker that paused.")
    reason: str
    since: datetime = Field(description="When this worker paused.")
    seen_at: datetime = Field(description="When it last tried again and still could not work.")


class KindOut(BaseModel):
    kind: str = Field(description="embed, caption, faces... one task per asset and kind.")
    configured: bool = Field(
        description="This deployment processes the kind (false: tasks left from other settings)."
    )
    counts: dict[str, int] = Field(description="Tasks per state: pending, running, done, failed.")
    retrying: int = Field(description="Pending tasks that failed before and will be retried.")
    waiting_since: datetime | None = Field(
        description="When the oldest pending task was queued (or given back): work waiting long "
        "with no pause means no worker of this kind is running."
    )
    failures: list[FailureOut] = Field(description="The latest failed tasks, newest first.")
    paused: bool = Field(description="A worker of this kind cannot work (see pauses).")
    paused_reason: str | None = Field(description="The first pause's reason, for a one-line UI.")
    paused_since: datetime | None = Field(description="The earliest pause's start.")
    pauses: list[PauseOut]

    @classmethod
    def of(cls, k: KindStatus) -> KindOut:
        pauses = sorted(k.pauses, key=lambda p: p.since)
        return cls(
            kind=k.kind,
            configured=k.configured,
            counts=k.counts,
            retrying=k.retrying,
            waiting_since=k.waiting_since,
            failures=[
                FailureOut(
                    asset_id=f.asset_id, error=f.error, attempts=f.attempts, failed_at=f.failed_at
                )
                for f in k.failures
            ],
            paused=bool(pauses),
            paused_reason=pauses[0].reason if pauses else None,
            paused_since=pauses[0].since if pauses else None,
            pauses=[
                PauseOut(worker=p.worker, reason=p.reason, since=p.since, seen_at=p.seen_at)
                for p in pauses
            ],
        )


class StatusOut(BaseModel):
    ready: bool = Field(description="No kind is paused (the database answered: it was read).")
    processing: list[KindOut]
    running_jobs: list[JobOut] = Field(description="Long jobs running now, oldest first.")
    recent_jobs: list[JobOut] = Field(description="The latest jobs in any state, newest first.")
    indexed: int | None = Field(description="Vectors in the vector store; null: it cannot be read.")
    index_error: str | None = None
    models: list[ModelOut]

    @classmethod
    def of(cls, status: SystemStatus) -> StatusOut:
        lib = status.library
        kinds = [KindOut.of(k) for k in lib.kinds] if lib else []
        return cls(
            ready=not any(k.paused for k in kinds),
            processing=kinds,
            running_jobs=[JobOut.of(j) for j in lib.running_jobs] if lib else [],
            recent_jobs=[JobOut.of(j) for j in lib.recent_jobs] if lib else [],
            indexed=lib.indexed if lib else None,
            index_error=lib.index_error if lib else None,
            models=[ModelOut.of(m) for m in status.models],
        )


class ReadyOut(BaseModel):
    ready: bool
    reasons: list[str] = Field(description="Why not: empty when ready.")
    detail: str | None = Field(None, description="The reasons in one sentence (null when ready).")
