"""DINOv2 and DINOv3 image encoders: the CLS token after the final layer norm, L2-normalised.

The checkpoint's ``config.json`` says which architecture it is; both share this class.

Preprocessing:
- DINOv2 (``BitImageProcessor``): resize shortest edge to 256 (bicubic), centre crop 224,
  rescale 1/255, ImageNet mean/std; read from ``preprocessor_config.json`` as transformers does.
- DINOv3: transformers' ``DINOv3ViTImageProcessor`` needs torchvision, so it is reimplemented:
  resize to 224x224 (bilinear, aspect ratio not kept, no crop), rescale 1/255, ImageNet
  mean/std (its class defaults; a ``preprocessor_config.json`` overrides them). It differs from
  the torchvision processor in one detail: that one rescales to float before an antialiased
  resize, this one resizes the 8-bit image with PIL (whose antialiased bilinear filter is the
  one torchvision's follows; they agree to 1e-4 grey levels on float input) and PIL rounds to
  8 bits after each of its two passes, so pixels differ by less than one grey level.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from transformers import AutoConfig, AutoModel

from viewfinder.models.embedders import Embedding, ImageEmbedder, ready_for_inference, unit_rows
from viewfinder.models.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImagePreprocessing,
    load_image_preprocessing,
)
from viewfinder.runtime.device import Precision

DINOV2_DEFAULTS = ImagePreprocessing(
    shortest_edge=256,
    crop_to=(224, 224),
    resample=Image.Resampling.BICUBIC,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
DINOV3_DEFAULTS = ImagePreprocessing(
    resize_to=(224, 224),
    resample=Image.Resampling.BILINEAR,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)

# model_type in config.json -> (preprocessing defaults, whether a bare integer size is square)
SUPPORTED = {
    "dinov2": (DINOV2_DEFAULTS, False),
    "dinov3_vit": (DINOV3_DEFAULTS, True),
}


class DinoEncoder(ImageEmbedder):
    """RGB PIL image -> unit-length DINOv2/DINOv3 global embedding (``dim`` floats)."""

    def __init__(self, model_dir: Path, device: str, precision: Precision) -> None:
        config = AutoConfig.from_pretrained(model_dir)
        model_type = str(config.model_type)
        if model_type not in SUPPORTED:
            raise ValueError(
                f"{model_dir} holds a {model_type!r} model; DinoEncoder loads "
                f"{' or '.join(sorted(SUPPORTED))}"
            )
        defaults, int_size_is_square = SUPPORTED[model_type]
        self.model_type = model_type
        self._device = torch.device(device)
        self._precision = precision
        self._model = AutoModel.from_pretrained(model_dir, config=config, dtype=precision.weights)
        ready_for_inference(self._model, self._device)
        self._preprocessing = load_image_preprocessing(
            model_dir, defaults, int_size_is_square=int_size_is_square
        )

    @property
    def dim(self) -> int:
        return int(self._model.config.hidden_size)

    def forward(self, batch: Sequence[NDArray[np.float32]]) -> list[Embedding]:
        pixels = torch.from_numpy(np.stack(batch)).to(self._device, self._precision.weights)
        with torch.inference_mode(), self._precision.forward_context():
            pooled = self._model(pixel_values=pixels).pooler_output
        return unit_rows(pooled)
