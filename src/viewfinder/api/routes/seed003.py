"""Seed 003's image analyzer surface: ``POST /api/images/analyze``,
``POST /api/images/analyze-stream`` (server-sent events) and ``GET /api/images/health``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool

from viewfinder.analyzer.prompt import PromptSource, PromptToken
from viewfinder.analyzer.service import ImageAnalyzer
from viewfinder.analyzer.zero_shot import Analysis
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.uploads import read_upload
from viewfinder.container import Services
from viewfinder.errors import InvalidImageError, ViewfinderError
from viewfinder.imaging.decode import EMBED_MIN_SIDE

log = logging.getLogger(__name__)

MAX_USER_PROMPT_CHARS = 4000
_STATE_KEY = "image_analyzer"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Built at start-up so a bad label file or Ollama address stops the server with a clear
    # message instead of failing the first request.
    _analyzer(app)
    yield


router = APIRouter(
    prefix="/api/images",
    tags=["image analyzer (seed 003)"],
    lifespan=_lifespan,
    responses=error_responses(*ACCESS_STATUSES, 503),
)


def _analyzer(app: Starlette) -> ImageAnalyzer:
    """The app's analyzer; built on first use when the app runs without its lifespan."""
    existing = getattr(app.state, _STATE_KEY, None)
    if isinstance(existing, ImageAnalyzer):
        return existing
    services: Services = app.state.services
    built = ImageAnalyzer.from_settings(services.settings, services.pool)
    setattr(app.state, _STATE_KEY, built)
    return built


class LabelScoreOut(BaseModel):
    value: str
    score: float = Field(description="Softmax probability within the category (0..1).")


class AnalyzeResponse(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    success: bool = True
    generated_prompt: str
    analysis: dict[str, list[LabelScoreOut]]
    user_input: str | None
    prompt_source: PromptSource = Field(
        description="'llm' when Ollama wrote the prompt, 'fallback' when it was composed from "
        "the analysis because Ollama could not be used."
    )


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    service: Literal["image-analyzer"] = "image-analyzer"
    analyzer_initialized: bool


UserPrompt = Annotated[
    str | None,
    Form(max_length=MAX_USER_PROMPT_CHARS, description="Your own words for the prompt."),
]
DeepThinking = Annotated[
    bool, Form(description="A longer, more creative prompt (temperature 0.7, 300 tokens).")
]
ImageFile = Annotated[UploadFile, File(description="The image to analyse.")]


def _user_text(user_prompt: str | None) -> str | None:
    text = (user_prompt or "").strip()
    return text or None


async def _image(request: Request, upload: UploadFile) -> Image.Image:
    """The upload as an RGB image at the size CLIP's zero-shot labels need (a 48-megapixel
    photo never stays whole in memory): 413 past the size limit, 400 when it is not an image."""
    services: Services = request.app.state.services
    data = await read_upload(upload, services.settings.max_upload_bytes)
    try:
        return await run_in_threadpool(services.analysis.image_from_bytes, data, EMBED_MIN_SIDE)
    except InvalidImageError as exc:
        declared = upload.content_type or ""
        if declared and not declared.startswith("image/"):
            raise InvalidImageError(
                f"File must be an image: it was sent as {declared!r}, and its content is "
                f"not an image either ({exc})"
            ) from None
        raise


def _wire(analysis: Analysis) -> dict[str, list[dict[str, Any]]]:
    return {
        category: [{"value": s.value, "score": s.score} for s in scores]
        for category, scores in analysis.items()
    }


@router.post("/analyze", response_model=AnalyzeResponse, responses=error_responses(400, 413))
async def analyze(
    request: Request,
    image: ImageFile,
    user_prompt: UserPrompt = None,
    deep_thinking: DeepThinking = False,
) -> AnalyzeResponse:
    """Analyse the image and write a prompt from it, in one response."""
    analyzer = _analyzer(request.app)
    picture = await _image(request, image)
    user_text = _user_text(user_prompt)
    analysis = await run_in_threadpool(analyzer.analyze, picture)
    written = await analyzer.write_prompt(analysis, user_text, deep_thinking)
    return AnalyzeResponse.model_validate(
        {
            "success": True,
            "generated_prompt": written.text,
            "analysis": _wire(analysis),
            "user_input": user_text,
            "prompt_source": written.source,
        }
    )


@router.post(
    "/analyze-stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Progress events."},
        **error_responses(400, 413),
    },
)
async def analyze_stream(
    request: Request,
    image: ImageFile,
    user_prompt: UserPrompt = None,
    deep_thinking: DeepThinking = False,
) -> StreamingResponse:
    """As ``/analyze``, as server-sent events: analyzing, analyzed, generating, token...,
    complete (or error). The upload is validated before the stream starts."""
    analyzer = _analyzer(request.app)
    picture = await _image(request, image)
    events = _events(analyzer, picture, _user_text(user_prompt), deep_thinking)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        # proxies (nginx) would otherwise hold events back until the stream ends
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(payload: dict[str, Any]) -> str:
    # json.dumps escapes newlines, so one event is always one ``data:`` line
    return f"data: {json.dumps(payload)}\n\n"


async def _events(
    analyzer: ImageAnalyzer, image: Image.Image, user_prompt: str | None, deep_thinking: bool
) -> AsyncIterator[str]:
    yield _event({"status": "analyzing", "message": "Analyzing image..."})
    try:
        analysis = await run_in_threadpool(analyzer.analyze, image)
        yield _event({"status": "analyzed", "analysis": _wire(analysis)})
        yield _event({"status": "generating", "message": "Generating prompt..."})
        async for piece in analyzer.stream_prompt(analysis, user_prompt, deep_thinking):
            if isinstance(piece, PromptToken):
                yield _event({"status": "token", "token": piece.text})
            else:
                yield _event(
                    {
                        "status": "complete",
                        "generatedPrompt": piece.text,
                        "promptSource": piece.source,
                    }
                )
    except ViewfinderError as exc:
        yield _event({"status": "error", "message": str(exc)})
    except Exception:  # the response has started: an event is all that can still tell
        log.exception("image analysis stream failed")
        yield _event(
            {"status": "error", "message": "Image analysis failed; the server log has details."}
        )


@router.get("/health", response_model=HealthResponse)
async def health(request: Request) -> HealthResponse:
    """Always answers; ``analyzer_initialized`` is true once CLIP and the label embeddings are
    loaded (this check loads nothing)."""
    return HealthResponse(analyzer_initialized=_analyzer(request.app).initialized)
