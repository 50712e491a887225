"""CLIP image and text encoders (transformers), each loading only its own tower.

Both return L2-normalised embeddings in the shared projection space, so a text embedding and an
image embedding compare by dot product. Images are preprocessed by ``preprocess.py`` from the
checkpoint's ``preprocessor_config.json``; no transformers processor runs at request time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from transformers import AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection

from viewfinder.models.embedders import (
    Embedding,
    ImageEmbedder,
    TokenIds,
    ready_for_inference,
    unit_rows,
)
from viewfinder.models.preprocess import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ImagePreprocessing,
    load_image_preprocessing,
)
from viewfinder.runtime.device import Precision

# CLIPImageProcessor's defaults, for a checkpoint directory without preprocessor_config.json.
CLIP_IMAGE_DEFAULTS = ImagePreprocessing(
    shortest_edge=224,
    crop_to=(224, 224),
    resample=Image.Resampling.BICUBIC,
    mean=OPENAI_CLIP_MEAN,
    std=OPENAI_CLIP_STD,
)


class _VisionTower(CLIPVisionModelWithProjection):  # type: ignore[no-untyped-call]
    """The image tower alone; a full CLIP checkpoint's text weights are expected extras, not
    worth a load warning."""

    # Read by transformers when loading, never mutated.
    _keys_to_ignore_on_load_unexpected = [  # noqa: RUF012
        r"^text_model\.",
        r"^text_projection\.",
        r"^logit_scale$",
    ]


class _TextTower(CLIPTextModelWithProjection):  # type: ignore[no-untyped-call]
    """The text tower alone, as ``_VisionTower``."""

    _keys_to_ignore_on_load_unexpected = [  # noqa: RUF012
        r"^vision_model\.",
        r"^visual_projection\.",
        r"^logit_scale$",
    ]


def clip_image_preprocessing(model_dir: Path) -> ImagePreprocessing:
    """The checkpoint's image preprocessing (CLIPImageProcessor's defaults where it has none)."""
    return load_image_preprocessing(model_dir, CLIP_IMAGE_DEFAULTS, int_size_is_square=False)


class ClipTokens:
    """The CLIP tokenizer as every text encoder uses it: a text to ids truncated to the model's
    context (keeping the end-of-text token the pooling reads), and a batch of ids padded to its
    longest row, with the attention mask."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._max_tokens = max_tokens
        # Padded positions are masked out, so any id in the vocabulary would do.
        pad_id = self._tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self._tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError(f"the tokenizer in {model_dir} has no padding or end-of-text token")
        self._pad_id = int(pad_id)

    def encode(self, text: str) -> TokenIds:
        ids = self._tokenizer(text, truncation=True, max_length=self._max_tokens)["input_ids"]
        return np.asarray(ids, dtype=np.int64)

    def pad(self, batch: Sequence[TokenIds]) -> tuple[TokenIds, TokenIds]:
        """``(input_ids, attention_mask)``, both ``(len(batch), longest)`` int64."""
        longest = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), longest), self._pad_id, dtype=np.int64)
        attention = np.zeros((len(batch), longest), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
        return input_ids, attention


class TextEmbedder:
    """Text -> unit-length CLIP text embedding; subclasses set ``_tokens`` and define ``dim``
    and ``forward``."""

    _tokens: ClipTokens

    def preprocess(self, item: str) -> TokenIds:
        return self._tokens.encode(item)

    def postprocess(self, raw: Embedding, prepared: TokenIds) -> Embedding:
        return raw

    def warmup_item(self) -> str:
        return "a photo of a dog on a beach"


class ClipImageEncoder(ImageEmbedder):
    """RGB PIL image -> unit-length CLIP image embedding (``dim`` floats)."""

    def __init__(self, model_dir: Path, device: str, precision: Precision) -> None:
        self._device = torch.device(device)
        self._precision = precision
        self._model = _VisionTower.from_pretrained(model_dir, dtype=precision.weights)
        ready_for_inference(self._model, self._device)
        self._preprocessing = clip_image_preprocessing(model_dir)

    @property
    def dim(self) -> int:
        return self._model.visual_projection.out_features

    def forward(self, batch: Sequence[NDArray[np.float32]]) -> list[Embedding]:
        pixels = torch.from_numpy(np.stack(batch)).to(self._device, self._precision.weights)
        with torch.inference_mode(), self._precision.forward_context():
            embeds = self._model(pixel_values=pixels).image_embeds
        return unit_rows(embeds)


class ClipTextEncoder(TextEmbedder):
    """Text -> unit-length CLIP text embedding; long texts are truncated to the model's context
    (77 tokens for OpenAI CLIP), keeping the end-of-text token the pooling reads."""

    def __init__(self, model_dir: Path, device: str, precision: Precision) -> None:
        self._device = torch.device(device)
        self._precision = precision
        self._model = _TextTower.from_pretrained(model_dir, dtype=precision.weights)
        ready_for_inference(self._model, self._device)
        self._tokens = ClipTokens(model_dir, int(self._model.config.max_position_embeddings))

    @property
    def dim(self) -> int:
        return self._model.text_projection.out_features

    def forward(self, batch: Sequence[TokenIds]) -> list[Embedding]:
        input_ids, attention = self._tokens.pad(batch)
        with torch.inference_mode(), self._precision.forward_context():
            embeds = self._model(
                input_ids=torch.from_numpy(input_ids).to(self._device),
                attention_mask=torch.from_numpy(attention).to(self._device),
            ).text_embeds
        return unit_rows(embeds)
