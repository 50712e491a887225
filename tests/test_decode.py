"""Decoding untrusted image bytes: every pixel mode, EXIF orientation, bombs and garbage; and
cropping the decoded image."""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simplejpeg
from numpy.typing import NDArray
from PIL import Image, ImageOps

from viewfinder.errors import InvalidImageError, InvalidInputError, TooLargeError
from viewfinder.imaging.crop import crop, png_base64
from viewfinder.imaging.decode import decode_image, image_size_of, upright_size_of

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LIMIT = 10_000_000
RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pixels(image: Image.Image) -> NDArray[np.int16]:
    return np.asarray(image).astype(np.int16)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for what Pillow cannot write (48-bit RGB, lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is patched to claim ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (8, 8), RED), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def assert_rgb_without_metadata(image: Image.Image) -> None:
    assert image.mode == "RGB"
    assert image.info == {}


# --- pixel modes ---------------------------------------------------------------------------


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[:, 0] = (255, 0, 0, 255)  # opaque red
    rgba[:, 1] = (0, 0, 255, 0)  # fully transparent blue
    rgba[:, 2] = (0, 0, 0, 128)  # half-transparent black
    decoded = decode_image(encode(Image.fromarray(rgba), "PNG"), LIMIT)
    assert_rgb_without_metadata(decoded)
    out = pixels(decoded)
    assert tuple(out[0, 0]) == RED
    assert tuple(out[0, 1]) == WHITE
    assert np.all(np.abs(out[0, 2] - 127) <= 1)


def test_la_is_composited_on_white() -> None:
    la = np.array([[[0, 0], [0, 255], [200, 255]]], dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(la, mode="LA"), "PNG"), LIMIT)
    assert [tuple(p) for p in pixels(decoded)[0]] == [WHITE, (0, 0, 0), (200, 200, 200)]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_is_composited_on_white(fmt: str) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 255, 0, *RED] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)  # green, but transparent
    image.putpixel((1, 0), 1)
    decoded = decode_image(encode(image, fmt, transparency=0), LIMIT)
    assert [tuple(p) for p in pixels(decoded)[0]] == [WHITE, RED]


def test_palette_without_transparency() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 255, 0, *BLUE] + [0, 0, 0] * 254)
    image.putpixel((1, 0), 1)
    decoded = decode_image(encode(image, "PNG"), LIMIT)
    assert [tuple(p) for p in pixels(decoded)[0]] == [(0, 255, 0), BLUE]


def test_greyscale_and_bilevel() -> None:
    grey = Image.fromarray(np.array([[0, 77, 255]], dtype=np.uint8))
    assert [tuple(p) for p in pixels(decode_image(encode(grey, "PNG"), LIMIT))[0]] == [
        (0, 0, 0),
        (77, 77, 77),
        WHITE,
    ]
    bilevel = Image.new("1", (2, 1))
    bilevel.putpixel((1, 0), 1)
    decoded = decode_image(encode(bilevel, "PNG"), LIMIT)
    assert [tuple(p) for p in pixels(decoded)[0]] == [(0, 0, 0), WHITE]


def test_cmyk_jpeg_goes_through_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_on_simplejpeg(monkeypatch)
    # Pillow writes CMYK JPEGs the Adobe way (inverted), which the fast path must not see.
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 0, 0))  # magenta ink
    decoded = decode_image(encode(cmyk, "JPEG", quality=95), LIMIT)
    assert calls == []
    assert np.all(np.abs(pixels(decoded) - (255, 0, 255)) <= 3)


def test_ycbcr_tiff() -> None:
    ycbcr = Image.new("RGB", (4, 4), (200, 30, 60)).convert("YCbCr")
    data = encode(ycbcr, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "YCbCr"
    assert np.all(np.abs(pixels(decode_image(data, LIMIT)) - (200, 30, 60)) <= 2)


@pytest.mark.parametrize("dtype", ["<u2", ">u2"])
def test_sixteen_bit_greyscale_keeps_the_high_byte(dtype: str) -> None:
    values = np.array([[0, 100 * 256 + 255, 65535]], dtype=dtype)
    image = Image.fromarray(values)
    data = encode(image, "PNG" if dtype == "<u2" else "TIFF")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    assert list(pixels(decode_image(data, LIMIT))[0, :, 0]) == [0, 100, 255]


def test_sixteen_bit_rgb_png() -> None:
    row = b"\x00" + struct.pack(">3H", 0x1234, 0xABCD, 0xFFFF) + struct.pack(">3H", 0, 0, 0x00FF)
    decoded = decode_image(raw_png(2, 1, 16, 2, row), LIMIT)
    assert [tuple(p) for p in pixels(decoded)[0]] == [(0x12, 0xAB, 0xFF), (0, 0, 0)]


def test_float_tiff_in_unit_range() -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    data = encode(image, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    assert list(pixels(decode_image(data, LIMIT))[0, :, 0]) == [0, 128, 255]


def test_float_tiff_outside_unit_range_is_stretched() -> None:
    image = Image.fromarray(np.array([[-4.0, 0.0, 4.0, np.nan]], dtype=np.float32))
    decoded = pixels(decode_image(encode(image, "TIFF"), LIMIT))
    assert list(decoded[0, :3, 0]) == [0, 128, 255]


def test_32_bit_integer_tiff() -> None:
    sixteen_bit_range = Image.fromarray(np.array([[0, 7 * 256, 65535]], dtype=np.int32))
    wide_range = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    assert list(pixels(decode_image(encode(sixteen_bit_range, "TIFF"), LIMIT))[0, :, 0]) == [
        0,
        7,
        255,
    ]
    assert list(pixels(decode_image(encode(wide_range, "TIFF"), LIMIT))[0, :, 0]) == [0, 128, 255]


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})],
    ids=["gif", "webp", "apng"],
)
def test_animations_decode_their_first_frame(fmt: str, options: dict[str, Any]) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE, (0, 255, 0))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, **options)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    decoded = decode_image(data, LIMIT)
    assert decoded.size == (8, 8)
    assert np.all(pixels(decoded) == RED)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True}), ("PNG", {}), ("PPM", {})],
)
def test_lossless_formats_round_trip(fmt: str, options: dict[str, Any]) -> None:
    original = noise(33, 17)
    decoded = decode_image(encode(original, fmt, **options), LIMIT)
    assert_rgb_without_metadata(decoded)
    assert np.array_equal(pixels(decoded), pixels(original))


def test_format_is_sniffed_from_content_not_declared() -> None:
    # The bytes of a PNG that any caller might have called "photo.jpg": only content counts.
    original = noise(5, 4)
    assert np.array_equal(pixels(decode_image(encode(original, "PNG"), LIMIT)), pixels(original))


# --- JPEG fast path ------------------------------------------------------------------------


def spy_on_simplejpeg(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = simplejpeg.decode_jpeg

    def spy(data: bytes, **kwargs: Any) -> Any:
        calls.append(data)
        return real(data, **kwargs)

    monkeypatch.setattr(simplejpeg, "decode_jpeg", spy)
    return calls


def pillow_reference(data: bytes) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")


def test_baseline_jpeg_uses_simplejpeg_and_matches_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_on_simplejpeg(monkeypatch)
    data = encode(noise(96, 64), "JPEG", quality=85)
    decoded = decode_image(data, LIMIT)
    assert len(calls) == 1
    assert_rgb_without_metadata(decoded)
    assert np.abs(pixels(decoded) - pixels(pillow_reference(data))).mean() < 1.0


def test_greyscale_jpeg_uses_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_on_simplejpeg(monkeypatch)
    grey = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1)))
    data = encode(grey, "JPEG", quality=95)
    decoded = pixels(decode_image(data, LIMIT))
    assert len(calls) == 1
    assert np.array_equal(decoded[..., 0], decoded[..., 2])
    assert np.abs(decoded[..., 0] - pixels(grey)).mean() < 2.0


def test_pillow_decodes_what_simplejpeg_declines(monkeypatch: pytest.MonkeyPatch) -> None:
    def decline(data: bytes, **kwargs: Any) -> Any:
        raise ValueError("declined")

    data = encode(noise(40, 30), "JPEG", quality=90)
    expected = pixels(decode_image(data, LIMIT))
    monkeypatch.setattr(simplejpeg, "decode_jpeg", decline)
    assert np.array_equal(pixels(decode_image(data, LIMIT)), expected)


# --- EXIF orientation ----------------------------------------------------------------------


def marked_image() -> Image.Image:
    """64x32, grey, with a red 16x16 block in the stored top-left corner."""
    image = Image.new("RGB", (64, 32), (128, 128, 128))
    image.paste(RED, (0, 0, 16, 16))
    return image


def with_orientation(fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if fmt == "JPEG" else {}
    return encode(marked_image(), fmt, exif=exif.tobytes(), **options)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize(
    ("orientation", "size", "red_at"),
    [
        (1, (64, 32), (8, 8)),  # as stored
        (3, (64, 32), (56, 24)),  # 180 degrees: top-left -> bottom-right
        (6, (32, 64), (24, 8)),  # 90 clockwise: top-left -> top-right
        (8, (32, 64), (8, 56)),  # 90 counter-clockwise: top-left -> bottom-left
    ],
)
def test_exif_orientation_is_applied(
    fmt: str, orientation: int, size: tuple[int, int], red_at: tuple[int, int]
) -> None:
    data = with_orientation(fmt, orientation)
    decoded = decode_image(data, LIMIT)
    assert decoded.size == size
    out = pixels(decoded)
    x, y = red_at
    assert np.all(np.abs(out[y, x] - RED) <= 8)
    red_corner = (0 if x < size[0] / 2 else size[0] - 1, 0 if y < size[1] / 2 else size[1] - 1)
    for cx, cy in {(0, 0), (size[0] - 1, 0), (0, size[1] - 1), (size[0] - 1, size[1] - 1)}:
        expected = RED if (cx, cy) == red_corner else (128, 128, 128)
        assert np.all(np.abs(out[cy, cx] - expected) <= 8), (cx, cy)
    # The orientation is spent: applying EXIF orientation again must change nothing.
    assert ImageOps.exif_transpose(decoded).size == size


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", [1, 6])
def test_upright_size_comes_from_the_header(fmt: str, orientation: int) -> None:
    expected = (64, 32) if orientation == 1 else (32, 64)
    assert upright_size_of(with_orientation(fmt, orientation)) == expected


# --- decoding no larger than needed --------------------------------------------------------


def photo(width: int, height: int) -> Image.Image:
    """Smooth content with edges, like a photo (noise would make every scale look alike)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, ((x // 97 + y // 61) % 2) * 200], -1)
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.mark.parametrize(
    ("size", "min_side", "expected"),
    [
        ((4000, 3000), 448, (1000, 750)),  # 2/8: 1/8 would leave 375 < 448 rows
        ((4000, 3000), 1024, (1500, 1125)),  # 3/8 (libjpeg-turbo scales by M/8)
        ((1920, 1080), 448, (960, 540)),
        ((300, 200), 448, (300, 200)),  # never above the original
    ],
)
def test_a_jpeg_decodes_at_the_smallest_dct_scale_that_is_large_enough(
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
    min_side: int,
    expected: tuple[int, int],
) -> None:
    calls = spy_on_simplejpeg(monkeypatch)
    data = encode(photo(*size), "JPEG", quality=90)
    small = decode_image(data, 50_000_000, min_side=min_side)
    assert calls  # the DCT-scaling decoder, not a full decode resized afterwards
    assert small.size == expected
    # The same picture as the full decode brought to that size: within a grey level or two.
    reference = decode_image(data, 50_000_000).resize(expected, Image.Resampling.BOX)
    assert np.abs(pixels(small) - pixels(reference)).mean() < 2.0


def test_other_formats_are_box_reduced_by_an_integer_factor() -> None:
    data = encode(photo(2000, 1000), "PNG")
    small = decode_image(data, LIMIT, min_side=300)
    assert small.size == (667, 334)  # factor 3: 1000 // 300, the edge pixels kept
    reference = decode_image(data, LIMIT).reduce(3)
    assert np.array_equal(pixels(small), pixels(reference))
    assert decode_image(data, LIMIT, min_side=600).size == (2000, 1000)  # factor 1: whole


def test_a_scaled_decode_is_upright_too() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(photo(4000, 3000), "JPEG", quality=90, exif=exif.tobytes())
    assert decode_image(data, 50_000_000, min_side=448).size == (750, 1000)


# --- limits and garbage --------------------------------------------------------------------


def test_pixel_limit_is_inclusive() -> None:
    data = encode(noise(100, 100), "PNG")
    assert decode_image(data, 10_000).size == (100, 100)
    with pytest.raises(TooLargeError) as raised:
        decode_image(data, 9_999)
    message = str(raised.value)
    assert "100x100" in message
    assert "9999" in message
    assert "VIEWFINDER_MAX_IMAGE_PIXELS" in message


@pytest.mark.parametrize(
    ("data", "named_size"),
    [
        (raw_png(100_000, 100_000, 8, 0, b""), "10000000000 pixels"),  # past Pillow's ceiling too
        (raw_png(9_000, 9_000, 8, 0, b""), "9000x9000"),  # under Pillow's ceiling, over ours
        (jpeg_with_size(60_000, 60_000), "3600000000 pixels"),
        (jpeg_with_size(9_000, 9_000), "9000x9000"),
    ],
    ids=["png-10G", "png-81M", "jpeg-3.6G", "jpeg-81M"],
)
def test_decompression_bomb_is_refused_from_the_header(
    data: bytes, named_size: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_on_simplejpeg(monkeypatch)
    assert len(data) < 1000
    started = time.perf_counter()
    with pytest.raises(TooLargeError) as raised:
        decode_image(data, 50_000_000)
    assert time.perf_counter() - started < 0.5
    assert calls == []
    message = str(raised.value)
    assert named_size in message
    assert "VIEWFINDER_MAX_IMAGE_PIXELS" in message


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_as_error_is_a_too_large_error() -> None:
    # Between Pillow's warning and error thresholds, a process running with warnings as errors
    # gets the warning raised from Image.open: it must still be a TooLargeError, not a crash.
    side = int((Image.MAX_IMAGE_PIXELS or 0) ** 0.5) + 100
    with pytest.raises(TooLargeError):
        decode_image(raw_png(side, side, 8, 0, b""), 10**12)


def truncated_jpeg() -> bytes:
    data = encode(noise(256, 256), "JPEG", quality=90)
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    data = encode(noise(256, 256), "PNG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (np.random.default_rng(1).bytes(4096), "not an image"),
        (b"\xff\xd8\xff" + np.random.default_rng(2).bytes(4096), ""),
        (b"\x89PNG\r\n\x1a\n" + np.random.default_rng(3).bytes(4096), ""),
        (truncated_jpeg(), ""),
        (truncated_png(), ""),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
        (encode(noise(8, 8), "TGA"), "not an image"),
        (b"GIF89a", ""),
    ],
    ids=[
        "empty",
        "random",
        "jpeg-magic-then-garbage",
        "png-magic-then-garbage",
        "truncated-jpeg",
        "truncated-png",
        "eps-never-runs-ghostscript",
        "tga-not-allowed",
        "gif-header-only",
    ],
)
def test_undecodable_bytes_are_invalid_images(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidImageError) as raised:
        decode_image(data, LIMIT)
    message = str(raised.value)
    assert message.startswith("Could not process image: ")
    assert reason in message
    assert len(message) < 400


def test_image_size_of_reads_only_the_header() -> None:
    assert image_size_of(encode(noise(31, 7), "PNG")) == (31, 7)
    assert image_size_of(raw_png(100_000, 3, 8, 0, b"")) == (100_000, 3)
    with pytest.raises(InvalidImageError):
        image_size_of(b"not an image")


# --- real photos ---------------------------------------------------------------------------


def open_file(path: Path) -> Image.Image:
    """The image at ``path``, fully loaded, its file closed."""
    with Image.open(path) as image:
        image.load()
        return image.copy()


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared is not beside the repository)")
    return path


def shared_images(folder: str, predicate: Callable[[bytes], bool]) -> list[Path]:
    directory = SHARED_DATA / folder
    if not directory.is_dir():
        pytest.skip(f"{directory} is absent (../shared is not beside the repository)")
    return [path for path in sorted(directory.iterdir()) if predicate(path.read_bytes()[:8])]


def is_jpeg(head: bytes) -> bool:
    return head.startswith(b"\xff\xd8\xff")


@pytest.mark.shared
def test_real_rgba_png_from_face_recognition() -> None:
    path = shared_file("faces_face_recognition", "tests__test_images__32bit.png")
    assert open_file(path).mode == "RGBA"
    decoded = decode_image(path.read_bytes(), LIMIT)
    assert_rgb_without_metadata(decoded)
    assert decoded.size == (626, 1200)
    reference = Image.alpha_composite(
        Image.new("RGBA", decoded.size, (*WHITE, 255)), open_file(path).convert("RGBA")
    ).convert("RGB")
    assert np.array_equal(pixels(decoded), pixels(reference))


@pytest.mark.shared
@pytest.mark.parametrize("name", ["camera.png", "page.png"])
def test_real_greyscale_pngs(name: str) -> None:
    path = shared_file("captioned_skimage", name)
    assert open_file(path).mode == "L"
    decoded = pixels(decode_image(path.read_bytes(), LIMIT))
    grey = pixels(open_file(path))
    for channel in range(3):
        assert np.array_equal(decoded[..., channel], grey)


@pytest.mark.shared
def test_real_transparent_horse_is_on_white() -> None:
    path = shared_file("captioned_skimage", "horse.png")
    alpha = np.asarray(open_file(path).getchannel("A"))
    decoded = pixels(decode_image(path.read_bytes(), LIMIT))
    assert np.all(decoded[alpha == 0] == 255)


@pytest.mark.shared
@pytest.mark.parametrize("folder", ["faces_face_recognition", "captioned_skimage"])
def test_real_jpegs_match_pillow(folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = shared_images(folder, is_jpeg)
    assert paths
    calls = spy_on_simplejpeg(monkeypatch)
    for path in paths:
        data = path.read_bytes()
        decoded = decode_image(data, 50_000_000)
        reference = pillow_reference(data)
        assert decoded.size == reference.size, path.name
        assert np.abs(pixels(decoded) - pixels(reference)).mean() < 1.0, path.name
    assert len(calls) == len(paths)


# --- cropping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "used"),
    [
        ((10.4, 5.5, 20.6, 15.49), [10, 6, 21, 15]),  # rounded, halves up
        ((0.5, 1.5, 2.5, 3.5), [1, 2, 3, 4]),  # not round-half-to-even
        ((-5.0, -5.0, 1000.0, 1000.0), [0, 0, 64, 32]),  # clipped to the image
        ((20.0, 15.0, 10.0, 5.0), [10, 5, 20, 15]),  # corners in either order
        ((5.0, 5.0, 5.0, 5.0), [5, 5, 6, 6]),  # empty box -> one pixel
        ((100.0, 100.0, 120.0, 120.0), [63, 31, 64, 32]),  # outside -> nearest edge pixel
    ],
)
def test_crop_box_is_rounded_clipped_and_never_empty(
    box: tuple[float, float, float, float], used: list[int]
) -> None:
    image = noise(64, 32)
    cropped, actual = crop(image, box)
    assert actual == used
    assert cropped.size == (used[2] - used[0], used[3] - used[1])
    assert np.array_equal(pixels(cropped), pixels(image)[used[1] : used[3], used[0] : used[2]])


def test_crop_refuses_non_finite_boxes() -> None:
    with pytest.raises(InvalidInputError, match="finite"):
        crop(noise(8, 8), (0.0, 0.0, float("nan"), 4.0))


def test_png_base64_round_trips() -> None:
    image = noise(19, 11)
    encoded = png_base64(image)
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as decoded:
        assert decoded.format == "PNG"
        assert np.array_equal(pixels(decoded), pixels(image))
