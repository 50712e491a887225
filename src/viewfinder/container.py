"""Wiring: builds the core services once from the settings, for the API, the CLI and workers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from viewfinder.analysis.service import AnalysisService
from viewfinder.classifiers.store import ClassifierStore
from viewfinder.imaging.budget import set_decode_budget
from viewfinder.imaging.fetch import FetchPolicy
from viewfinder.library.library import Library
from viewfinder.model_registry import ModelEntry, batch_policy, factories, model_entries
from viewfinder.runtime.device import select_device
from viewfinder.runtime.pool import ModelPool
from viewfinder.settings import Settings

log = logging.getLogger(__name__)


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
            pool, classifiers, FetchPolicy.from_settings(settings), settings.max_image_pixels
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

    def require_library(self) -> Library:
        if self.library is None:
            raise RuntimeError("this process was built without the image library")
        return self.library
