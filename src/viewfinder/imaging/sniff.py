"""Telling image files from other files cheaply, before reading them whole.

A folder of photos also holds READMEs, CSVs, sidecar ``.txt`` captions and ``.json`` exports.
``looks_like_image`` reads a file's first bytes and checks them against the signatures of the
formats ``decode_image`` accepts (``imaging.decode.ALLOWED_FORMATS``); a file that fails it is
not an image and is never decoded. It is deliberately lenient (a signature says "try it", not
"it is valid"): ``decode_image`` still gives the verdict on whatever passes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

# The file name endings of the formats decode_image accepts: a name says "image" with one.
IMAGE_SUFFIXES: Final = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".gif", ".webp", ".avif",
        ".bmp", ".dib", ".tif", ".tiff", ".ico", ".ppm", ".pgm", ".pbm", ".pnm",
    }
)  # fmt: skip

HEAD_BYTES: Final = 32  # enough for every signature below

_PREFIXES: Final = (
    b"\xff\xd8\xff",  # JPEG, MPO
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"\x00\x00\x01\x00",  # ICO
)

_BMP_HEADER_SIZES: Final = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_NETPBM: Final = re.compile(rb"P[1-6]\s+(?:#[^\n]*\n\s*)*\d|P7\s+(?:#[^\n]*\n\s*)*[A-Z]")


def looks_like_image(head: bytes) -> bool:
    """Whether a file starting with ``head`` (its first ``HEAD_BYTES``) may be an image of an
    accepted format."""
    if head.startswith(_PREFIXES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[:2] == b"BM" and len(head) >= 18:  # BMP: then a known DIB header size at 14
        return int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES
    if head[4:8] == b"ftyp":  # ISO media: AVIF (and HEIF, which decode_image then refuses)
        return True
    # Netpbm: P1-P7, whitespace, comments, then the width (or PAM's first header line).
    return _NETPBM.match(head) is not None


def is_not_an_image(path: Path) -> bool:
    """A file that is plainly no image: a name without an image ending *and* content without an
    image signature. (A ``.jpg`` that does not start like a JPEG is a broken image, reported as
    one by the decoder; a photo saved without an ending is still found by its content.)"""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    try:
        with path.open("rb") as file:
            head = file.read(HEAD_BYTES)
    except OSError:
        return False  # the caller's read reports the error
    return not looks_like_image(head)
