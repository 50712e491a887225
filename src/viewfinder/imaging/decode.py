"""Turning untrusted bytes into an RGB ``PIL.Image.Image``.

The format is sniffed from the content (never a file name or a declared content type), and only
formats from an allowlist are tried: EPS would run Ghostscript, TGA has no magic number (so random
bytes could pass as an image), and the rarer plugins see little hardening.

The pixel count is checked from the header before any pixel is decoded, so a small file that
claims a huge canvas (a decompression bomb) costs microseconds. Pillow has its own ceiling
(``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels by default), which we map to the same
error; a deployment that raises ``VIEWFINDER_MAX_IMAGE_PIXELS`` above it must raise Pillow's too.

Baseline JPEGs (most photos) are decoded with simplejpeg, about twice as fast as Pillow here. Both
wrap libjpeg-turbo, so the output equals Pillow's up to JPEG decoder differences (identical on the
photos we measured); CMYK/YCCK JPEGs and anything simplejpeg rejects go through Pillow, which also
gives the definitive verdict on broken files.
"""

from __future__ import annotations

import io
import math
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import numpy as np
import simplejpeg
from numpy.typing import NDArray
from PIL import Image, ImageFile, UnidentifiedImageError

from viewfinder.errors import InvalidImageError, TooLargeError
from viewfinder.imaging.budget import decode_budget

ALLOWED_FORMATS: Final = (
    "JPEG",
    "MPO",
    "PNG",
    "GIF",
    "WEBP",
    "AVIF",
    "BMP",
    "TIFF",
    "ICO",
    "PPM",
)

_ORIENTATION_TAG: Final = 0x0112
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose).
_ORIENTATION_FIX: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow reports libjpeg-turbo-compatible JPEGs as these modes; CMYK (incl. Adobe's inverted
# CMYK and YCCK) needs Pillow's conversion.
_FAST_JPEG_MODES: Final = frozenset({"RGB", "L"})
_ALPHA_MODES: Final = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})

# Malformed files make Pillow's plugins raise any of these; all of them mean "not decodable".
_DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    ZeroDivisionError,
    struct.error,
)
_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")
_SETTING: Final = "VIEWFINDER_MAX_IMAGE_PIXELS"
# Images are embedded (and captioned) from a decode at least this large on the shortest side:
# twice the 224-pixel input of the CLIP ViT-B checkpoints and above BLIP's 384, so the model's
# own resize still downsamples, while a 12-megapixel JPEG decodes at 1/4 scale. The library,
# search by an uploaded image and analysis all decode the same way, so the same bytes give the
# same vector everywhere.
EMBED_MIN_SIDE: Final = 448


def decode_image(data: bytes, max_pixels: int, min_side: int | None = None) -> Image.Image:
    """Decode ``data`` into an upright RGB image with at most ``max_pixels`` pixels.

    ``min_side``: the caller only needs this many pixels on the shortest side (a 224-pixel
    model input, a 1024-pixel preview), so the image may come back smaller than stored, never
    below ``min_side`` (nor above the original). JPEGs are then decoded at a scale of M/8 in the
    DCT domain (a 12-megapixel photo for a 448-pixel use: 2/8, about 16x less memory and a
    fraction of the decoding); other formats are decoded whole and box-reduced by an integer
    factor, which makes the resize that follows cheap. ``None``: full resolution (detection,
    crops).

    Raises ``InvalidImageError`` for bytes that are not a decodable image and ``TooLargeError``
    for an image over the pixel limit (checked before decoding).
    """
    with _pillow_errors(), _open(data) as image:
        _check_pixels(image.size, max_pixels)
        fast_jpeg = image.format in ("JPEG", "MPO") and image.mode in _FAST_JPEG_MODES
        # The pixels this decode will hold at its largest, from the header: the DCT-scaled size
        # for a fast JPEG, every pixel for the rest (they have no cheaper way to decode).
        weight = _jpeg_scaled_pixels(image.size, min_side) if fast_jpeg else _pixels(image.size)
        with decode_budget().hold(weight):
            rgb = _decode_jpeg_fast(data, min_side) if fast_jpeg else None
            if rgb is None:
                # Image.open leaves the first frame current: animated GIF/WebP/APNG and
                # multi-page TIFF decode as their first frame.
                image.load()
                rgb = _to_small_rgb(image, min_side)
            elif min_side is not None:
                rgb = _reduced(rgb, min_side)
            # After the pixels: a PNG's EXIF may follow them, and reading it decodes the image.
            orientation = _orientation(image)
            image.close()  # the full-size decode goes now, inside the hold, not after it
            fix = _ORIENTATION_FIX.get(orientation)
            upright = rgb.transpose(fix) if fix is not None else rgb  # a copy: inside the hold
    # Orientation is applied, so the metadata that describes it must not travel on: a caller
    # running ImageOps.exif_transpose again would rotate twice.
    upright.info = {}
    return upright


def image_size_of(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from the header alone, before EXIF orientation."""
    with _pillow_errors(), _open(data) as image:
        width, height = image.size
    return width, height


def upright_size_of(data: bytes) -> tuple[int, int]:
    """``(width, height)`` as the image is shown, EXIF orientation applied, from the header."""
    with _pillow_errors(), _open(data) as image:
        width, height = image.size
        turned = _header_orientation(image) in (5, 6, 7, 8)  # the transposes that swap sides
    return (height, width) if turned else (width, height)


def _open(data: bytes) -> ImageFile.ImageFile:
    if not data:
        raise InvalidImageError(
            "Could not process image: the image data is empty; send the bytes of an image file."
        )
    return Image.open(io.BytesIO(data), formats=_registered_formats())


@contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's exceptions for bad or oversized input, as the user-facing errors."""
    try:
        yield
    except UnidentifiedImageError:
        raise InvalidImageError(
            "Could not process image: the data is not an image in a supported format "
            f"({', '.join(ALLOWED_FORMATS)})."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # Pillow's own bomb guard (raised, or a warning under -W error) fired before ours could.
        raise _pillow_refused(err) from None
    except _DECODE_ERRORS as err:
        raise _invalid(err) from None


def _registered_formats() -> tuple[str, ...]:
    # Image.open raises KeyError for a format whose plugin is missing (e.g. no AVIF support).
    Image.init()
    return tuple(name for name in ALLOWED_FORMATS if name in Image.OPEN)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"Could not process image: it has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise TooLargeError(
            f"Image is too large: {width}x{height} = {width * height} pixels, over the limit of "
            f"{max_pixels} pixels. Send a smaller image or raise {_SETTING}."
        )


def _pillow_refused(err: Exception) -> TooLargeError:
    # Pillow's message carries the pixel count; the width and height never reach us.
    match = _PILLOW_PIXELS.search(str(err))
    size = f"{match.group(1)} pixels" if match else "too many pixels"
    ceiling = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 0
    return TooLargeError(
        f"Image is too large: {size}, over the decompression-bomb limit of {ceiling} pixels. "
        f"Send a smaller image ({_SETTING} cannot raise this ceiling above Pillow's)."
    )


def _invalid(err: BaseException) -> InvalidImageError:
    reason = str(err).strip() or type(err).__name__
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return InvalidImageError(
        f"Could not process image: the file is damaged or incomplete ({reason}); "
        "send the complete image file."
    )


def _header_orientation(image: Image.Image) -> int:
    """The EXIF orientation known before any pixel is decoded. Pillow decodes a whole PNG to
    look for an eXIf chunk after the pixel data (49 MP for a 6 KB file, outside any budget),
    so a PNG counts only an eXIf chunk before it (where writers put it)."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return _orientation(image)


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        # A broken EXIF block should not cost the user their image: show it as stored.
        return 1
    return value if isinstance(value, int) else 1


def _decode_jpeg_fast(data: bytes, min_side: int | None = None) -> Image.Image | None:
    """simplejpeg decode, at the smallest DCT scale keeping both sides >= ``min_side``;
    ``None`` when it declines (Pillow then decodes or explains why not)."""
    scaled = {} if min_side is None else {"min_width": min_side, "min_height": min_side}
    try:
        pixels: NDArray[np.uint8] = simplejpeg.decode_jpeg(data, colorspace="RGB", **scaled)
    except ValueError:
        return None
    return Image.fromarray(pixels)


def reduction_factor(size: tuple[int, int], min_side: int | None) -> int:
    """The integer box-reduction ``decode_image`` applies for a use of ``min_side`` pixels."""
    return 1 if min_side is None else max(1, min(size) // min_side)


def kept_pixels(width: int, height: int, min_side: int | None) -> int:
    """About how many pixels ``decode_image`` returns for an image of this size and use (a
    JPEG's DCT scaling lands in the same range as the box reduction)."""
    factor = reduction_factor((width, height), min_side)
    return math.ceil(width / factor) * math.ceil(height / factor)


def _pixels(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _jpeg_scaled_pixels(size: tuple[int, int], min_side: int | None) -> int:
    """The size libjpeg-turbo decodes at: the smallest scale M/8 keeping both sides at least
    ``min_side`` (simplejpeg's choice for ``min_width``/``min_height``)."""
    if min_side is None:
        return _pixels(size)
    width, height = size
    for eighths in range(1, 8):
        scaled = (math.ceil(width * eighths / 8), math.ceil(height * eighths / 8))
        if min(scaled) >= min(min_side, width, height):
            return _pixels(scaled)
    return _pixels(size)


def _reduced(image: Image.Image, min_side: int) -> Image.Image:
    factor = reduction_factor(image.size, min_side)
    return image.reduce(factor) if factor >= 2 else image


def _to_small_rgb(image: Image.Image, min_side: int | None) -> Image.Image:
    """``_to_rgb`` then the reduction for ``min_side``, in the cheaper order where both give the
    same pixels: greyscale, one-bit and plain RGB images are box-reduced first, so a 49 MP
    one-bit page never becomes a 196 MB RGB image (the box mean of replicated grey channels is
    the grey mean, replicated). Other modes (alpha, palettes, 16-bit) convert first."""
    factor = reduction_factor(image.size, min_side)
    opaque = "transparency" not in image.info
    if factor >= 2 and opaque and image.mode in ("1", "L", "RGB"):
        grey_or_rgb = image.convert("L") if image.mode == "1" else image
        small = grey_or_rgb.reduce(factor)
        del grey_or_rgb  # a one-bit page's full-size greyscale copy goes now
        return small if small.mode == "RGB" else small.convert("RGB")
    rgb = _to_rgb(image)
    return rgb.reduce(factor) if factor >= 2 else rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_greyscale_to_uint8(image)).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _on_white(image.convert("RGBA"))
    if mode == "RGB":
        # The decoded pixels themselves, in an image that outlives the closed file: convert()
        # would copy them (another 196 MB for 49 megapixels) only to drop the original.
        return image._new(image.im)
    # 1, L, P, CMYK (Pillow already undid Adobe's inversion), YCbCr, HSV, RGBX.
    return image.convert("RGB")


def _on_white(rgba: Image.Image) -> Image.Image:
    # Transparent pixels carry arbitrary colour (often black); white is what viewers show.
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _greyscale_to_uint8(image: Image.Image) -> NDArray[np.uint8]:
    """8-bit greyscale from 16-bit, 32-bit integer and float images, by their real range.

    16-bit data spans 0..65535 (keep the high byte); 32-bit integer data that fits 16 bits is
    16-bit data in Pillow's wider mode; float data in 0..1 is the usual normalised convention.
    Anything else has no conventional range, so its own minimum..maximum is stretched to 0..255.
    """
    values = np.asarray(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        return (values.astype(np.uint32) >> 8).astype(np.uint8)
    samples = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(samples.min()), float(samples.max())
    if image.mode == "I" and low >= 0 and high <= 65535:
        return (samples.astype(np.uint32) >> 8).astype(np.uint8)
    if image.mode == "F" and low >= 0 and high <= 1:
        return np.round(samples * 255).astype(np.uint8)
    if high == low:
        return np.zeros(samples.shape, dtype=np.uint8)
    return np.round((samples - low) * (255 / (high - low))).astype(np.uint8)
