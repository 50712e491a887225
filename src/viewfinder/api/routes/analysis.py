"""Seed 000's analysis surface: /analyze_image/, /analyze_image_upload/, /available_operations/,
and /analyze_images/ (many URLs with the same tasks, the seed's to-do)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from viewfinder.analysis.operations import OPERATIONS
from viewfinder.analysis.results import AnalysisReport, Task, response_payload
from viewfinder.analysis.service import check_unique_ids
from viewfinder.analysis.tasks import TaskIn, parse_tasks_json
from viewfinder.api.deps import services
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.schemas_analysis import (
    AnalyzedImage,
    AnalyzeImageRequest,
    AnalyzeImageResponse,
    AnalyzeImagesRequest,
    AnalyzeImagesResponse,
    AvailableOperationsResponse,
    OperationInfo,
    UnanalyzedImage,
)
from viewfinder.api.uploads import read_upload

router = APIRouter(tags=["analysis (seed 000)"], responses=error_responses(*ACCESS_STATUSES))


def _tasks(tasks: list[TaskIn]) -> list[Task]:
    return [t.to_task() for t in tasks]


def _render(image_url: str, report: AnalysisReport, response: Response) -> AnalyzeImageResponse:
    response.headers["Server-Timing"] = ", ".join(
        f"{name.replace(' ', '_')};dur={seconds * 1000:.1f}"
        for name, seconds in report.timings.items()
        if name.isascii() and name.replace("_", "").replace("-", "").isalnum()
    )
    return AnalyzeImageResponse.model_validate(response_payload(image_url, report))


@router.post(
    "/analyze_image/",
    response_model=AnalyzeImageResponse,
    responses=error_responses(400, 413, 422, 503),
)
async def analyze_image(
    body: AnalyzeImageRequest, request: Request, response: Response
) -> AnalyzeImageResponse:
    """Analyse the image at ``image_url`` with every task; results keyed by ``operation_id``."""
    service = services(request).analysis
    tasks = _tasks(body.tasks)
    check_unique_ids(tasks)  # before the download: a bad request costs nothing
    report = await run_in_threadpool(service.analyze_url, body.image_url, tasks)
    return _render(body.image_url, report, response)


@router.post(
    "/analyze_image_upload/",
    response_model=AnalyzeImageResponse,
    responses=error_responses(400, 413, 422, 503),
)
async def analyze_image_upload(
    image_file: Annotated[UploadFile, File(description="The image to analyse.")],
    tasks_json: Annotated[str, Form(description="The tasks array as a JSON string.")],
    request: Request,
    response: Response,
) -> AnalyzeImageResponse:
    """Analyse an uploaded image; ``tasks_json`` has the same structure as ``tasks``."""
    svc = services(request)
    tasks = parse_tasks_json(tasks_json)
    check_unique_ids(tasks)
    data = await read_upload(image_file, svc.settings.max_upload_bytes)
    report = await run_in_threadpool(svc.analysis.analyze_bytes, data, tasks)
    return _render(f"uploaded:{image_file.filename or 'file'}", report, response)


@router.post(
    "/analyze_images/",
    response_model=AnalyzeImagesResponse,
    responses=error_responses(400, 413, 422, 503),
)
async def analyze_images(body: AnalyzeImagesRequest, request: Request) -> AnalyzeImagesResponse:
    """Analyse the images at ``image_urls`` with the same tasks: one item per URL, in order,
    each what /analyze_image/ answers for it (``results``), or its ``detail`` when its image
    could not be downloaded or decoded (the others are analysed all the same). The images are
    downloaded a few at once and every model sees them together."""
    service = services(request).analysis
    tasks = _tasks(body.tasks)
    check_unique_ids(tasks)  # before any download: a bad request costs nothing
    outcomes = await run_in_threadpool(service.analyze_urls, body.image_urls, tasks)
    items: list[AnalyzedImage | UnanalyzedImage] = []
    for url, outcome in zip(body.image_urls, outcomes, strict=True):
        if isinstance(outcome, AnalysisReport):
            items.append(AnalyzedImage.model_validate(response_payload(url, outcome)))
        else:
            items.append(UnanalyzedImage(image_url=url, detail=str(outcome)))
    return AnalyzeImagesResponse(items=items)


@router.get("/available_operations/", response_model=AvailableOperationsResponse)
async def available_operations(request: Request) -> AvailableOperationsResponse:
    """Every operation with its description, allowed targets and default target, and the
    CLIP models an embedding task may name."""
    return AvailableOperationsResponse(
        clip_models=services(request).analysis.clip_models,
        operations={
            op.value: OperationInfo(
                description=spec.description,
                allowed_targets=[t.value for t in spec.allowed_targets],
                default_target=spec.default_target.value,
            )
            for op, spec in OPERATIONS.items()
        },
    )
