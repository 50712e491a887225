"""Batch analysis benchmark: one POST /analyze_images/ for N URLs against N sequential
POST /analyze_image/ calls for the same URLs, on the same server, as a ratio measured in one run.

The server is ``viewfinder serve`` in its own process; the images (the eight COCO photos of
../shared/data/coco8 when present, random JPEGs otherwise) come from a loopback HTTP server.
Models: CLIP tiny (default) or with the real ViT-B/32 dimensions (``--clip base``: random
weights built offline, the compute equals the real checkpoint's), tiny DINOv2. The models'
batching (forward passes, items) is read from GET /api/v1/models around each phase.

    .venv/bin/python -m benchmarks.analyze_batch [--urls 16] [--rounds 3] [--clip tiny|base]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from viewfinder.settings import Settings
from viewfinder.testing import checkpoints
from viewfinder.testing.server import ServeProcess

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
COCO = SHARED / "data" / "coco8" / "coco8" / "images"
TASKS = [
    {"operation_id": "clip", "type": "embed_clip_vit_b_32"},
    {"operation_id": "dino", "type": "embed_dino_v2"},
]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def serving(root: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_images(root: Path, count: int) -> list[str]:
    """``count`` distinct image files in ``root`` (COCO photos, then random JPEGs)."""
    names = []
    photos = sorted(COCO.rglob("*.jpg")) if COCO.is_dir() else []
    rng = np.random.default_rng(0)
    for i in range(count):
        name = f"{i:03d}.jpg"
        if i < len(photos):
            (root / name).write_bytes(photos[i].read_bytes())
        else:
            pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
            out = io.BytesIO()
            Image.fromarray(pixels).save(out, "JPEG", quality=90)
            (root / name).write_bytes(out.getvalue())
        names.append(name)
    return names


def batching(client: httpx.Client, url: str) -> dict[str, tuple[int, int]]:
    return {
        m["name"]: (int(m["batches_run"]), int(m["items_run"]))
        for m in client.get(f"{url}/api/v1/models").json()
    }


def forwards(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> str:
    return ", ".join(
        f"{name} {after[name][0] - before.get(name, (0, 0))[0]} forwards/"
        f"{after[name][1] - before.get(name, (0, 0))[1]} items"
        for name in ("clip_image", "dinov2")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clip", choices=("tiny", "base"), default="tiny")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "web").mkdir()
        names = write_images(root / "web", args.urls)
        clip = checkpoints.build_clip(root / "clip", args.clip)
        dino = checkpoints.build_tiny_dinov2(root / "dino")
        settings = Settings(
            data_dir=root / "data",
            offline=True,
            clip_model=str(clip),
            dinov2_model=str(dino),
            fetch_allow_hosts=["127.0.0.1:*"],
            analyze_batch_max_urls=max(32, args.urls),
            model_idle_ttl_s=0,
            worker_threads=0,
            log_level="WARNING",
        )
        with (
            serving(root / "web") as site,
            ServeProcess(settings) as server,
            httpx.Client(timeout=600) as client,
        ):
            urls = [f"{site}/{name}" for name in names]
            client.post(
                f"{server.url}/analyze_image/", json={"image_url": urls[0], "tasks": TASKS}
            ).raise_for_status()  # load and warm the models
            sequential, batched = [], []
            for _ in range(args.rounds):
                before = batching(client, server.url)
                started = time.perf_counter()
                for url in urls:
                    response = client.post(
                        f"{server.url}/analyze_image/", json={"image_url": url, "tasks": TASKS}
                    )
                    response.raise_for_status()
                sequential.append(time.perf_counter() - started)
                middle = batching(client, server.url)
                started = time.perf_counter()
                response = client.post(
                    f"{server.url}/analyze_images/", json={"image_urls": urls, "tasks": TASKS}
                )
                response.raise_for_status()
                batched.append(time.perf_counter() - started)
                after = batching(client, server.url)
                items = response.json()["items"]
                assert all(item["results"]["clip"]["status"] == "success" for item in items)
            print(
                f"{args.urls} URLs, tasks: clip ({args.clip}) + dinov2 (tiny), {args.rounds} rounds"
            )
            print(f"  sequential /analyze_image/ x{args.urls}: {forwards(before, middle)}")
            print(f"  one /analyze_images/:         {forwards(middle, after)}")
            seq, bat = statistics.median(sequential), statistics.median(batched)
            print(
                f"  median seconds: sequential {seq:.3f}, batch {bat:.3f}; "
                f"images/s {args.urls / seq:.1f} vs {args.urls / bat:.1f}; ratio {seq / bat:.2f}x"
            )


if __name__ == "__main__":
    main()
