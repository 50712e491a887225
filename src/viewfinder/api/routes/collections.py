"""Collections (named sets of assets) and the classifiers trained on them."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import IntegrityError

from viewfinder.api.deps import library, services
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.params import DbInt, DbText
from viewfinder.api.schemas_library import AssetOut, JobOut
from viewfinder.api.server_folders import allowed_server_folder
from viewfinder.classifiers.training import REPORT_FILE
from viewfinder.container import Services
from viewfinder.db import collections as repo
from viewfinder.db.models import Collection
from viewfinder.errors import ConflictError, NotFoundError
from viewfinder.library.library import Library

router = APIRouter(
    prefix="/api/v1",
    tags=["collections and classifiers"],
    responses=error_responses(*ACCESS_STATUSES, 503),
)
LibraryDep = Annotated[Library, Depends(library)]
ServicesDep = Annotated[Services, Depends(services)]


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


def _out(svc: Services, collection: Collection, size: int) -> CollectionOut:
    promoted = svc.classifiers.get(collection.id)
    classifier = None
    if promoted is not None:
        classifier = ClassifierOut(
            version=promoted.version,
            precision=promoted.metrics.get("precision"),
            recall=promoted.metrics.get("recall"),
        )
    return CollectionOut(
        id=collection.id,
        name=collection.name,
        description=collection.description,
        size=size,
        created_at=collection.created_at,
        classifier=classifier,
    )


def _collection(lib: Library, collection_id: int) -> tuple[Collection, int]:
    with lib.sessions() as session:
        collection = repo.get_collection(session, collection_id)
        if collection is None:
            raise NotFoundError(f"collection {collection_id} does not exist")
        return collection, repo.member_count(session, collection_id)


@router.post(
    "/collections",
    status_code=status.HTTP_201_CREATED,
    response_model=CollectionOut,
    responses=error_responses(400, 409, 413),
)
def create_collection(body: CollectionIn, svc: ServicesDep) -> CollectionOut:
    lib = svc.require_library()
    try:
        with lib.sessions.begin() as session:
            collection = repo.create_collection(session, body.name, body.description)
    except IntegrityError:
        raise ConflictError(f"a collection named {body.name!r} already exists") from None
    return _out(svc, collection, 0)


@router.get("/collections", response_model=list[CollectionOut])
def list_collections(svc: ServicesDep) -> list[CollectionOut]:
    lib = svc.require_library()
    with lib.sessions() as session:
        return [_out(svc, c, n) for c, n in repo.list_collections(session)]


@router.get(
    "/collections/{collection_id}", response_model=CollectionOut, responses=error_responses(404)
)
def get_collection(collection_id: DbInt, svc: ServicesDep) -> CollectionOut:
    return _out(svc, *_collection(svc.require_library(), collection_id))


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
    _collection(lib, collection_id)
    with lib.sessions() as session:
        return [
            AssetOut.of(a, request) for a in repo.members(session, collection_id, limit, offset)
        ]


@router.post("/collections/{collection_id}/assets", responses=error_responses(400, 404, 413))
def add_assets(collection_id: DbInt, body: AssetIdsIn, lib: LibraryDep) -> dict[str, int]:
    """Add assets to the collection (already-present ones are ignored)."""
    _collection(lib, collection_id)
    with lib.sessions.begin() as session:
        unknown = sorted(set(body.asset_ids) - repo.existing_asset_ids(session, body.asset_ids))
        if unknown:
            raise NotFoundError(f"assets {unknown[:20]} do not exist")
        added = repo.add_members(session, collection_id, body.asset_ids)
    return {"added": added, "size": _collection(lib, collection_id)[1]}


@router.post("/collections/{collection_id}/assets/remove", responses=error_responses(400, 404, 413))
def remove_assets(collection_id: DbInt, body: AssetIdsIn, lib: LibraryDep) -> dict[str, int]:
    _collection(lib, collection_id)
    with lib.sessions.begin() as session:
        removed = repo.remove_members(session, collection_id, body.asset_ids)
    return {"removed": removed, "size": _collection(lib, collection_id)[1]}


@router.delete(
    "/collections/{collection_id}/assets/{asset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
def remove_asset(collection_id: DbInt, asset_id: DbInt, lib: LibraryDep) -> Response:
    _collection(lib, collection_id)
    with lib.sessions.begin() as session:
        if not repo.remove_members(session, collection_id, [asset_id]):
            raise NotFoundError(f"asset {asset_id} is not in collection {collection_id}")
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
def training_report(svc: ServicesDep) -> Any:
    """The report of the last training run (per collection: size, precision, recall, version)."""
    path = svc.classifiers.directory / REPORT_FILE
    if not path.is_file():
        raise NotFoundError("no classifier has been trained yet")
    return json.loads(path.read_text("utf-8"))
