"""What ingest records about an image besides its pixels: format, capture time, derived JPEGs."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from PIL import Image

THUMBNAIL_SIZE = 256
PREVIEW_SIZE = 1024
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_DATETIME_DIGITIZED = 36868
_OFFSET_TIME_ORIGINAL = 36881
_DATETIME = 306


@dataclass(frozen=True)
class ImageFacts:
    content_type: str
    captured_at: datetime | None


def image_facts(data: bytes) -> ImageFacts:
    """Content type from the sniffed format, capture time from EXIF; call after decoding worked."""
    with Image.open(io.BytesIO(data)) as image:
        fmt = image.format or ""
        content_type = Image.MIME.get(fmt, f"image/{fmt.lower()}" if fmt else "image/unknown")
        try:
            # A PNG's eXIf chunk after the pixels is only found by decoding them all (Pillow's
            # getexif does): the pixels ingest has already decoded once, at a budgeted size.
            header_only = fmt == "PNG" and "exif" not in image.info
            captured = None if header_only else _capture_time(image.getexif())
        except (ValueError, TypeError, KeyError, OSError):
            captured = None  # unreadable EXIF is not a reason to refuse an image
    return ImageFacts(content_type, captured)


def _capture_time(exif: Image.Exif) -> datetime | None:
    sub = exif.get_ifd(_EXIF_IFD)
    raw = sub.get(_DATETIME_ORIGINAL) or sub.get(_DATETIME_DIGITIZED) or exif.get(_DATETIME)
    if not isinstance(raw, str):
        return None
    stamp = datetime.strptime(raw.strip("\x00 ").strip(), "%Y:%m:%d %H:%M:%S")
    offset = sub.get(_OFFSET_TIME_ORIGINAL)
    # EXIF times are local wall-clock times; without an offset tag we store them as UTC.
    zone = _parse_offset(offset) if isinstance(offset, str) else UTC
    return stamp.replace(tzinfo=zone)


def _parse_offset(text: str) -> timezone:
    sign = -1 if text.strip().startswith("-") else 1
    hours, _, minutes = text.strip().lstrip("+-").partition(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))


def preview_and_thumbnail(image: Image.Image, quality: int = 85) -> tuple[bytes, bytes]:
    """JPEGs of the image downscaled to ``PREVIEW_SIZE`` and ``THUMBNAIL_SIZE`` on the longest
    side (never upscaled). The thumbnail is made from the preview: the same picture for a
    fraction of the resampling."""
    preview = _downscaled(image, PREVIEW_SIZE)
    return _jpeg(preview, quality), _jpeg(_downscaled(preview, THUMBNAIL_SIZE), quality)


def _downscaled(image: Image.Image, longest_side: int) -> Image.Image:
    copy = image.copy()
    copy.thumbnail((longest_side, longest_side), Image.Resampling.BICUBIC)
    return copy


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=False)
    return out.getvalue()
