"""Bounded decode memory: images decoded no larger than their use needs (a one-bit page never
becomes a full-size RGB image), the process-wide budget of decoded pixels in flight (bounds
concurrency, lets an oversized image through alone, never deadlocks a thread on itself, serves in
arrival order), and worker batches bounded by decoded pixels. Real Pillow, real threads, real
databases; memory is read from the kernel (``ru_maxrss``) in a fresh process."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from tests.db_fixtures import add_stored_png
from viewfinder.db.models import AssetTask
from viewfinder.imaging.budget import PixelBudget, decode_budget
from viewfinder.imaging.decode import decode_image, kept_pixels
from viewfinder.library.processing import TaskWorker
from viewfinder.storage.blobs import LocalBlobStore

REPO = Path(__file__).resolve().parents[1]
KIND = "noop"


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.01)


# --- decoding no larger than needed ------------------------------------------------------------

# A fresh interpreter decodes the page and reports how far its peak resident memory rose.
_MEASURE = """
import resource, sys
from viewfinder.imaging.decode import decode_image, upright_size_of
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
upright_size_of(data)
sized = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = decode_image(data, 50_000_000, min_side=448)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(image.width, image.height, (sized - before) // 1024, (after - before) // 1024)
"""


def test_a_one_bit_page_decoded_for_embedding_never_becomes_a_full_size_rgb_image(
    tmp_path: Path,
) -> None:
    """A 7000x7000 one-bit PNG (6 KB) as RGB is 196 MB in Pillow; reduced first it never is."""
    page = Image.new("1", (7000, 7000), 0)
    page.putpixel((10, 10), 1)
    path = tmp_path / "page.png"
    path.write_bytes(encode(page))
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    width, height, sizing_mb, grown_mb = (int(v) for v in out)
    assert (width, height) == (467, 467)  # 7000 // 448 = 15
    # Its size comes from the header: Pillow's getexif would decode the page to look for EXIF.
    assert sizing_mb < 20, f"reading the size grew peak memory by {sizing_mb} MB"
    # The one-bit page (49 MB in Pillow) and its greyscale copy; a full RGB would add 196 MB.
    assert grown_mb < 150, f"peak memory grew by {grown_mb} MB"


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "P", "RGBA"])
def test_reduced_decodes_equal_the_full_decode_box_reduced(mode: str) -> None:
    """Reducing before the RGB conversion is only an order change: same pixels as before."""
    rng = np.random.default_rng(3)
    noise = Image.fromarray(rng.integers(0, 256, (700, 901, 3), dtype=np.uint8))
    image = noise.convert(mode) if mode != "RGBA" else noise.convert("RGBA")
    if mode == "RGBA":
        image.putalpha(Image.fromarray(rng.integers(0, 256, (700, 901), dtype=np.uint8)))
    data = encode(image)
    small = decode_image(data, 50_000_000, min_side=100)
    full = decode_image(data, 50_000_000)
    assert small.size == (129, 100)  # 700 // 100 = 7
    assert np.array_equal(np.asarray(small), np.asarray(full.reduce(7)))
    assert kept_pixels(901, 700, 100) == 129 * 100


# --- the pixel budget --------------------------------------------------------------------------


def test_the_budget_bounds_the_pixels_held_at_once() -> None:
    budget = PixelBudget(100)
    release = threading.Event()
    inside: list[int] = []
    peak = [0]
    lock = threading.Lock()

    def work() -> None:
        with budget.hold(40):
            with lock:
                inside.append(40)
                peak[0] = max(peak[0], sum(inside))
            release.wait(30)
            with lock:
                inside.remove(40)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(inside) == 2)
    assert budget.in_flight == 80
    time.sleep(0.1)  # give a third a chance to (wrongly) get in
    assert len(inside) == 2
    release.set()
    for thread in threads:
        thread.join(30)
    assert peak[0] <= 100
    assert budget.in_flight == 0


def test_an_image_bigger_than_the_budget_proceeds_alone() -> None:
    budget = PixelBudget(100)
    small_done = threading.Event()
    big_inside = threading.Event()
    let_big_go = threading.Event()

    def big() -> None:
        with budget.hold(10_000):
            big_inside.set()
            let_big_go.wait(30)

    with budget.hold(10):
        thread = threading.Thread(target=big)
        thread.start()
        time.sleep(0.1)
        assert not big_inside.is_set()  # waits for the small one
    assert big_inside.wait(30)  # then runs, rather than never
    assert budget.in_flight == 100

    def small() -> None:
        with budget.hold(1):
            small_done.set()

    follower = threading.Thread(target=small)
    follower.start()
    time.sleep(0.1)
    assert not small_done.is_set()  # nothing runs beside it
    let_big_go.set()
    thread.join(30)
    assert small_done.wait(30)
    follower.join(30)


def test_a_thread_holding_the_budget_never_waits_on_itself() -> None:
    budget = PixelBudget(100)
    with budget.hold(100), budget.hold(100), budget.hold(5):
        assert budget.in_flight == 100  # the outer hold covers the inner ones
    assert budget.in_flight == 0


def test_holds_are_served_in_arrival_order() -> None:
    """A waiting big hold is not overtaken by a later small one that would fit."""
    budget = PixelBudget(100)
    order: list[str] = []

    def hold(name: str, pixels: int) -> threading.Thread:
        def run() -> None:
            with budget.hold(pixels):
                order.append(name)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with budget.hold(60):
        big = hold("big", 50)
        wait_for(lambda: budget.waiting == 1)
        small = hold("small", 10)
        wait_for(lambda: budget.waiting == 2)
        time.sleep(0.1)
        assert order == []
    big.join(30)
    small.join(30)
    assert order == ["big", "small"]


def test_decoding_waits_for_the_process_budget() -> None:
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)))
    budget = decode_budget()
    decoded: list[Image.Image] = []
    holding = threading.Event()
    release = threading.Event()

    def hog() -> None:
        with budget.hold(budget.capacity):
            holding.set()
            release.wait(30)

    hogger = threading.Thread(target=hog)
    hogger.start()
    assert holding.wait(30)
    decoder = threading.Thread(target=lambda: decoded.append(decode_image(data, 10_000)))
    decoder.start()
    wait_for(lambda: budget.waiting == 1)
    assert decoded == []
    release.set()
    decoder.join(30)
    hogger.join(30)
    assert decoded[0].size == (64, 64)


# --- worker batches bounded by decoded pixels --------------------------------------------------


class HeldPixels:
    """A processor that keeps full-resolution images, recording its batches and the budget held
    while it computes."""

    kind = KIND
    min_side: int | None = None

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.held: list[int] = []

    def compute(self, images: dict[int, Image.Image]) -> dict[int, Any]:
        self.batches.append(sorted(images))
        self.held.append(decode_budget().in_flight)
        return {i: i for i in images}

    def store(self, session: Session, asset_id: int, result: Any) -> None:
        return

    def after_commit(self, results: dict[int, Any]) -> None:
        return


def add_assets(sessions: sessionmaker[Session], blobs: LocalBlobStore, sides: list[int]) -> None:
    with sessions.begin() as s:
        for n, side in enumerate(sides):
            add_stored_png(s, blobs, encode(Image.new("L", (side, side), n)), f"{n}.png", [KIND])


def test_worker_batches_stop_at_their_decoded_pixels(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    add_assets(sessions, blobs, [100, 100, 100, 300, 10])  # 10k, 10k, 10k, 90k, 100 pixels
    processor = HeldPixels()
    worker = TaskWorker(processor, sessions, blobs, batch_size=32, batch_pixels=25_000)
    assert worker.process_batch() == 2
    with sessions() as s:
        states = sorted(t.state for t in s.query(AssetTask).filter(AssetTask.kind == KIND))
    assert states == ["done", "done", "pending", "pending", "pending"]  # the rest went back
    while worker.process_batch():
        pass
    # The oversized one goes alone; the small one after it waits for the next batch.
    assert [len(b) for b in processor.batches] == [2, 1, 1, 1]
    # Full-resolution images are held from the decode budget while the batch computes.
    assert processor.held == [20_000, 10_000, 90_000, 100]
    assert decode_budget().in_flight == 0
