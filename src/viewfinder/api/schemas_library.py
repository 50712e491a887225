"""Wire models of the native library API (``/api/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field
from sqlalchemy import inspect

from viewfinder.api.params import DbInt, DbText
from viewfinder.db.models import Asset, AssetObject, Job
from viewfinder.library.search import SearchSort

# People a search filter may name in each list.
MAX_PEOPLE = 20


# The longest ``text`` a search may require of images, and the most words in it.
MAX_TEXT_CHARS = 1000
MAX_TEXT_WORDS = 20


class ObjectOut(BaseModel):
    """One object detected in the image (a COCO label), its box in the original's pixels."""

    label: str = Field(description='A COCO label: "dog", "cat", "car", "person"...')
    score: float = Field(description="The detector's confidence, 0..1.")
    box: tuple[float, float, float, float] = Field(description="[x1, y1, x2, y2] in pixels.")


class AssetOut(BaseModel):
    id: int
    sha256: str
    original_filename: str
    folder: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    captured_at: datetime | None
    created_at: datetime
    caption: str | None
    text: str | None = Field(
        None,
        description="The text read in the image (OCR), its lines in reading order one per row; "
        '"" when it has none, null until it is read (or when OCR is off).',
    )
    # Where the original is read when it was indexed in place (s3://bucket/key); None: stored.
    original_uri: str | None = None
    file_url: str
    thumbnail_url: str
    preview_url: str
    processing: dict[str, str] = Field(default_factory=dict)
    objects: list[ObjectOut] = Field(
        default_factory=list,
        description="Objects detected in the image, best first (empty until the objects task "
        "has run, and when VIEWFINDER_OBJECTS is off).",
    )
    object_labels: list[str] = Field(
        default_factory=list, description="The distinct labels of ``objects``, sorted."
    )

    @classmethod
    def of(
        cls, asset: Asset, request: Request, processing: dict[str, str] | None = None
    ) -> AssetOut:
        return cls(
            id=asset.id,
            sha256=asset.sha256,
            original_filename=asset.original_filename,
            folder=asset.folder,
            content_type=asset.content_type,
            size_bytes=asset.size_bytes,
            width=asset.width,
            height=asset.height,
            captured_at=asset.captured_at,
            created_at=asset.created_at,
            caption=asset.caption,
            text=asset.text,
            original_uri=asset.original_uri,
            file_url=str(request.url_for("asset_file", asset_id=asset.id)),
            thumbnail_url=str(request.url_for("asset_thumbnail", asset_id=asset.id)),
            preview_url=str(request.url_for("asset_preview", asset_id=asset.id)),
            processing=processing or {},
            objects=[
                ObjectOut(label=o.label, score=o.score, box=(o.x1, o.y1, o.x2, o.y2))
                for o in _loaded_objects(asset)
            ],
            object_labels=sorted({o.label for o in _loaded_objects(asset)}),
        )


def _loaded_objects(asset: Asset) -> list[AssetObject]:
    """The asset's objects as loaded with it; none when they were not (never a lazy load)."""
    return [] if "objects" in inspect(asset).unloaded else list(asset.objects)


class CameraOut(BaseModel):
    """What the camera wrote in the original's EXIF; null where it wrote nothing."""

    format: str | None = Field(description="The file format as decoded: JPEG, PNG, WEBP...")
    captured_at: datetime | None = Field(description="DateTimeOriginal, with its offset if any.")
    camera_make: str | None
    camera_model: str | None
    lens: str | None
    exposure_time: str | None = Field(description='Seconds: "1/250" or "2.5".')
    f_number: float | None
    iso: int | None
    focal_length_mm: float | None
    focal_length_35mm: int | None
    flash_fired: bool | None
    orientation: int | None = Field(description="EXIF orientation 1-8 (1: upright).")
    software: str | None
    latitude: float | None = Field(description="GPS, decimal degrees (south negative).")
    longitude: float | None = Field(description="GPS, decimal degrees (west negative).")


class AssetMetadataOut(BaseModel):
    asset: AssetOut
    camera: CameraOut


class IngestedOut(BaseModel):
    asset: AssetOut
    created: bool = Field(description="false when the same bytes were already an asset")


class AssetPage(BaseModel):
    items: list[AssetOut]
    total: int
    limit: int
    offset: int
    sort: str = Field("id", description="The order of the pages: id, newest or oldest.")


class TimelineBucketOut(BaseModel):
    key: str = Field(description='"2024-05" (month) or "2024-05-31" (day), in UTC.')
    count: int
    offset: int = Field(
        description="Where the bucket's first asset is in GET /api/v1/assets with the same sort "
        "and folder: the offset to jump to."
    )


class TimelineOut(BaseModel):
    granularity: str
    sort: str
    total: int
    buckets: list[TimelineBucketOut]


class FolderNodeOut(BaseModel):
    name: str = Field(description='The last path segment ("" for the root).')
    path: str = Field(
        description='The value for the `folder` filter: "/"-separated, "" the root. Compared '
        'exactly: "Nature" and "nature" are two folders.'
    )
    count: int = Field(description="Assets directly in this folder.")
    total: int = Field(description="Assets in this folder and every folder below it.")
    children: list[FolderNodeOut]


class FolderTreeOut(BaseModel):
    case_sensitive: bool = Field(
        True, description="Folder paths and the `folder` filter compare case-sensitively."
    )
    root: FolderNodeOut


class UrlIngestIn(BaseModel):
    url: str
    folder: str = ""


class FolderImportIn(BaseModel):
    path: DbText = Field(
        description="A folder on the server, inside VIEWFINDER_IMPORT_ROOTS, or "
        "s3://bucket/prefix for a bucket in VIEWFINDER_IMPORT_BUCKETS (indexed in place)."
    )
    folder_prefix: str = ""
    copy_originals: bool = Field(
        False,
        description="s3:// only: copy the originals into Viewfinder's storage instead of "
        "reading them from the bucket.",
    )


class JobOut(BaseModel):
    id: str
    kind: str
    state: str
    total: int
    done: int
    failed: int
    error: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls.model_validate(job, from_attributes=True)


class JobAcceptedOut(BaseModel):
    """202 from a route that can also run inline: the job that will do the work."""

    job_id: str
    job: JobOut


class ProcessingOut(BaseModel):
    kind: str
    counts: dict[str, int]
    indexed: int


class ReindexIn(BaseModel):
    reembed: bool = Field(
        False,
        description="Embed every image again (a new CLIP model); false: only sync the vector "
        "store with the stored embeddings.",
    )


class SearchIn(BaseModel):
    query: str | None = Field(None, description="Text to search for (CLIP text tower).")
    text: str | None = Field(
        None,
        max_length=MAX_TEXT_CHARS,
        description="Only images whose text (read by OCR) has all these words, whole and "
        'case-blind ("harbour 1987"). Alone (no query, no asset_id): those images, newest '
        "first (oldest with sort=oldest), each with score and text_match 1.",
    )
    asset_id: DbInt | None = Field(None, description="Find images similar to this asset.")
    k: int = Field(10, ge=1, le=1000)
    offset: DbInt = Field(0, ge=0)
    folder: str | None = None
    include_subfolders: bool = True
    captured_from: datetime | None = None
    captured_to: datetime | None = None
    min_score: float | None = Field(None, ge=-1, le=1)
    person_ids: list[DbInt] = Field(
        default_factory=list,
        max_length=MAX_PEOPLE,
        description="Only images showing all these people.",
    )
    collection_id: DbInt | None = Field(None, description="Only members of this collection.")
    any_person_ids: list[DbInt] = Field(
        default_factory=list,
        max_length=MAX_PEOPLE,
        description="Only images showing at least one of these people.",
    )
    exclude_person_ids: list[DbInt] = Field(
        default_factory=list,
        max_length=MAX_PEOPLE,
        description="Only images showing none of these people.",
    )
    only_people: bool = Field(
        False,
        description="No one else in the image: every face named as someone is one of "
        "person_ids / any_person_ids (one of them required), and no recognisable face is "
        "unnamed (faces too small or blurred to recognise are ignored).",
    )
    objects: list[str] = Field(
        default_factory=list,
        max_length=10,
        description='Only images in which all these objects were detected: COCO labels ("dog", '
        '"cat", "car"; plurals and case are forgiven, "Dogs" is "dog"). See GET /api/v1/objects.',
    )
    sort: SearchSort = Field(
        "relevance",
        description="relevance (best first), or newest / oldest: the candidates that pass the "
        "filters and min_score, by capture date (else upload date), then id.",
    )
    candidates: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="A date sort orders this many of the best hits by relevance (default 100, "
        "or every hit reaching min_score up to 1000 when min_score is given).",
    )


class SearchHitOut(BaseModel):
    score: float = Field(
        description="similarity + 0.1 x caption_match + 0.3 x text_match squared: the ranking key"
    )
    similarity: float = Field(description="cosine similarity of the CLIP embeddings")
    caption_match: float = Field(description="fraction of the query's words in the caption")
    text_match: float = Field(
        0.0, description="fraction of the query's words in the text read in the image (OCR)"
    )
    asset: AssetOut


class SearchOut(BaseModel):
    hits: list[SearchHitOut]
    k: int
    offset: int
    reason: str | None = Field(
        None,
        description="Why there are no hits, when known (null when there are): nothing_indexed "
        "(no image has a vector yet), no_match_filters (no image matches the filters), "
        "filtered_not_indexed (images match the filters, none is indexed yet), below_min_score "
        "(candidates, none reaching min_score), past_the_end (all hits are before offset), "
        "no_results.",
    )
    message: str | None = Field(None, description="The reason as a sentence for a person.")
    sort: SearchSort = Field("relevance", description="The order of the hits.")
    total: int | None = Field(
        None,
        description="A date sort: how many hits the ordered list holds (page it with offset and "
        "k); null for relevance.",
    )
    candidates: int | None = Field(
        None,
        description="A date sort: the most hits it orders; total == candidates means more "
        "images may match (raise candidates or min_score).",
    )


class DuplicateGroupOut(BaseModel):
    asset_ids: list[int]
    min_score: float


class ObjectLabelOut(BaseModel):
    label: str
    count: int = Field(description="How many images have this object.")
