"""What every embedding model shares, whatever runs its forward pass (PyTorch or ONNX Runtime).

An encoder subclasses ``ImageEmbedder`` or ``TextEmbedder`` and supplies ``dim`` and ``forward``:
preprocessing (from the checkpoint), postprocessing (none: ``forward`` already returns unit
rows) and the warm-up input are the same for all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from viewfinder.models.preprocess import ImagePreprocessing

Embedding = NDArray[np.float32]
TokenIds = NDArray[np.int64]


def unit_rows(features: torch.Tensor) -> list[Embedding]:
    """L2-normalise each row in float32 (fp16 norms lose digits) and move it to CPU numpy."""
    rows = torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
    return [np.ascontiguousarray(row, dtype=np.float32) for row in rows]


def ready_for_inference(model: Any, device: torch.device) -> None:
    """A transformers model moved to ``device`` in eval mode (PreTrainedModel's ``to`` and
    ``eval`` lack usable types, so they are called through ``torch.nn.Module``)."""
    module: torch.nn.Module = model
    module.to(device).eval()


class ImageEmbedder:
    """RGB PIL image -> unit-length embedding; subclasses set ``_preprocessing`` and define
    ``dim`` and ``forward``."""

    _preprocessing: ImagePreprocessing

    @property
    def preprocessing(self) -> ImagePreprocessing:
        return self._preprocessing

    def preprocess(self, item: Image.Image) -> NDArray[np.float32]:
        return self._preprocessing(item)

    def postprocess(self, raw: Embedding, prepared: NDArray[np.float32]) -> Embedding:
        return raw

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (320, 240), (127, 127, 127))
