"""Seed 004's organizer surface: ``POST /images``, ``GET /images``, ``GET /clusters``,
``GET /health``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from viewfinder.api.deps import library, services
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.params import DbInt
from viewfinder.api.uploads import read_upload
from viewfinder.db.models import Asset
from viewfinder.errors import OverloadedError
from viewfinder.library.library import Library

router = APIRouter(tags=["organizer (seed 004)"])

CLUSTER_WAIT_S = 120.0
LIST_PAGE = 1000  # rows read per query while listing every image


class ImageOut(BaseModel):
    id: int
    original_filename: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    created_at: datetime
    image_url: str
    storage_path: str


class ClusterOut(BaseModel):
    cluster_id: int
    centroid: list[float]
    image_ids: list[int]


def _image(lib: Library, request: Request, asset: Asset) -> ImageOut:
    return ImageOut(
        id=asset.id,
        original_filename=asset.original_filename,
        content_type=asset.content_type,
        size_bytes=asset.size_bytes,
        width=asset.width,
        height=asset.height,
        created_at=asset.created_at,
        image_url=str(request.url_for("asset_file", asset_id=asset.id)),
        storage_path=lib.originals.uri(asset.sha256, asset.original_uri),
    )


@router.post(
    "/images",
    status_code=status.HTTP_201_CREATED,
    response_model=ImageOut,
    responses=error_responses(*ACCESS_STATUSES, 400, 413, 503),
)
async def upload_image(
    request: Request, file: Annotated[UploadFile, File(description="An image file.")]
) -> ImageOut:
    """Store an image and return its metadata; its embedding is computed in the background."""
    svc = services(request)
    lib = svc.require_library()
    data = await read_upload(file, svc.settings.max_upload_bytes)
    result = await run_in_threadpool(lib.ingest.ingest_bytes, data, file.filename or "upload")
    return _image(lib, request, result.asset)


@router.get(
    "/images", response_model=list[ImageOut], responses=error_responses(*ACCESS_STATUSES, 503)
)
def list_images(
    request: Request,
    limit: Annotated[
        DbInt | None, Query(ge=1, description="At most this many images (default: all).")
    ] = None,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
) -> list[ImageOut]:
    """Every stored image, oldest first, as the seed lists them; ``limit`` / ``offset`` page."""
    lib = library(request)
    assets: list[Asset] = []
    while limit is None or len(assets) < limit:
        want = LIST_PAGE if limit is None else min(LIST_PAGE, limit - len(assets))
        page, _ = lib.assets.page(want, offset + len(assets))
        assets.extend(page)
        if len(page) < want:
            break
    return [_image(lib, request, a) for a in assets]


@router.get(
    "/clusters", response_model=list[ClusterOut], responses=error_responses(*ACCESS_STATUSES, 503)
)
def clusters(request: Request) -> list[ClusterOut]:
    """MiniBatchKMeans over every image's CLIP embedding (KMEANS_CLUSTERS, KMEANS_BATCH_SIZE);
    waits for images still being embedded so every image is in exactly one cluster."""
    lib = library(request)
    if not lib.worker.drain(CLUSTER_WAIT_S):
        raise OverloadedError("images are still being embedded; retry shortly", retry_after_s=5)
    return [
        ClusterOut(cluster_id=c.cluster_id, centroid=c.centroid, image_ids=c.image_ids)
        for c in lib.clusters.clusters()
    ]


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
