"""Collections (named sets of assets) and the classifiers trained on them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field, field_validator

from viewfinder.api.deps import library
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.params import DbInt, DbText
from viewfinder.api.schemas_library import AssetOut, JobOut
from viewfinder.api.server_folders import allowed_server_folder
from viewfinder.library.collections import CollectionView
from viewfinder.library.library import Library

router = APIRouter(
    prefix="/api/v1",
    tags=["collections and classifiers"],
    responses=error_responses(*ACCESS_STATUSES, 503),
)
LibraryDep = Annotated[Library, Depends(library)]


class CollectionIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: DbText | None = Field(None, max_length=4000)

    @field_validator("name")
    @classmethod
    def _clean_name(cls, value: str) -> str:
        name = value.strip()
        if not name:
            raise ValueError("must not be blank")
        if any(ord(c) < 32 for c in name):
            raise ValueError("must not contain control characters")
        return name


class ClassifierOut(BaseModel):
    version: str
    precision: float | None
    recall: float | None


class CollectionOut(BaseModel):
    id: int
    name: str
    description: str | None
    size: int
    created_at: datetime
    classifier: ClassifierOut | None


class AssetIdsIn(BaseModel):
    asset_ids: list[DbInt] = Field(min_length=1, max_length=10000)


class TrainIn(BaseModel):
    collection_ids: list[int] | None = Field(None, description="Default: every collection.")
    source: DbText | None = Field(
        None,
        description="Import seed 000 training data from this URL, or from this server folder "
        "inside VIEWFINDER_IMPORT_ROOTS, instead.",
    )
    queue: bool = Field(True, description="Run as a background job (true) or inline (false).")


def _out(view: CollectionView) -> CollectionOut:
    promoted = view.classifier
    classifier = None
    if promoted is not None:
        classifier = ClassifierOut(
            version=promoted.version,
            precision=promoted.metrics.get("precision"),
            recall=promoted.metrics.get("recall"),
        )
    return CollectionOut(
        id=view.collection.id,
        name=view.collection.name,
        description=view.collection.description,
        size=view.size,
        created_at=view.collection.created_at,
        classifier=classifier,
    )


@router.post(
    "/collections",
    status_code=status.HTTP_201_CREATED,
    response_model=CollectionOut,
    responses=error_responses(400, 409, 413),
)
def create_collection(body: CollectionIn, lib: LibraryDep) -> CollectionOut:
    return _out(lib.collections.create(body.name, body.description))


@router.get("/collections", response_model=list[CollectionOut])
def list_collections(lib: LibraryDep) -> list[CollectionOut]:
    return [_out(view) for view in lib.collections.all()]


@router.get(
    "/collections/{collection_id}", response_model=CollectionOut, responses=error_responses(404)
)
def get_collection(collection_id: DbInt, lib: LibraryDep) -> CollectionOut:
    return _out(lib.collections.get(collection_id))


@router.delete(
    "/collections/{collection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
def delete_collection(collection_id: DbInt, lib: LibraryDep) -> Response:
    lib.collections.delete(collection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/collections/{collection_id}/assets",
    response_model=list[AssetOut],
    responses=error_responses(404),
)
def collection_assets(
    collection_id: DbInt,
    request: Request,
    lib: LibraryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
) -> list[AssetOut]:
    members = lib.collections.members(collection_id, limit, offset)
    return [AssetOut.of(a, request) for a in members]


@router.post("/collections/{collection_id}/assets", responses=error_responses(400, 404, 413))
def add_assets(collection_id: DbInt, body: AssetIdsIn, lib: LibraryDep) -> dict[str, int]:
    """Add assets to the collection (already-present ones are ignored)."""
    added, size = lib.collections.add(collection_id, body.asset_ids)
    return {"added": added, "size": size}


@router.post("/collections/{collection_id}/assets/remove", responses=error_responses(400, 404, 413))
def remove_assets(collection_id: DbInt, body: AssetIdsIn, lib: LibraryDep) -> dict[str, int]:
    removed, size = lib.collections.remove(collection_id, body.asset_ids)
    return {"removed": removed, "size": size}


@router.delete(
    "/collections/{collection_id}/assets/{asset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
def remove_asset(collection_id: DbInt, asset_id: DbInt, lib: LibraryDep) -> Response:
    lib.collections.remove(collection_id, [asset_id], must_exist=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- classifiers --------------------------------------------------------------------------------


@router.post(
    "/classifiers/train",
    response_model=None,
    responses={
        202: {"model": JobOut, "description": "Queued (`queue`): the job to follow."},
        **error_responses(400, 404, 413),
    },
)
def train_classifiers(body: TrainIn, lib: LibraryDep, response: Response) -> dict[str, Any]:
    """Train every (or the given) collection's classifier; ``queue`` runs it as a job."""
    source = body.source
    if source is not None and not source.startswith(("http://", "https://")):
        source = str(allowed_server_folder(source, lib.settings.import_roots))
    if body.queue:
        params = {"collection_ids": body.collection_ids, "source": source}
        job = lib.jobs.submit("train_classifiers", params)
        response.status_code = status.HTTP_202_ACCEPTED
        return JobOut.of(job).model_dump(mode="json")
    reports = lib.trainer.train_from(source, body.collection_ids)
    return {"collections": [asdict(r) for r in reports]}


@router.get("/classifiers/report", responses=error_responses(404))
def training_report(lib: LibraryDep) -> Any:
    """The report of the last training run (per collection: size, precision, recall, version)."""
    return lib.trainer.report()
