"""Face embeddings with an ArcFace-family ONNX recogniser (MobileFaceNet, SFace, ArcFace).

Input: a face already aligned to the ArcFace 112x112 template (``faces.align.align_face``), RGB
uint8. Output: an L2-normalised float32 vector; compare two faces by their dot product.

The recognisers of this family share the crop but not the pixel normalisation:

- MobileFaceNet / InsightFace ArcFace exports: RGB, ``(x - 127.5) / 128`` (``ARCFACE_PIXELS``).
- SFace (opencv_zoo ``face_recognition_sface_*.onnx``): RGB, raw 0-255, no mean or scale.
  OpenCV's ``FaceRecognizerSF::feature`` feeds it ``blobFromImage(aligned, 1, (112, 112),
  (0, 0, 0), swapRB=true)`` on a BGR crop, i.e. RGB 0-255 (``SFACE_PIXELS``).

``FaceRecognizer`` picks SFace's convention when the file name says ``sface`` and ArcFace's
otherwise; pass ``pixels`` to override it for another export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class PixelConvention:
    """How an aligned uint8 crop becomes the model's input: ``(x - mean) / scale`` per pixel,
    channels in ``channel_order``, laid out NCHW."""

    channel_order: Literal["rgb", "bgr"]
    mean: float
    scale: float


ARCFACE_PIXELS = PixelConvention("rgb", 127.5, 128.0)
SFACE_PIXELS = PixelConvention("rgb", 0.0, 1.0)


def default_pixels(model_path: Path) -> PixelConvention:
    """The documented convention for a recogniser file (see the module docstring)."""
    return SFACE_PIXELS if "sface" in model_path.name.lower() else ARCFACE_PIXELS


def l2_normalise(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit length; an all-zero row stays zero instead of becoming NaN."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return np.asarray(array / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)


class FaceRecognizer:
    """BatchModel: aligned RGB uint8 face (HxWx3, the model's input size, normally 112) ->
    L2-normalised float32 embedding of ``dim`` values."""

    def __init__(
        self,
        model_path: Path,
        providers: list[str] | None = None,
        pixels: PixelConvention | None = None,
    ) -> None:
        available = ort.get_available_providers()
        chosen = providers or [p for p in PREFERRED_PROVIDERS if p in available]
        session = ort.InferenceSession(str(model_path), providers=chosen)
        self._attach(session, pixels or default_pixels(model_path), str(model_path))

    @classmethod
    def from_session(cls, session: Any, pixels: PixelConvention) -> FaceRecognizer:
        """A recogniser over an already-open session (any object with ONNX Runtime's
        ``get_inputs``/``get_outputs``/``run``): another runtime, or a fake in tests."""
        recognizer = cls.__new__(cls)
        recognizer._attach(session, pixels, type(session).__name__)
        return recognizer

    def _attach(self, session: Any, pixels: PixelConvention, origin: str) -> None:
        self._session = session
        model_input = session.get_inputs()[0]
        self._input_name: str = model_input.name
        batch, channels, height, width = model_input.shape
        if channels != 3 or not isinstance(height, int) or not isinstance(width, int):
            raise ValueError(
                f"{origin}: expected a fixed 3xHxW face input, got {model_input.shape}"
            )
        self.input_size = (height, width)
        # The usual export fixes the batch at 1; such a model is run once per item.
        self.dynamic_batch = not isinstance(batch, int)
        self.pixels = pixels
        output_shape = session.get_outputs()[0].shape
        declared = output_shape[-1] if output_shape else None
        self._dim = declared if isinstance(declared, int) else self._probe_dim()

    @property
    def dim(self) -> int:
        return self._dim

    def _probe_dim(self) -> int:
        """Output width for models that leave it symbolic: run one blank face."""
        prepared = self.preprocess(self.warmup_item())
        return int(self.forward([prepared])[0].shape[-1])

    def preprocess(self, item: NDArray[np.uint8]) -> NDArray[np.float32]:
        face = np.asarray(item)
        if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
            raise ValueError(f"expected an aligned HxWx3 uint8 RGB face, got {face.shape}")
        height, width = self.input_size
        if face.shape[:2] != (height, width):
            face = np.asarray(cv2.resize(face, (width, height), interpolation=cv2.INTER_AREA))
        if self.pixels.channel_order == "bgr":
            face = face[:, :, ::-1]
        tensor = (face.astype(np.float32) - np.float32(self.pixels.mean)) / np.float32(
            self.pixels.scale
        )
        return np.ascontiguousarray(tensor.transpose(2, 0, 1))

    def forward(self, batch: Sequence[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        if self.dynamic_batch:
            outputs = self._session.run(None, {self._input_name: np.stack(batch)})[0]
            return [np.asarray(row, dtype=np.float32).reshape(-1) for row in outputs]
        return [
            np.asarray(
                self._session.run(None, {self._input_name: tensor[None]})[0], dtype=np.float32
            ).reshape(-1)
            for tensor in batch
        ]

    def postprocess(
        self, raw: NDArray[np.float32], prepared: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        return l2_normalise(raw)

    def warmup_item(self) -> NDArray[np.uint8]:
        height, width = self.input_size
        return np.full((height, width, 3), 127, dtype=np.uint8)

    def embed(self, faces: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Embed aligned faces directly, without the runtime's batcher: (n, dim) float32."""
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        prepared = [self.preprocess(face) for face in faces]
        raws = self.forward(prepared)
        return np.stack([self.postprocess(raw, p) for raw, p in zip(raws, prepared, strict=True)])
