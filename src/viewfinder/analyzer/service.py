"""The image analyzer: CLIP zero-shot analysis of an image, then a prompt written from it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from PIL import Image

from viewfinder.analyzer.labels import LabelConfig, load_label_config
from viewfinder.analyzer.prompt import OllamaClient, PromptToken, PromptWriter, WrittenPrompt
from viewfinder.analyzer.zero_shot import Analysis, ZeroShotClassifier
from viewfinder.runtime.pool import ModelPool
from viewfinder.settings import Settings


class ImageAnalyzer:
    """``analyze`` blocks (CLIP runs); the prompt methods are async (the LLM is awaited)."""

    def __init__(self, classifier: ZeroShotClassifier, writer: PromptWriter) -> None:
        self._classifier = classifier
        self._writer = writer

    @classmethod
    def from_settings(cls, settings: Settings, pool: ModelPool) -> ImageAnalyzer:
        """Reads and validates the label file and the Ollama address; loads no model.

        Raises ``LabelConfigError`` (bad label file) or ``ValueError`` (bad Ollama address)."""
        config: LabelConfig = load_label_config(settings.analyzer_labels)
        llm = OllamaClient(
            settings.ollama_host,
            settings.ollama_model,
            settings.ollama_connect_timeout_s,
            settings.ollama_read_timeout_s,
        )
        phrases = {name: spec.phrase for name, spec in config.categories.items()}
        return cls(
            ZeroShotClassifier(pool, config, settings.analyzer_top_k), PromptWriter(llm, phrases)
        )

    @property
    def initialized(self) -> bool:
        """CLIP is loaded and the label embeddings computed (checking loads nothing)."""
        return self._classifier.ready

    def analyze(self, image: Image.Image) -> Analysis:
        return self._classifier.classify(image)

    async def write_prompt(
        self, analysis: Analysis, user_prompt: str | None, deep_thinking: bool
    ) -> WrittenPrompt:
        return await self._writer.write(analysis, user_prompt, deep_thinking)

    def stream_prompt(
        self, analysis: Analysis, user_prompt: str | None, deep_thinking: bool
    ) -> AsyncIterator[PromptToken | WrittenPrompt]:
        return self._writer.stream(analysis, user_prompt, deep_thinking)
