"""Seed 002's search surface: ``/api/demo_backend_v2/image_search/search`` (text) and
``.../search_by_image`` (upload), answering ``[{distance, folder, s3_path, image_url}]``."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from viewfinder.api.deps import library, services
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.uploads import read_upload
from viewfinder.library.filters import SearchFilters
from viewfinder.library.folders import detect_folder
from viewfinder.library.ingest import clean_folder
from viewfinder.library.library import Library
from viewfinder.library.search import SearchHit

router = APIRouter(
    prefix="/api/demo_backend_v2/image_search",
    tags=["search (seed 002)"],
    responses=error_responses(*ACCESS_STATUSES, 503),
)


class TextSearchIn(BaseModel):
    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=1000)
    folder: str | None = Field("", description="Only this folder; empty: detect from the query.")


class Seed002Hit(BaseModel):
    distance: float = Field(description="L2 distance of unit embeddings: 0 identical .. 2 opposite")
    folder: str
    s3_path: str
    image_url: str


def _render(lib: Library, request: Request, hits: list[SearchHit]) -> list[Seed002Hit]:
    return [
        Seed002Hit(
            # |a - b| of unit vectors = sqrt(2 - 2 cos); clamp float noise below zero
            distance=math.sqrt(max(0.0, 2.0 - 2.0 * h.similarity)),
            folder=h.asset.folder,
            s3_path=lib.originals.uri(h.asset.sha256, h.asset.original_uri),
            image_url=str(request.url_for("asset_file", asset_id=h.asset.id)),
        )
        for h in hits
    ]


@router.post("/search", response_model=list[Seed002Hit], responses=error_responses(400, 413))
def search_text(body: TextSearchIn, request: Request) -> list[Seed002Hit]:
    """Text to image; ``folder`` filters, or is detected from the query when empty."""
    lib = library(request)
    folder = clean_folder(body.folder) if body.folder else None
    if folder is None:
        folder = detect_folder(body.query, lib.assets.folders())
    vector = lib.search.text_vector(body.query)
    hits = lib.search.search(vector, k=body.k, filters=SearchFilters(folder=folder))
    return _render(lib, request, hits)


@router.post(
    "/search_by_image", response_model=list[Seed002Hit], responses=error_responses(400, 413)
)
async def search_image(
    request: Request,
    file: Annotated[UploadFile, File(description="The query image.")],
    k: Annotated[int | None, Query(ge=1, le=1000)] = None,
    k_form: Annotated[int | None, Form(alias="k", ge=1, le=1000)] = None,
) -> list[Seed002Hit]:
    """Image to image. ``k`` may come as a query parameter (as documented) or a form field (as
    the seed's curl example sends it); default 5."""
    svc = services(request)
    lib = svc.require_library()
    data = await read_upload(file, svc.settings.max_upload_bytes)
    vector = await run_in_threadpool(lib.search.image_vector, data)
    count = k or k_form or 5
    hits = await run_in_threadpool(lambda: lib.search.search(vector, k=count))
    return _render(lib, request, hits)
