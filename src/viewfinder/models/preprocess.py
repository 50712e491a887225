"""Image preprocessing for the transformers vision models, without a transformers processor.

A checkpoint's ``preprocessor_config.json`` is read once into an ``ImagePreprocessing``; applying
it is resize (PIL, the checkpoint's filter) -> centre crop -> rescale -> normalise -> CHW float32,
the order and arithmetic of transformers' PIL image processors, so the pixels are the same as
``CLIPImageProcessor`` / ``BitImageProcessor`` / ``BlipImageProcessor`` give.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

PREPROCESSOR_CONFIG = "preprocessor_config.json"

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# A shortest-edge resize of a 1x50000 strip would allocate gigabytes for pixels the centre crop
# throws away; past this ratio of resized long side to crop side only the cropped region is
# resampled (PIL's ``box``), which can move a few pixels by one grey level.
MAX_RESIZED_TO_CROP_RATIO = 8

Channels = tuple[float, float, float]


@dataclass(frozen=True)
class ImagePreprocessing:
    """What to do to an RGB image before a vision tower sees it.

    Exactly one of ``shortest_edge`` (keep the aspect ratio, short side to this length) and
    ``resize_to`` ((height, width), aspect ratio not kept) is set, or neither to skip resizing.
    ``crop_to`` is a centre crop (height, width), zero-padded where the image is smaller.
    """

    shortest_edge: int | None = None
    resize_to: tuple[int, int] | None = None
    crop_to: tuple[int, int] | None = None
    resample: Image.Resampling = Image.Resampling.BICUBIC
    rescale_factor: float = 1 / 255
    mean: Channels = (0.0, 0.0, 0.0)
    std: Channels = (1.0, 1.0, 1.0)
    _lookup: NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.shortest_edge is not None and self.resize_to is not None:
            raise ValueError("set shortest_edge or resize_to, not both")
        object.__setattr__(self, "_lookup", _value_table(self.rescale_factor, self.mean, self.std))

    def __call__(self, image: Image.Image) -> NDArray[np.float32]:
        """The model input for one RGB image: a (3, height, width) float32 array."""
        if image.mode != "RGB":  # callers send RGB; this only guards against a stray mode
            image = image.convert("RGB")
        image = self._resize_and_crop(image)
        pixels = np.asarray(image)
        out = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
        for channel in range(3):
            np.take(self._lookup[channel], pixels[:, :, channel], out=out[channel])
        return out

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize step, computed as transformers does (truncating)."""
        if self.resize_to is not None:
            return (self.resize_to[1], self.resize_to[0])
        if self.shortest_edge is None:
            return (width, height)
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.shortest_edge * long / short)
        if width <= height:
            return (self.shortest_edge, new_long)
        return (new_long, self.shortest_edge)

    def _resize_and_crop(self, image: Image.Image) -> Image.Image:
        width, height = self._resized_size(*image.size)
        if self.crop_to is not None and _is_far_beyond(width, height, self.crop_to):
            return _resize_crop_region(image, (width, height), self.crop_to, self.resample)
        if (width, height) != image.size:
            image = image.resize((width, height), resample=self.resample)
        if self.crop_to is None:
            return image
        # Same arithmetic as transformers' centre crop; PIL fills outside the image with zeros,
        # which is the padding transformers applies to images smaller than the crop.
        return image.crop(_centre_box(width, height, self.crop_to))


def _centre_box(width: int, height: int, crop_to: tuple[int, int]) -> tuple[int, int, int, int]:
    crop_height, crop_width = crop_to
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    return (left, top, left + crop_width, top + crop_height)


def _is_far_beyond(width: int, height: int, crop_to: tuple[int, int]) -> bool:
    crop_height, crop_width = crop_to
    return (
        width > MAX_RESIZED_TO_CROP_RATIO * crop_width
        or height > MAX_RESIZED_TO_CROP_RATIO * crop_height
    )


def _resize_crop_region(
    image: Image.Image,
    resized: tuple[int, int],
    crop_to: tuple[int, int],
    resample: Image.Resampling,
) -> Image.Image:
    """The centre crop of ``image`` resized to ``resized``, resampling only what the crop keeps.

    PIL resizes in two separable passes, horizontal then vertical; doing them one at a time in
    that order gives the same pixels as one call, and lets a pass along a far too long axis use
    a ``box`` so that only the cropped span is resampled.
    """
    width, height = resized
    left, top, right, bottom = _centre_box(width, height, crop_to)
    crop_height, crop_width = crop_to
    if width > MAX_RESIZED_TO_CROP_RATIO * crop_width:
        scale = image.width / width
        box = (left * scale, 0.0, right * scale, float(image.height))
        image = image.resize((crop_width, image.height), resample=resample, box=box)
        left, right = 0, crop_width
    elif width != image.width:
        image = image.resize((width, image.height), resample=resample)
    if height > MAX_RESIZED_TO_CROP_RATIO * crop_height:
        scale = image.height / height
        box = (0.0, top * scale, float(image.width), bottom * scale)
        image = image.resize((image.width, crop_height), resample=resample, box=box)
        top, bottom = 0, crop_height
    elif height != image.height:
        image = image.resize((image.width, height), resample=resample)
    return image.crop((left, top, right, bottom))


def _value_table(scale: float, mean: Channels, std: Channels) -> NDArray[np.float32]:
    """Per channel, the normalised value of each of the 256 byte values.

    Computed with transformers' arithmetic (rescale in float64 then cast to float32, normalise
    in float32), so a table lookup gives bit-identical values to its processors, and faster.
    """
    levels = (np.arange(256, dtype=np.float64) * scale).astype(np.float32)
    means = np.asarray(mean, dtype=np.float32)[:, None]
    stds = np.asarray(std, dtype=np.float32)[:, None]
    table: NDArray[np.float32] = ((levels[None, :] - means) / stds).astype(np.float32)
    return table


def load_image_preprocessing(
    model_dir: Path, defaults: ImagePreprocessing, *, int_size_is_square: bool
) -> ImagePreprocessing:
    """``defaults`` overridden by the checkpoint's ``preprocessor_config.json``, if it has one.

    ``int_size_is_square`` says how a bare integer ``size`` reads (transformers'
    ``default_to_square`` of the processor class): a square for BLIP and DINOv3, the shortest edge
    for CLIP and DINOv2.
    """
    path = model_dir / PREPROCESSOR_CONFIG
    if not path.is_file():
        return defaults
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a JSON object")
    return preprocessing_from_config(config, defaults, int_size_is_square=int_size_is_square)


def preprocessing_from_config(
    config: Mapping[str, Any], defaults: ImagePreprocessing, *, int_size_is_square: bool
) -> ImagePreprocessing:
    """Apply the keys transformers' image processors read; missing or null keys keep defaults."""
    spec = defaults
    square = config.get("default_to_square")
    if square is not None:
        int_size_is_square = bool(square)
    if config.get("size") is not None:
        shortest, fixed = _parse_size(config["size"], int_size_is_square)
        spec = replace(spec, shortest_edge=shortest, resize_to=fixed)
    if config.get("do_resize") is False:
        spec = replace(spec, shortest_edge=None, resize_to=None)
    if config.get("crop_size") is not None:
        spec = replace(spec, crop_to=_parse_crop(config["crop_size"]))
    if config.get("do_center_crop") is False:
        spec = replace(spec, crop_to=None)
    elif config.get("do_center_crop") is True and spec.crop_to is None:
        raise ValueError("do_center_crop is set but no crop_size is given")
    if config.get("resample") is not None:
        spec = replace(spec, resample=Image.Resampling(int(config["resample"])))
    if config.get("rescale_factor") is not None:
        spec = replace(spec, rescale_factor=float(config["rescale_factor"]))
    if config.get("do_rescale") is False:
        spec = replace(spec, rescale_factor=1.0)
    if config.get("image_mean") is not None:
        spec = replace(spec, mean=_channels(config["image_mean"]))
    if config.get("image_std") is not None:
        spec = replace(spec, std=_channels(config["image_std"]))
    if config.get("do_normalize") is False:
        spec = replace(spec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return spec


def _parse_size(size: Any, int_size_is_square: bool) -> tuple[int | None, tuple[int, int] | None]:
    """(shortest_edge, (height, width)) from a ``size`` value; exactly one is set."""
    if isinstance(size, int):
        return (None, (size, size)) if int_size_is_square else (size, None)
    if isinstance(size, dict):
        if set(size) == {"shortest_edge"}:
            return int(size["shortest_edge"]), None
        if set(size) == {"height", "width"}:
            return None, (int(size["height"]), int(size["width"]))
    raise ValueError(
        f"unsupported image size {size!r} in {PREPROCESSOR_CONFIG}: expected an integer, "
        '{"shortest_edge": n} or {"height": h, "width": w}'
    )


def _parse_crop(crop: Any) -> tuple[int, int]:
    if isinstance(crop, int):
        return (crop, crop)
    if isinstance(crop, dict) and {"height", "width"} <= set(crop):
        return (int(crop["height"]), int(crop["width"]))
    raise ValueError(f"unsupported crop_size {crop!r} in {PREPROCESSOR_CONFIG}")


def _channels(values: Any) -> Channels:
    if isinstance(values, int | float):
        value = float(values)
        return (value, value, value)
    items = tuple(float(v) for v in values)
    if len(items) != 3:
        raise ValueError(f"expected 3 channel values in {PREPROCESSOR_CONFIG}, got {values!r}")
    return (items[0], items[1], items[2])
