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


class OperationInfo(BaseModel):
    description: str
    allowed_targets: list[str]
    default_target: str


class AvailableOperationsResponse(BaseModel):
    operations: dict[str, OperationInfo]
