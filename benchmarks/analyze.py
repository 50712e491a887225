"""Analysis API benchmark: per-operation latency, then the throughput of 16 concurrent HTTP clients
with the micro-batcher against batch size 1, printed as a ratio measured in one run.

Models: CLIP with the real ViT-B/32 dimensions (random weights built offline: the compute equals
the real checkpoint's), tiny DINOv2/DINOv3/BLIP for the latency table, and the real YOLOX-nano
and YuNet weights from ../shared when present. Traffic stays on 127.0.0.1.

    .venv/bin/python -m benchmarks.analyze [--requests 96] [--clients 16]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from viewfinder.settings import Settings
from viewfinder.testing import checkpoints

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTO = SHARED / "data" / "faces_face_recognition" / "examples__obama-720p.jpg"


def _photo_bytes() -> bytes:
    if PHOTO.is_file():
        return PHOTO.read_bytes()
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


def _settings(root: Path, models: dict[str, Path], batch: int, wait_ms: float = 5) -> Settings:
    return Settings(
        data_dir=root / f"data-{batch}",
        offline=True,
        clip_model=str(models["clip"]),
        dinov2_model=str(models["dinov2"]),
        dinov3_model=str(models["dinov3"]),
        caption_model=str(models["caption"]),
        person_detector_model=str(SHARED / "models" / "yolox" / "yolox_nano.onnx"),
        yunet_model=str(SHARED / "models" / "yunet" / "face_detection_yunet_opencv_zoo.onnx"),
        batch_max_size=batch,
        batch_max_wait_ms=wait_ms,
        model_idle_ttl_s=0,
        worker_threads=0,
    )


def _task(op_id: str, kind: str, **params: Any) -> dict[str, Any]:
    return {"operation_id": op_id, "type": kind, "params": params}


LATENCY_TASKS = [
    ("detect_bounding_box:prominent_person", _task("t", "detect_bounding_box")),
    (
        "detect_bounding_box:prominent_face",
        _task("t", "detect_bounding_box", target="prominent_face", face_context="whole_image"),
    ),
    ("embed_clip_vit_b_32 (ViT-B/32 size)", _task("t", "embed_clip_vit_b_32")),
    ("embed_dino_v2 (tiny)", _task("t", "embed_dino_v2")),
    ("embed_dino_v3 (tiny)", _task("t", "embed_dino_v3")),
    ("describe_image (tiny)", _task("t", "describe_image", max_length=20)),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``viewfinder serve`` in its own process on a loopback port, so the clients' CPU work does
    not share the server's interpreter (as with real clients)."""

    def __init__(self, settings: Settings) -> None:
        env = {**os.environ, "VIEWFINDER_LOG_LEVEL": "WARNING"}
        for name, value in settings.model_dump().items():
            if value is not None and not isinstance(value, list | dict):
                env[f"VIEWFINDER_{name.upper()}"] = str(value)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "viewfinder", "serve", "--port", str(self.port)],
            env=self._env,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(timeout=60)

    def batching(self, model: str) -> tuple[int, int]:
        for entry in httpx.get(f"{self.url}/api/v1/models").json():
            if entry["name"] == model:
                return int(entry["batches_run"]), int(entry["items_run"])
        raise KeyError(model)


def _post(client: httpx.Client, url: str, photo: bytes, tasks: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    response = client.post(
        f"{url}/analyze_image_upload/",
        files={"image_file": ("photo.jpg", photo)},
        data={"tasks_json": json.dumps(tasks)},
        timeout=600,
    )
    response.raise_for_status()
    statuses = {r["status"] for r in response.json()["results"].values()}
    if statuses != {"success"}:
        raise RuntimeError(f"benchmark request failed: {response.text[:300]}")
    return time.perf_counter() - started


def latency_table(settings: Settings, photo: bytes, repeats: int) -> None:
    print(f"per-operation latency over HTTP, {repeats} sequential requests each (ms)")
    print(f"{'operation':44} {'p50':>8} {'p90':>8}")
    with Server(settings) as server, httpx.Client() as client:
        for label, task in LATENCY_TASKS:
            if "detect" in label and not SHARED.is_dir():
                continue
            _post(client, server.url, photo, [task])  # load + warm up
            times = sorted(_post(client, server.url, photo, [task]) for _ in range(repeats))
            p50 = statistics.median(times) * 1000
            p90 = times[int(0.9 * (len(times) - 1))] * 1000
            print(f"{label:44} {p50:8.1f} {p90:8.1f}")


def throughput(settings: Settings, photo: bytes, requests: int, clients: int) -> tuple[float, int]:
    """Images per second for ``clients`` concurrent clients asking for a CLIP embedding."""
    tasks = [_task("e", "embed_clip_vit_b_32")]
    limits = httpx.Limits(max_connections=64)
    with Server(settings) as server, httpx.Client(limits=limits) as client:
        _post(client, server.url, photo, tasks)
        before_batches, before_items = server.batching("clip_image")
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: _post(client, server.url, photo, tasks), range(requests)))
        elapsed = time.perf_counter() - started
        after_batches, after_items = server.batching("clip_image")
        mean_batch = (after_items - before_items) / max(after_batches - before_batches, 1)
    return requests / elapsed, round(mean_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=20,
        help="the batcher's wait for more items (VIEWFINDER_BATCH_MAX_WAIT_MS) in the batched run",
    )
    args = parser.parse_args()
    photo = _photo_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = {
            "clip": checkpoints.build_clip(root / "clip-b32", size="base"),
            "dinov2": checkpoints.build_tiny_dinov2(root / "dinov2"),
            "dinov3": checkpoints.build_tiny_dinov3(root / "dinov3"),
            "caption": checkpoints.build_tiny_blip(root / "blip"),
        }
        latency_table(_settings(root, models, 16), photo, args.repeats)
        print()
        batched, mean_batch = throughput(
            _settings(root, models, 16, args.max_wait_ms), photo, args.requests, args.clients
        )
        single, _ = throughput(_settings(root, models, 1), photo, args.requests, args.clients)
    print(f"throughput, {args.clients} concurrent clients, {args.requests} requests, CLIP ViT-B/32")
    print(
        f"  micro-batcher (max 16, wait {args.max_wait_ms:g} ms, mean batch {mean_batch}): "
        f"{batched:7.2f} images/s"
    )
    print(f"  batch size 1:                          {single:7.2f} images/s")
    print(f"  ratio: {batched / single:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
