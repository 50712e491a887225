"""The image a face detector works on: shrunk to the detector's working size (larger inputs only
cost time), with the factor that maps its results back to the caller's pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image


@dataclass(frozen=True)
class ScaledImage:
    pixels: NDArray[np.uint8]  # HWC uint8, in the channel order the detector asked for
    scale: float  # working pixels per caller pixel (<= 1)
    width: int  # the caller's image size
    height: int


def shrink(image: Image.Image, max_side: int, order: Literal["rgb", "bgr"] = "rgb") -> ScaledImage:
    """``image`` with its longer side at most ``max_side`` (area resampling), as ``order``."""
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if order == "bgr" else rgb
    return ScaledImage(np.ascontiguousarray(pixels, dtype=np.uint8), scale, width, height)
