"""Wire models of seed 000's analysis API, field for field as its README documents them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from viewfinder.analysis.tasks import MAX_TASKS, TaskIn


class AnalyzeImageRequest(BaseModel):
    image_url: str = Field(description="An http(s) URL of the image.")
    tasks: list[TaskIn] = Field(max_length=MAX_TASKS)


class OperationResultOut(BaseModel):
    status: str
    data: Any = None
    cropped_image_bbox: list[int] | None = None
    cropped_image_base64: str | None = None
    error_message: str | None = None


class AnalyzeImageResponse(BaseModel):
    image_url: str
    results: dict[str, OperationResultOut]


# The most image URLs a batch request may list at all (VIEWFINDER_ANALYZE_BATCH_MAX_URLS, below
# it, is the cap that applies: a 413 naming the setting).
MAX_IMAGE_URLS_PARSED = 1000


class AnalyzeImagesRequest(BaseModel):
    # A hard ceiling on what is even parsed; the configured cap (a 413) is checked after.
    image_urls: list[str] = Field(
        max_length=MAX_IMAGE_URLS_PARSED,
        description="http(s) URLs of the images, analysed in this order (at most "
        "VIEWFINDER_ANALYZE_BATCH_MAX_URLS of them: 413 past it).",
    )
    tasks: list[TaskIn] = Field(max_length=MAX_TASKS)


class AnalyzedImage(BaseModel):
    """One URL's analysis: exactly the body /analyze_image/ answers for it."""

    image_url: str
    results: dict[str, OperationResultOut]


class UnanalyzedImage(BaseModel):
    """A URL whose image could not be downloaded or decoded: the ``detail`` /analyze_image/
    answers it with (its 400 or 413)."""

    image_url: str
    detail: str


class AnalyzeImagesResponse(BaseModel):
    items: list[AnalyzedImage | UnanalyzedImage] = Field(
        description="One per URL, in the order of image_urls."
    )


class OperationInfo(BaseModel):
    description: str
    allowed_targets: list[str]
    default_target: str


class AvailableOperationsResponse(BaseModel):
    operations: dict[str, OperationInfo]
    clip_models: list[str] = Field(
        description="The CLIP models an embed_clip_vit_b_32 task may name in params.model: "
        '"default" (VIEWFINDER_CLIP_MODEL) first, then those of VIEWFINDER_CLIP_MODELS.'
    )
