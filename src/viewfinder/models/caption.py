"""Image captioning with BLIP (transformers), unconditional: the caption starts from BLIP's
decoder start token, not from a text prompt.

Decoding is greedy (``num_beams=1``, no sampling) unless a beam width is given: deterministic,
and the cheapest per token. ``max_length`` counts the decoder start token, as in transformers'
``generate``, so a caption has at most ``max_length - 1`` tokens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from transformers import AutoTokenizer, BlipForConditionalGeneration

from viewfinder.errors import InvalidRequestError
from viewfinder.models.preprocess import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ImagePreprocessing,
    load_image_preprocessing,
)
from viewfinder.runtime.device import Precision

DEFAULT_MAX_LENGTH = 50

# BlipImageProcessor's defaults, for a checkpoint directory without preprocessor_config.json.
BLIP_IMAGE_DEFAULTS = ImagePreprocessing(
    resize_to=(384, 384),
    resample=Image.Resampling.BICUBIC,
    mean=OPENAI_CLIP_MEAN,
    std=OPENAI_CLIP_STD,
)

TokenIds = NDArray[np.int64]


@dataclass(frozen=True)
class CaptionRequest:
    """One image to caption; ``max_length`` bounds the generated tokens (start token included)."""

    image: Image.Image
    max_length: int = DEFAULT_MAX_LENGTH

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise InvalidRequestError(f"max_length must be at least 2, got {self.max_length}")


@dataclass(frozen=True)
class PreparedCaption:
    pixels: NDArray[np.float32]
    max_length: int


class BlipCaptioner:
    """``CaptionRequest`` -> caption string (lower case, as BLIP's uncased tokenizer produces)."""

    def __init__(
        self, model_dir: Path, device: str, precision: Precision, *, num_beams: int = 1
    ) -> None:
        self._device = torch.device(device)
        self._precision = precision
        self._num_beams = num_beams
        self._model = BlipForConditionalGeneration.from_pretrained(
            model_dir, dtype=precision.weights
        )
        module: torch.nn.Module = self._model  # PreTrainedModel's to/eval lack usable types
        module.to(self._device).eval()
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._max_positions = int(self._model.text_decoder.config.max_position_embeddings)
        self._preprocessing = load_image_preprocessing(
            model_dir, BLIP_IMAGE_DEFAULTS, int_size_is_square=True
        )

    @property
    def preprocessing(self) -> ImagePreprocessing:
        return self._preprocessing

    @property
    def longest_max_length(self) -> int:
        """The text decoder's position count: no caption can be longer."""
        return self._max_positions

    def preprocess(self, item: CaptionRequest) -> PreparedCaption:
        if item.max_length > self._max_positions:
            raise InvalidRequestError(
                f"max_length {item.max_length} is more than this captioning model can produce "
                f"({self._max_positions} tokens)"
            )
        return PreparedCaption(self._preprocessing(item.image), item.max_length)

    def forward(self, batch: Sequence[PreparedCaption]) -> list[TokenIds]:
        """One ``generate`` per distinct ``max_length``; token ids in the order of ``batch``."""
        groups: dict[int, list[int]] = defaultdict(list)
        for index, prepared in enumerate(batch):
            groups[prepared.max_length].append(index)
        outputs: dict[int, TokenIds] = {}
        for max_length, indices in groups.items():
            pixels = np.stack([batch[i].pixels for i in indices])
            outputs.update(zip(indices, self._generate(pixels, max_length), strict=True))
        return [outputs[index] for index in range(len(batch))]

    def _generate(self, pixels: NDArray[np.float32], max_length: int) -> list[TokenIds]:
        tensor = torch.from_numpy(pixels).to(self._device, self._precision.weights)
        with torch.inference_mode(), self._precision.forward_context():
            sequences = self._model.generate(
                pixel_values=tensor,
                max_length=max_length,
                num_beams=self._num_beams,
                do_sample=False,
            )
        return list(sequences.cpu().numpy().astype(np.int64))

    def postprocess(self, raw: TokenIds, prepared: PreparedCaption) -> str:
        text = self._tokenizer.decode(raw.tolist(), skip_special_tokens=True)
        if not isinstance(text, str):
            raise TypeError(f"the tokenizer decoded one sequence into {type(text).__name__}")
        return text.strip()

    def warmup_item(self) -> CaptionRequest:
        # A short caption warms every kernel generation uses, without paying for 50 steps.
        return CaptionRequest(Image.new("RGB", (320, 240), (127, 127, 127)), max_length=5)
