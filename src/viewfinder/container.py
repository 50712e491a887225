"""Wiring: builds the core services once from the settings, for the API, the CLI and workers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from viewfinder.analysis.service import AnalysisService
from viewfinder.classifiers.store import ClassifierStore
from viewfinder.errors import ViewfinderError
from viewfinder.imaging.budget import set_decode_budget
from viewfinder.imaging.fetch import FetchPolicy
from viewfinder.library.library import Library
from viewfinder.library.status import LibraryStatus
from viewfinder.model_registry import (
    ModelEntry,
    batch_policy,
    clip_image_models,
    factories,
    model_entries,
)
from viewfinder.runtime.device import select_device
from viewfinder.runtime.pool import ModelPool
from viewfinder.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStatus:
    """One configured model as this process sees it."""

    name: str
    description: str
    source: str  # the setting's value
    setting: str  # the environment variable that names it
    available: bool  # a local copy is there (or the source is a local path that exists)
    unavailable_reason: str | None  # why not, or why it failed to load here lately
    loaded: bool
    load_seconds: float | None
    batches_run: int
    items_run: int


@dataclass(frozen=True)
class SystemStatus:
    library: LibraryStatus | None  # None: this process was built without the library
    models: list[ModelStatus]


@dataclass
class Services:
    settings: Settings
    device: str
    models: dict[str, ModelEntry]
    pool: ModelPool
    classifiers: ClassifierStore
    analysis: AnalysisService
    library: Library | None = None

    @classmethod
    def build(cls, settings: Settings, with_library: bool = False) -> Services:
        """Choose the device (failing loudly if a required GPU is missing); load no model yet.
        ``with_library`` also opens the image library (database, files, vector index)."""
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        set_decode_budget(settings.decode_pixel_budget)
        device = select_device(settings)
        models = model_entries(settings, device)
        pool = ModelPool(
            factories(models, settings), batch_policy(settings), settings.model_idle_ttl_s
        )
        classifiers = ClassifierStore(settings.classifier_dir)
        analysis = AnalysisService(
            pool,
            classifiers,
            FetchPolicy.from_settings(settings),
            settings.max_image_pixels,
            clip_models=clip_image_models(settings),
            batch_max_urls=settings.analyze_batch_max_urls,
            fetch_concurrency=settings.analyze_batch_fetch_concurrency,
            batch_requests=settings.analyze_batch_requests,
            batch_max_images=settings.batch_max_size,
        )
        library = Library.open(settings, pool, classifiers) if with_library else None
        return cls(settings, device, models, pool, classifiers, analysis, library)

    def start(self) -> None:
        """Load the preload list (failing start-up if one cannot load) and start idle unloading."""
        unknown = sorted(set(self.settings.preload) - set(self.models))
        if unknown:
            raise ValueError(
                f"VIEWFINDER_PRELOAD names unknown models {unknown}; known: {sorted(self.models)}"
            )
        self.pool.preload(self.settings.preload)
        self.pool.start_reaper()
        if self.library is not None:
            self.library.start()

    def close(self) -> None:
        if self.library is not None:
            self.library.close()
        self.pool.close()

    def model_status(self) -> list[ModelStatus]:
        """Every configured model: whether a local copy exists (looked up offline: nothing is
        downloaded), whether it failed to load lately, and, when loaded, its batching so far."""
        offline = self.settings.model_copy(update={"offline": True})
        out = []
        for name, entry in self.models.items():
            try:
                entry.resolve(offline)
                available, reason = True, None
            except ViewfinderError as exc:
                available, reason = False, str(exc)
            reason = self.pool.failure(name) or reason
            model = self.pool.peek(name)
            out.append(
                ModelStatus(
                    name=name,
                    description=entry.description,
                    source=entry.source.spec,
                    setting=entry.source.env_var,
                    available=available,
                    unavailable_reason=reason,
                    loaded=model is not None,
                    load_seconds=model.load_seconds if model else None,
                    batches_run=model.batcher.batches_run if model else 0,
                    items_run=model.batcher.items_run if model else 0,
                )
            )
        return out

    def status(self) -> SystemStatus:
        """The library's background work (from the database: every process's) and the models
        of this process."""
        report = self.library.status.report() if self.library is not None else None
        return SystemStatus(report, self.model_status())

    def readiness(self) -> list[str]:
        """Why this deployment is not doing its work (database unreachable, processing
        paused); empty when it is."""
        return self.library.status.readiness() if self.library is not None else []

    def require_library(self) -> Library:
        if self.library is None:
            raise RuntimeError("this process was built without the image library")
        return self.library
