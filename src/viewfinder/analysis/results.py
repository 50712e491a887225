"""What the analysis of one image produces: tasks in, one result per task out."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Task:
    operation_id: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OperationResult:
    status: Status
    data: Any = None
    cropped_image_bbox: list[int] | None = None
    cropped_image_base64: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class AnalysisReport:
    results: dict[str, OperationResult]
    # seconds per operation_id, plus "detect_person" / "detect_face" for shared detections
    timings: dict[str, float]


def response_payload(image_url: str, report: AnalysisReport) -> dict[str, Any]:
    """The seed 000 response body; the API and ``viewfinder analyze`` both print this."""
    return {
        "image_url": image_url,
        "results": {
            op_id: {
                "status": r.status.value,
                "data": r.data,
                "cropped_image_bbox": r.cropped_image_bbox,
                "cropped_image_base64": r.cropped_image_base64,
                "error_message": r.error_message,
            }
            for op_id, r in report.results.items()
        },
    }
