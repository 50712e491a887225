"""Operational views: which models are loaded and how they batch, what the background work is
doing (``/api/v1/status``), and whether the deployment does its work (``GET /ready``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from viewfinder.api.deps import services
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.schemas_status import ModelOut, ReadyOut, StatusOut
from viewfinder.container import Services

router = APIRouter(prefix="/api/v1", tags=["system"], responses=error_responses(*ACCESS_STATUSES))
# Public like GET /health (see api/auth.py): monitors and orchestrators ask without a key.
probes = APIRouter(tags=["system"])
ServicesDep = Annotated[Services, Depends(services)]


@router.get("/models", response_model=list[ModelOut])
def models(svc: ServicesDep) -> list[ModelOut]:
    """Every configured model: whether a local copy is available, whether it is loaded in this
    process, and its batching so far."""
    return [ModelOut.of(m) for m in svc.model_status()]


@router.get("/status", response_model=StatusOut)
def status(svc: ServicesDep) -> StatusOut:
    """The background work of the whole deployment (read from the database, so workers in other
    processes count): per task kind the tasks in each state, the latest failures with their
    errors, whether the kind is paused and why; running and recent jobs with their progress; the
    vectors indexed; and the models of this process."""
    return StatusOut.of(svc.status())


@probes.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready: `reasons` says why."}},
)
async def ready(svc: ServicesDep) -> JSONResponse:
    """200 when the database answers and no background work is paused; 503 with the reasons
    otherwise (e.g. "embed processing paused since ...: model not available ..."). ``GET /health``
    only says the process is up."""
    reasons = await run_in_threadpool(svc.readiness)
    body = ReadyOut(ready=not reasons, reasons=reasons, detail="; ".join(reasons) or None)
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200)
