"""The native library API: assets, ingest, processing state, jobs, search, duplicates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from viewfinder.api.deps import library, services
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.params import DbInt, DbText
from viewfinder.api.responses import image_file
from viewfinder.api.schemas_library import (
    MAX_PEOPLE,
    MAX_TEXT_CHARS,
    MAX_TEXT_WORDS,
    AssetMetadataOut,
    AssetOut,
    AssetPage,
    CameraOut,
    DuplicateGroupOut,
    FolderImportIn,
    FolderNodeOut,
    FolderTreeOut,
    IngestedOut,
    JobOut,
    ObjectLabelOut,
    ProcessingOut,
    ReindexIn,
    SearchHitOut,
    SearchIn,
    SearchOut,
    TimelineBucketOut,
    TimelineOut,
    UrlIngestIn,
)
from viewfinder.api.server_folders import allowed_bucket, allowed_server_folder
from viewfinder.api.uploads import read_upload
from viewfinder.container import Services
from viewfinder.errors import InvalidInputError
from viewfinder.library.assets import AssetView, FileKind, FolderNode
from viewfinder.library.filters import SearchFilters
from viewfinder.library.ingest import clean_folder
from viewfinder.library.library import Library
from viewfinder.library.objects import object_labels
from viewfinder.library.processing import EMBED_TASK
from viewfinder.library.search import SearchResult, SearchSort
from viewfinder.library.words import words_of
from viewfinder.storage.s3_source import is_s3_url

router = APIRouter(
    prefix="/api/v1", tags=["library"], responses=error_responses(*ACCESS_STATUSES, 503)
)

LibraryDep = Annotated[Library, Depends(library)]
ServicesDep = Annotated[Services, Depends(services)]
MAX_FILES_PER_UPLOAD = 100


def _asset_out(view: AssetView, request: Request) -> AssetOut:
    return AssetOut.of(view.asset, request, view.processing)


# --- ingest ------------------------------------------------------------------------------------


@router.post(
    "/assets",
    status_code=status.HTTP_201_CREATED,
    response_model=list[IngestedOut],
    responses=error_responses(400, 413),
)
async def upload_assets(
    request: Request,
    svc: ServicesDep,
    files: Annotated[list[UploadFile], File(description="One or more image files.")],
    folder: Annotated[str, Form()] = "",
) -> list[IngestedOut]:
    """Store uploaded images (deduplicated by content); processing continues in the background."""
    lib = svc.require_library()
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise InvalidInputError(f"at most {MAX_FILES_PER_UPLOAD} files per request")
    payloads = [
        (f.filename or "upload", await read_upload(f, svc.settings.max_upload_bytes)) for f in files
    ]
    results = await run_in_threadpool(lib.ingest.ingest_many, payloads, folder)
    views = await run_in_threadpool(lib.assets.views, [r.asset.id for r in results])
    return [
        IngestedOut(asset=_asset_out(view, request), created=result.created)
        for view, result in zip(views, results, strict=True)
    ]


@router.post(
    "/assets/from-url",
    status_code=status.HTTP_201_CREATED,
    response_model=IngestedOut,
    responses=error_responses(400, 413),
)
def ingest_url(body: UrlIngestIn, request: Request, lib: LibraryDep) -> IngestedOut:
    """Download an image (public addresses only, as for analysis) and store it."""
    result = lib.ingest.ingest_url(body.url, body.folder)
    return IngestedOut(
        asset=_asset_out(lib.assets.get(result.asset.id), request), created=result.created
    )


@router.post(
    "/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=error_responses(400, 413),
)
def import_folder(body: FolderImportIn, lib: LibraryDep) -> JobOut:
    """Ingest every image under a server folder, or index ``s3://bucket/prefix`` in place, as a
    background job."""
    params: dict[str, object] = {"folder_prefix": clean_folder(body.folder_prefix)}
    if is_s3_url(body.path):
        location = allowed_bucket(body.path, lib.settings.import_buckets)
        params |= {"path": location.url, "copy": body.copy_originals}
    else:
        params["path"] = str(allowed_server_folder(body.path, lib.settings.import_roots))
    return JobOut.of(lib.jobs.submit("import_folder", params))


@router.post(
    "/reindex",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=error_responses(400, 413),
)
def reindex(body: ReindexIn, lib: LibraryDep) -> JobOut:
    """Re-index as a background job: bring the vector store in step with the stored embeddings,
    or (``reembed``) embed every image again, e.g. after changing the CLIP model."""
    return JobOut.of(lib.jobs.submit("reindex", {"reembed": body.reembed}))


# --- assets ------------------------------------------------------------------------------------


SortQuery = Annotated[
    Literal["id", "newest", "oldest"],
    Query(
        description="id: in the order they were added (the default); newest / oldest: by "
        "capture date (EXIF), else upload date, then id: a stable order for infinite scroll."
    ),
]
FolderQuery = Annotated[
    str | None,
    Query(description='Only this folder ("" the root); case-sensitive, see /folders/tree.'),
]


@router.get("/assets", response_model=AssetPage, responses=error_responses(400))
def list_assets(
    request: Request,
    lib: LibraryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
    folder: FolderQuery = None,
    include_subfolders: bool = True,
    captured_from: datetime | None = None,
    captured_to: datetime | None = None,
    sort: SortQuery = "id",
) -> AssetPage:
    assets, total = lib.assets.page(
        limit,
        offset,
        clean_folder(folder) if folder is not None else None,
        include_subfolders,
        captured_from,
        captured_to,
        sort,
    )
    return AssetPage(
        items=[AssetOut.of(a, request) for a in assets],
        total=total,
        limit=limit,
        offset=offset,
        sort=sort,
    )


@router.get("/timeline", response_model=TimelineOut, responses=error_responses(400))
def timeline(
    lib: LibraryDep,
    granularity: Annotated[Literal["month", "day"], Query()] = "month",
    sort: Annotated[
        Literal["newest", "oldest"], Query(description="The order of the buckets and offsets.")
    ] = "newest",
    folder: FolderQuery = None,
    include_subfolders: bool = True,
) -> TimelineOut:
    """Assets per month or day (UTC) of their capture date, else upload date: for a timeline
    scrubber. Each bucket's ``offset`` is where it starts in ``GET /api/v1/assets`` with the same
    ``sort`` and folder filter."""
    buckets = lib.assets.timeline(
        granularity, sort, clean_folder(folder) if folder is not None else None, include_subfolders
    )
    return TimelineOut(
        granularity=granularity,
        sort=sort,
        total=sum(b.count for b in buckets),
        buckets=[TimelineBucketOut(key=b.key, count=b.count, offset=b.offset) for b in buckets],
    )


def _folder_out(node: FolderNode) -> FolderNodeOut:
    return FolderNodeOut(
        name=node.name,
        path=node.path,
        count=node.count,
        total=node.total,
        children=[_folder_out(c) for c in node.children],
    )


@router.get("/folders/tree", response_model=FolderTreeOut)
def folder_tree(lib: LibraryDep) -> FolderTreeOut:
    """Every folder that holds images, as a tree from the root, with the images in each folder
    (``count``) and in it and below it (``total``). Paths compare case-sensitively: pass a
    node's ``path`` as the ``folder`` filter."""
    return FolderTreeOut(root=_folder_out(lib.assets.folder_tree()))


@router.get("/assets/{asset_id}", response_model=AssetOut, responses=error_responses(404))
def get_asset(asset_id: DbInt, request: Request, lib: LibraryDep) -> AssetOut:
    return _asset_out(lib.assets.get(asset_id), request)


@router.get(
    "/assets/{asset_id}/metadata", response_model=AssetMetadataOut, responses=error_responses(404)
)
def asset_metadata(asset_id: DbInt, request: Request, lib: LibraryDep) -> AssetMetadataOut:
    """The asset and what its original's EXIF says (camera, lens, exposure, GPS), for a photo
    viewer; read from the file's header on each call."""
    view, camera = lib.assets.metadata(asset_id)
    return AssetMetadataOut(
        asset=_asset_out(view, request),
        camera=CameraOut.model_validate(camera, from_attributes=True),
    )


@router.delete(
    "/assets/{asset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
def delete_asset(asset_id: DbInt, lib: LibraryDep) -> Response:
    lib.delete_asset(asset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _file(lib: Library, asset_id: int, which: FileKind) -> Response:
    """The stored bytes: streamed from disk for the local store, read whole from S3."""
    stored = lib.assets.stored_file(asset_id, which)
    # Immutable even in place: a bucket object is served only while it hashes to the asset, and
    # an asset id is never given to another image.
    headers = {"Cache-Control": "public, max-age=31536000, immutable"}
    if stored.path is not None:
        return FileResponse(stored.path, media_type=stored.media_type, headers=headers)
    return Response(stored.read(), media_type=stored.media_type, headers=headers)


@router.get("/assets/{asset_id}/file", name="asset_file", **image_file("The original file."))
def asset_file(asset_id: DbInt, lib: LibraryDep) -> Response:
    return _file(lib, asset_id, "file")


@router.get(
    "/assets/{asset_id}/thumbnail",
    name="asset_thumbnail",
    **image_file("A JPEG at most 256 px on its longer side.", "image/jpeg"),
)
def asset_thumbnail(asset_id: DbInt, lib: LibraryDep) -> Response:
    return _file(lib, asset_id, "thumbnail")


@router.get(
    "/assets/{asset_id}/preview",
    name="asset_preview",
    **image_file("A JPEG at most 1024 px on its longer side.", "image/jpeg"),
)
def asset_preview(asset_id: DbInt, lib: LibraryDep) -> Response:
    return _file(lib, asset_id, "preview")


# --- processing and jobs -----------------------------------------------------------------------


@router.get("/jobs/processing", response_model=ProcessingOut)
def processing_state(lib: LibraryDep) -> ProcessingOut:
    """How many assets are pending, running, done or failed embedding, and how many are indexed."""
    counts = lib.assets.processing_counts(EMBED_TASK)
    return ProcessingOut(kind=EMBED_TASK, counts=counts, indexed=lib.index.count())


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(lib: LibraryDep, kind: DbText | None = None) -> list[JobOut]:
    return [JobOut.of(j) for j in lib.jobs.recent(kind)]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=error_responses(404))
def get_job(job_id: DbText, lib: LibraryDep) -> JobOut:
    return JobOut.of(lib.jobs.get(job_id))


# --- search ------------------------------------------------------------------------------------


def _hits(
    request: Request, result: SearchResult, k: int, offset: int, sort: SearchSort
) -> SearchOut:
    return SearchOut(
        hits=[
            SearchHitOut(
                score=h.score,
                similarity=h.similarity,
                caption_match=h.caption_match,
                text_match=h.text_match,
                asset=AssetOut.of(h.asset, request),
            )
            for h in result.hits
        ],
        k=k,
        offset=offset,
        reason=result.empty_reason,
        message=result.empty_message,
        sort=result.sort or sort,
        total=result.total,
        candidates=result.candidates,
    )


def _text_words(text: str | None) -> tuple[str, ...]:
    words = tuple(words_of(text or ""))
    if len(words) > MAX_TEXT_WORDS:
        raise InvalidInputError(f"'text' may require at most {MAX_TEXT_WORDS} words")
    return words


def _filters(body: SearchIn) -> SearchFilters:
    return SearchFilters(
        folder=clean_folder(body.folder) if body.folder is not None else None,
        include_subfolders=body.include_subfolders,
        captured_from=body.captured_from,
        captured_to=body.captured_to,
        text_words=_text_words(body.text),
        person_ids=tuple(body.person_ids),
        collection_id=body.collection_id,
        any_person_ids=tuple(body.any_person_ids),
        exclude_person_ids=tuple(body.exclude_person_ids),
        only_people=body.only_people,
        objects=object_labels(body.objects),
    )


@router.post("/search", response_model=SearchOut, responses=error_responses(400, 404, 413))
def search(body: SearchIn, request: Request, lib: LibraryDep) -> SearchOut:
    """Search by text (``query``) or by a stored image (``asset_id``), not both; or by filters
    alone (``text``, ``objects``, people... without either), newest first."""
    if body.query is not None and body.asset_id is not None:
        raise InvalidInputError("give one of 'query' (text) or 'asset_id', not both")
    if body.query is None and body.asset_id is None:
        return _filters_only(body, request, lib)
    if body.query is not None:
        vector = lib.search.text_vector(body.query)
    else:
        assert body.asset_id is not None
        vector = lib.search.asset_vector(body.asset_id)
    result = lib.search.find(
        vector,
        k=body.k,
        offset=body.offset,
        filters=_filters(body),
        min_score=body.min_score,
        exclude=body.asset_id,
        text=body.query,
        sort=body.sort,
        candidates=body.candidates,
    )
    return _hits(request, result, body.k, body.offset, body.sort)


def _filters_only(body: SearchIn, request: Request, lib: Library) -> SearchOut:
    """A search with neither ``query`` nor ``asset_id``: the images that pass the filters (the
    words of their text, objects, people...), newest first."""
    result = lib.search.find_filtered(
        _filters(body),
        k=body.k,
        offset=body.offset,
        sort=body.sort,
        min_score=body.min_score,
        candidates=body.candidates,
    )
    return _hits(request, result, body.k, body.offset, body.sort)


@router.post("/search/image", response_model=SearchOut, responses=error_responses(400, 404, 413))
async def search_by_upload(
    request: Request,
    svc: ServicesDep,
    file: Annotated[UploadFile, File(description="The query image.")],
    k: Annotated[int, Form(ge=1, le=1000)] = 10,
    offset: Annotated[DbInt, Form(ge=0)] = 0,
    folder: Annotated[str | None, Form()] = None,
    include_subfolders: Annotated[bool, Form()] = True,
    captured_from: Annotated[datetime | None, Form()] = None,
    captured_to: Annotated[datetime | None, Form()] = None,
    min_score: Annotated[float | None, Form(ge=-1, le=1)] = None,
    person_ids: Annotated[
        list[DbInt] | None,
        Form(
            max_length=MAX_PEOPLE,
            description="Only images showing all these people (repeat the field).",
        ),
    ] = None,
    collection_id: Annotated[
        DbInt | None, Form(description="Only members of this collection.")
    ] = None,
    text: Annotated[
        str | None,
        Form(
            max_length=MAX_TEXT_CHARS,
            description="Only images whose text (OCR) has all these words.",
        ),
    ] = None,
    any_person_ids: Annotated[
        list[DbInt] | None,
        Form(
            max_length=MAX_PEOPLE,
            description="Only images showing at least one of these people (repeat the field).",
        ),
    ] = None,
    exclude_person_ids: Annotated[
        list[DbInt] | None,
        Form(
            max_length=MAX_PEOPLE,
            description="Only images showing none of these people (repeat the field).",
        ),
    ] = None,
    only_people: Annotated[
        bool, Form(description="No one else in the image (see POST /api/v1/search).")
    ] = False,
    objects: Annotated[
        list[str] | None,
        Form(
            max_length=10,
            description='Only images with all these objects ("dog"; repeat the field).',
        ),
    ] = None,
    sort: Annotated[SearchSort, Form(description="relevance, newest or oldest.")] = "relevance",
    candidates: Annotated[
        int | None, Form(ge=1, le=1000, description="How many best hits a date sort orders.")
    ] = None,
) -> SearchOut:
    """Images similar to an uploaded one; the filters of ``POST /api/v1/search`` as form fields."""
    lib = svc.require_library()
    data = await read_upload(file, svc.settings.max_upload_bytes)
    vector = await run_in_threadpool(lib.search.image_vector, data)
    body = SearchIn(
        k=k,
        offset=offset,
        folder=folder,
        include_subfolders=include_subfolders,
        captured_from=captured_from,
        captured_to=captured_to,
        min_score=min_score,
        person_ids=person_ids or [],
        collection_id=collection_id,
        text=text,
        any_person_ids=any_person_ids or [],
        exclude_person_ids=exclude_person_ids or [],
        only_people=only_people,
        objects=objects or [],
        sort=sort,
        candidates=candidates,
    )
    result = await run_in_threadpool(
        lambda: lib.search.find(
            vector,
            k=k,
            offset=offset,
            filters=_filters(body),
            min_score=min_score,
            sort=sort,
            candidates=candidates,
        )
    )
    return _hits(request, result, k, offset, sort)


@router.get("/objects", response_model=list[ObjectLabelOut])
def objects_in_library(lib: LibraryDep) -> list[ObjectLabelOut]:
    """The objects detected in the library's images (COCO labels), each with how many images
    have it, most first: the choices of the search filter ``objects``."""
    return [ObjectLabelOut(label=label, count=n) for label, n in lib.objects.label_counts()]


@router.get("/duplicates", response_model=list[DuplicateGroupOut])
def duplicates(
    lib: LibraryDep,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> list[DuplicateGroupOut]:
    """Groups of near-duplicate assets (re-encoded or resized copies)."""
    threshold = lib.settings.duplicate_min_score if min_score is None else min_score
    return [
        DuplicateGroupOut(asset_ids=g.asset_ids, min_score=g.min_score)
        for g in lib.duplicates.groups(threshold)
    ]
