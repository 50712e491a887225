"""Operational views of the process: which models are loaded and how they batch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from viewfinder.api.deps import services
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.container import Services

router = APIRouter(prefix="/api/v1", tags=["system"], responses=error_responses(*ACCESS_STATUSES))


class ModelOut(BaseModel):
    name: str
    source: str
    loaded: bool
    batches_run: int
    items_run: int
    mean_batch: float


@router.get("/models", response_model=list[ModelOut])
def models(svc: Annotated[Services, Depends(services)]) -> list[ModelOut]:
    """Every configured model, whether it is loaded, and its batching so far."""
    loaded = {name: svc.pool.peek(name) for name in svc.pool.loaded()}
    out = []
    for name, entry in svc.models.items():
        model = loaded.get(name)
        batches = model.batcher.batches_run if model else 0
        items = model.batcher.items_run if model else 0
        out.append(
            ModelOut(
                name=name,
                source=entry.source.spec,
                loaded=model is not None,
                batches_run=batches,
                items_run=items,
                mean_batch=items / batches if batches else 0.0,
            )
        )
    return out
