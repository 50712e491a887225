"""Photos with known words in them, rendered with the machine's TrueType fonts: what the OCR tests
and ``benchmarks/ocr.py`` read. Each scene says which words it shows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from viewfinder.library.words import words_of

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# Preferred faces: a bold sans, a serif, a monospace; other TTFs stand in for missing ones.
FONT_NAMES = ("DejaVuSans-Bold.ttf", "LiberationSerif-Regular.ttf", "DejaVuSansMono.ttf")


def font_files() -> list[Path]:
    """Three TrueType fonts (fewer when the machine has fewer; none: no scene can be drawn)."""
    found = sorted(p for d in FONT_DIRS if d.is_dir() for p in d.rglob("*.ttf"))
    by_name = {p.name: p for p in found}
    chosen = [by_name[n] for n in FONT_NAMES if n in by_name]
    return chosen + [p for p in found if p not in chosen][: max(0, 3 - len(chosen))]


def _font(index: int, size: int) -> ImageFont.FreeTypeFont:
    files = font_files()
    if not files:
        raise FileNotFoundError("no TrueType fonts under " + ", ".join(map(str, FONT_DIRS)))
    return ImageFont.truetype(str(files[index % len(files)]), size)


@dataclass(frozen=True)
class Scene:
    name: str
    image: Image.Image
    words: frozenset[str]  # every word drawn, as ``library.words.words_of`` gives them


def background(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth coloured gradient with sensor-like noise: a wall or a sky, not a blank page."""
    rng = np.random.default_rng(seed)
    width, height = size
    ramp = np.linspace(0, 1, width)[None, :, None] * np.linspace(0.6, 1, height)[:, None, None]
    base = rng.uniform(120, 220, 3) * (0.75 + 0.25 * ramp)
    pixels = np.clip(base + rng.normal(0, 6, (height, width, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def _rotated_line(image: Image.Image, text: str, at: tuple[int, int], angle: float) -> None:
    line = Image.new("RGBA", (900, 120), (0, 0, 0, 0))
    ImageDraw.Draw(line).text((10, 10), text, fill=(10, 60, 10, 255), font=_font(1, 40))
    turned = line.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    image.paste(turned, at, turned)


def sign() -> Scene:
    """Four lines in three fonts from 64 px down to 22 px, and a line rotated by 20 degrees."""
    image = background((1024, 768), seed=1)
    draw = ImageDraw.Draw(image)
    draw.text((60, 50), "HARBOUR 1987", fill=(20, 20, 90), font=_font(0, 64))
    draw.text((60, 170), "Fresh lobster sold daily", fill=(15, 15, 15), font=_font(1, 40))
    draw.text((60, 250), "Opening hours 9am to 5pm", fill=(90, 15, 15), font=_font(2, 28))
    draw.text((60, 310), "Ask inside for the ferry timetable", fill=(30, 30, 30), font=_font(0, 22))
    _rotated_line(image, "Lighthouse Road", (380, 420), 20)
    words = words_of(
        "HARBOUR 1987 Fresh lobster sold daily Opening hours 9am to 5pm Ask inside for the "
        "ferry timetable Lighthouse Road"
    )
    return Scene("sign", image, frozenset(words))


def street() -> Scene:
    """Light text on a darker wall, and a line rotated the other way."""
    image = background((1024, 683), seed=2)
    draw = ImageDraw.Draw(image)
    draw.text((120, 200), "Museum of Modern Art", fill=(245, 245, 245), font=_font(1, 56))
    _rotated_line(image, "Station Square", (300, 330), -12)
    return Scene("street", image, frozenset(words_of("Museum of Modern Art Station Square")))


def poster() -> Scene:
    """A dense block of small print (18-26 px) under a heading."""
    image = background((768, 1024), seed=4)
    draw = ImageDraw.Draw(image)
    draw.text((50, 60), "Summer Concert", fill=(120, 10, 10), font=_font(0, 54))
    lines = ["Saturday 14 July at 8pm", "City Park bandstand", "Tickets free for children"]
    for row, text in enumerate(lines):
        draw.text((50, 180 + 50 * row), text, fill=(20, 20, 20), font=_font(2, 26 - 4 * row))
    return Scene("poster", image, frozenset(words_of(" ".join(["Summer Concert", *lines]))))


def plain() -> Scene:
    return Scene("plain", background((1024, 768), seed=3), frozenset())


def scenes() -> list[Scene]:
    return [sign(), street(), poster(), plain()]
