"""OCR benchmark: milliseconds per image and the words read, with the real PP-OCR models the
rapidocr wheel ships, on 1024-pixel images with and without text.

Sets: scenes rendered with known words (``viewfinder.testing.text_images``: their recall is
printed), and the photos of ../shared/data (person_scenes, captioned_skimage, coco8) resized to
1024 pixels on the longer side, as a library's photos arrive at the OCR worker. Each image is
read ``--repeat`` times after one warm-up; the median run counts, in wall-clock milliseconds and
in CPU milliseconds (every thread of this process: on a machine other work shares, the CPU time
is the figure that holds). ONNX Runtime uses ``--threads`` threads (default: every core).

    .venv/bin/python -m benchmarks.ocr [--det-max-side 736] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from viewfinder.library.words import words_of
from viewfinder.model_registry import model_entries
from viewfinder.models.ocr import OcrReader, OcrResult
from viewfinder.settings import Settings
from viewfinder.testing import text_images

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTO_SETS = ("person_scenes", "captioned_skimage", "coco8")
SIDE = 1024


@dataclass
class Timed:
    name: str
    ms: float  # wall clock
    cpu_ms: float  # CPU time of every thread of the process: other processes do not inflate it
    result: OcrResult


def load_reader(det_max_side: int | None, threads: int | None) -> OcrReader:
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data), offline=True, torch_threads=threads)
        entry = model_entries(settings, "cpu")["ocr"]
        path = entry.resolve(settings)
    reader = OcrReader(path, threads=threads)
    if det_max_side is not None:
        reader.det_max_side = det_max_side
    return reader


def at_side(image: Image.Image, side: int = SIDE) -> Image.Image:
    rgb = image.convert("RGB")
    scale = side / max(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.LANCZOS)


def photos() -> list[tuple[str, Image.Image]]:
    found = []
    for folder in PHOTO_SETS:
        root = SHARED_DATA / folder
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in {".jpg", ".jpeg", ".png"}:
                continue
            with Image.open(path) as image:
                found.append((f"{folder}/{path.name}", at_side(image)))
    return found


def read(reader: OcrReader, image: Image.Image) -> OcrResult:
    prepared = reader.preprocess(image)
    (raw,) = reader.forward([prepared])
    return reader.postprocess(raw, prepared)


def timed(reader: OcrReader, name: str, image: Image.Image, repeat: int) -> Timed:
    runs, cpu = [], []
    result = read(reader, image)
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = read(reader, image)
        runs.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return Timed(name, statistics.median(runs), statistics.median(cpu), result)


def summary(label: str, rows: list[Timed]) -> None:
    if not rows:
        print(f"{label}: no images")
        return
    with_text = [r for r in rows if r.result.text]
    without = [r for r in rows if not r.result.text]
    words = sum(len(words_of(r.result.text)) for r in rows)

    def mean(part: list[Timed]) -> str:
        if not part:
            return "-"
        wall = statistics.fmean(r.ms for r in part)
        return f"{wall:.0f} ms/image (CPU {statistics.fmean(r.cpu_ms for r in part):.0f} ms)"

    print(
        f"{label}: {len(rows)} images, {mean(rows)}; {len(with_text)} with text: "
        f"{mean(with_text)}; {len(without)} without: {mean(without)}; "
        f"{words} words recognised"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--det-max-side", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="print each image's text")
    args = parser.parse_args()
    reader = load_reader(args.det_max_side, args.threads)
    print(f"detector input: longer side <= {reader.det_max_side} px; images at {SIDE} px")
    read(reader, reader.warmup_item())

    rendered: list[Timed] = []
    if text_images.font_files():
        found = wanted = 0
        for scene in text_images.scenes():
            row = timed(reader, scene.name, at_side(scene.image), args.repeat)
            rendered.append(row)
            got = set(words_of(row.result.text))
            found += len(scene.words & got)
            wanted += len(scene.words)
            missing = sorted(scene.words - got)
            print(f"  {scene.name:8} {row.ms:6.0f} ms  missed {missing}  {row.result.text!r}")
        summary("rendered scenes", rendered)
        print(f"rendered words recalled: {found}/{wanted} ({found / max(1, wanted):.1%})")
    else:
        print("rendered scenes: skipped (no TrueType fonts on this machine)")

    real = [timed(reader, name, image, args.repeat) for name, image in photos()]
    if args.verbose:
        for row in real:
            print(f"  {row.name:55} {row.ms:6.0f} ms  {row.result.text!r}")
    summary("photos from ../shared/data", real)
    if real:
        with_text = sorted((r for r in real if r.result.text), key=lambda r: -r.ms)
        for row in with_text[:8]:
            print(f"  {row.name:55} {row.ms:6.0f} ms  {row.result.text[:70]!r}")
    summary("all", rendered + real)


if __name__ == "__main__":
    main()
