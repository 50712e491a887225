"""What ingest records about an image besides its pixels (format, capture time, derived JPEGs),
and what a photo viewer shows of its EXIF (camera, lens, exposure, place)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO

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


_GPS_IFD = 0x8825
_MAKE, _MODEL, _ORIENTATION, _SOFTWARE = 0x010F, 0x0110, 0x0112, 0x0131
_EXPOSURE_TIME, _F_NUMBER, _ISO, _FOCAL_LENGTH = 0x829A, 0x829D, 0x8827, 0x920A
_FOCAL_35MM, _LENS_MAKE, _LENS_MODEL, _FLASH = 0xA405, 0xA433, 0xA434, 0x9209


@dataclass(frozen=True)
class CameraFacts:
    """What the camera wrote in the EXIF, for a photo viewer; None where a tag is absent."""

    format: str | None = None
    captured_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    exposure_time: str | None = None  # "1/250" or "2.5" (seconds)
    f_number: float | None = None
    iso: int | None = None
    focal_length_mm: float | None = None
    focal_length_35mm: int | None = None
    flash_fired: bool | None = None
    orientation: int | None = None  # EXIF 1-8; 1 = upright
    software: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def camera_facts(source: Path | IO[bytes]) -> CameraFacts:
    """The EXIF of an image file (a path or an open binary file), read from its header: no
    pixels are decoded (a PNG's eXIf chunk after the pixels is left unread, as at ingest).
    Unreadable or absent EXIF gives empty facts, never an error."""
    fmt = None
    try:
        with Image.open(source) as image:
            fmt = image.format
            if fmt == "PNG" and "exif" not in image.info:
                return CameraFacts(format=fmt)
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            gps = exif.get_ifd(_GPS_IFD)
            captured = _capture_time(exif)
    except (ValueError, TypeError, KeyError, OSError, SyntaxError, Image.DecompressionBombError):
        return CameraFacts(format=fmt)
    flash = _number(sub.get(_FLASH))
    latitude, longitude = _gps(gps)
    lens = " ".join(t for t in (_text(sub.get(_LENS_MAKE)), _text(sub.get(_LENS_MODEL))) if t)
    return CameraFacts(
        format=fmt,
        captured_at=captured,
        camera_make=_text(exif.get(_MAKE)),
        camera_model=_text(exif.get(_MODEL)),
        lens=lens or None,
        exposure_time=_exposure(_number(sub.get(_EXPOSURE_TIME))),
        f_number=_rounded(_number(sub.get(_F_NUMBER)), 1),
        iso=_integer(sub.get(_ISO)),
        focal_length_mm=_rounded(_number(sub.get(_FOCAL_LENGTH)), 1),
        focal_length_35mm=_integer(sub.get(_FOCAL_35MM)),
        flash_fired=None if flash is None else bool(int(flash) & 1),
        orientation=_integer(exif.get(_ORIENTATION)),
        software=_text(exif.get(_SOFTWARE)),
        latitude=latitude,
        longitude=longitude,
    )


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.strip("\x00 ").strip()
    return cleaned[:200] or None


def _number(value: object) -> float | None:
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    try:
        number = float(value)  # type: ignore[arg-type]  # IFDRational, int, float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _exposure(seconds: float | None) -> str | None:
    if seconds is None or seconds <= 0:
        return None
    if seconds < 1:
        return f"1/{round(1 / seconds)}"
    return f"{seconds:g}"


def _gps(gps: dict[int, object]) -> tuple[float | None, float | None]:
    """Decimal degrees from GPSLatitude/Ref (2/1) and GPSLongitude/Ref (4/3)."""

    def degrees(value: object, ref: object, negative: str) -> float | None:
        if not isinstance(value, tuple | list) or len(value) != 3:
            return None
        parts = [_number(v) for v in value]
        if any(p is None for p in parts):
            return None
        d, m, s = (float(p) for p in parts)  # type: ignore[arg-type]
        result = d + m / 60 + s / 3600
        return round(-result if _text(ref) == negative else result, 6)

    return degrees(gps.get(2), gps.get(1), "S"), degrees(gps.get(4), gps.get(3), "W")
