"""Analysis API benchmark: per-operation latency, then the throughput of 16 concurrent HTTP clients
with the micro-batcher against batch size 1, printed as a ratio measured in one run.

Models: CLIP with the real ViT-B/32 dimensions (random weights built offline: the compute equals
the real checkpoint's), tiny DINOv2/DINOv3/BLIP for the latency table, and the real YOLOX-nano
and YuNet weights from ../shared when present. Traffic stays on 127.0.0.1.

The throughput section also measures the model alone (no HTTP, no decoding) at batch 1 and at
the batcher's maximum: no batcher can beat that ratio, so it says how much of the target the
hardware allows. ``--cpu-bf16`` runs both servers with VIEWFINDER_CPU_BF16=1, ``--cpu-int8``
with VIEWFINDER_CPU_INT8=1 (the model alone is then the int8 ONNX graph the servers run, built
once into a model cache the servers share).

    .venv/bin/python -m benchmarks.analyze [--requests 160] [--clients 16] [--cpu-bf16|--cpu-int8]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from viewfinder.imaging.decode import decode_image
from viewfinder.model_registry import model_entries
from viewfinder.models.clip import ClipImageEncoder
from viewfinder.runtime.device import FP32, select_device
from viewfinder.settings import Settings
from viewfinder.testing import checkpoints
from viewfinder.testing.server import ServeProcess

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTO = SHARED / "data" / "faces_face_recognition" / "examples__obama-720p.jpg"


def _photo_bytes() -> bytes:
    if PHOTO.is_file():
        return PHOTO.read_bytes()
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


def _settings(
    root: Path,
    models: dict[str, Path],
    batch: int,
    wait_ms: float = 5,
    cpu_bf16: bool = False,
    cpu_int8: bool = False,
) -> Settings:
    return Settings(
        data_dir=root / f"data-{batch}",
        models_dir=root / "model-cache",  # one int8 export for this process and both servers
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
        cpu_bf16=cpu_bf16,
        cpu_int8=cpu_int8,
        log_level="WARNING",  # a log line per request is CPU the server would not spend in use
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


class Server(ServeProcess):
    def batching(self, model: str) -> tuple[int, int]:
        for entry in httpx.get(f"{self.url}/api/v1/models").json():
            if entry["name"] == model:
                return int(entry["batches_run"]), int(entry["items_run"])
        raise KeyError(model)


class Uploader:
    """Sends one pre-encoded ``/analyze_image_upload/`` body over a keep-alive connection per
    thread. Real clients run on other machines; here they share the server's two cores, so they
    must cost as little CPU as possible (httpx re-encoding the multipart body for every request
    took CPU the server then lacked)."""

    def __init__(self, url: str, photo: bytes, tasks: list[dict[str, Any]]) -> None:
        request = httpx.Request(
            "POST",
            f"{url}/analyze_image_upload/",
            files={"image_file": ("photo.jpg", photo)},
            data={"tasks_json": json.dumps(tasks)},
        )
        self._body = request.read()
        self._headers = {"Content-Type": request.headers["Content-Type"]}
        self._address = httpx.URL(url)
        self._local = threading.local()

    def post(self) -> float:
        """Seconds for one request; raises unless every task succeeded."""
        started = time.perf_counter()
        try:
            status, payload = self._exchange(self._connection())
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed an idle keep-alive connection (uvicorn does after 5 s, e.g. while
            # the other server is under load): reconnect once, as HTTP client pools do.
            self._local.connection.close()
            self._local.connection = None
            status, payload = self._exchange(self._connection())
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"benchmark request failed: {status} {payload[:300]!r}")
        statuses = {r["status"] for r in json.loads(payload)["results"].values()}
        if statuses != {"success"}:
            raise RuntimeError(f"benchmark request failed: {payload[:300]!r}")
        return elapsed

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            host, port = self._address.host, self._address.port
            connection = self._local.connection = http.client.HTTPConnection(host, port, 600)
        return connection

    def _exchange(self, connection: http.client.HTTPConnection) -> tuple[int, bytes]:
        connection.request("POST", "/analyze_image_upload/", self._body, self._headers)
        response = connection.getresponse()
        return response.status, response.read()


def latency_table(settings: Settings, photo: bytes, repeats: int) -> None:
    print(f"per-operation latency over HTTP, {repeats} sequential requests each (ms)")
    print(f"{'operation':44} {'p50':>8} {'p90':>8}")
    with Server(settings) as server:
        for label, task in LATENCY_TASKS:
            if "detect" in label and not SHARED.is_dir():
                continue
            uploader = Uploader(server.url, photo, [task])
            uploader.post()  # load + warm up
            times = sorted(uploader.post() for _ in range(repeats))
            p50 = statistics.median(times) * 1000
            p90 = times[int(0.9 * (len(times) - 1))] * 1000
            print(f"{label:44} {p50:8.1f} {p90:8.1f}")


@dataclass
class Load:
    """One server under test and what its load phases added up to."""

    server: Server
    uploader: Uploader
    requests: int = 0
    seconds: float = 0.0
    batches: int = 0
    items: int = 0

    def run(self, pool: ThreadPoolExecutor, requests: int) -> None:
        before_batches, before_items = self.server.batching("clip_image")
        started = time.perf_counter()
        list(pool.map(lambda _: self.uploader.post(), range(requests)))
        self.seconds += time.perf_counter() - started
        self.requests += requests
        after_batches, after_items = self.server.batching("clip_image")
        self.batches += after_batches - before_batches
        self.items += after_items - before_items

    @property
    def images_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def mean_batch(self) -> float:
        return self.items / max(self.batches, 1)


def throughput(
    batched: Settings, single: Settings, photo: bytes, requests: int, clients: int, rounds: int
) -> tuple[Load, Load]:
    """``clients`` concurrent clients asking for CLIP embeddings, against a server with the
    batcher and one with batch size 1. Both servers run side by side and the load alternates
    between them in ``rounds`` phases each, so a change in the host's load during the run
    (this machine shares its cores) affects both sides alike."""
    task = [_task("e", "embed_clip_vit_b_32")]
    with Server(batched) as batched_server, Server(single) as single_server:
        loads = [
            Load(server, Uploader(server.url, photo, task))
            for server in (batched_server, single_server)
        ]
        with ThreadPoolExecutor(clients) as pool:
            for load in loads:  # connect, load the model, warm up
                list(pool.map(lambda _, load=load: load.uploader.post(), range(clients)))
            per_phase = max(requests // rounds, clients)
            for _ in range(rounds):
                for load in loads:
                    load.run(pool, per_phase)
    return loads[0], loads[1]


def _served_clip_image(settings: Settings) -> Any:
    """The CLIP image encoder exactly as the server builds it (the registry's builder)."""
    entry = model_entries(settings, select_device(settings))["clip_image"]
    return entry.build(Path(settings.clip_model))


def model_alone(settings: Settings, photo: bytes, batch: int) -> tuple[float, float]:
    """Milliseconds per image of the CLIP image tower alone at batch 1 and at ``batch``, in this
    process, as the server runs it (the ceiling for any batcher)."""
    encoder = _served_clip_image(settings)
    pixels = encoder.preprocess(decode_image(photo, settings.max_image_pixels))

    def per_image(size: int) -> float:
        items = [pixels] * size
        encoder.forward(items)  # warm up this shape
        rounds = max(3, 48 // size)
        started = time.perf_counter()
        for _ in range(rounds):
            encoder.forward(items)
        return (time.perf_counter() - started) / (rounds * size) * 1000

    return per_image(1), per_image(batch)


def fast_cosine(settings: Settings, photo: bytes) -> float:
    """Cosine between the torch fp32 embedding of the benchmark photo and the served one (bf16
    autocast or int8)."""
    precise = ClipImageEncoder(Path(settings.clip_model), select_device(settings), FP32)
    fast = _served_clip_image(settings)
    pixels = precise.preprocess(decode_image(photo, settings.max_image_pixels))
    return float(precise.forward([pixels])[0] @ fast.forward([pixels])[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=20,
        help="the batcher's wait for more items (VIEWFINDER_BATCH_MAX_WAIT_MS) in the batched run",
    )
    parser.add_argument(
        "--cpu-bf16", action="store_true", help="run the models with VIEWFINDER_CPU_BF16=1"
    )
    parser.add_argument(
        "--cpu-int8",
        action="store_true",
        help="run CLIP in ONNX Runtime with int8 weights (VIEWFINDER_CPU_INT8=1)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating load phases per server")
    parser.add_argument("--skip-latency", action="store_true")
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
        batched_settings = _settings(
            root, models, 16, args.max_wait_ms, args.cpu_bf16, args.cpu_int8
        )
        single_settings = _settings(root, models, 1, cpu_bf16=args.cpu_bf16, cpu_int8=args.cpu_int8)
        if not args.skip_latency:
            latency_table(batched_settings, photo, args.repeats)
            print()
        alone_single, alone_batched = model_alone(batched_settings, photo, 16)
        fast = args.cpu_bf16 or args.cpu_int8
        cosine = fast_cosine(batched_settings, photo) if fast else None
        batched_load, single_load = throughput(
            batched_settings, single_settings, photo, args.requests, args.clients, args.rounds
        )
    batched, single = batched_load.images_per_second, single_load.images_per_second
    precision = "default precision"
    if args.cpu_int8:
        precision = "int8 weights in ONNX Runtime"
    elif args.cpu_bf16:
        precision = "bf16 autocast"
    print(
        f"throughput, {args.clients} concurrent clients, {batched_load.requests} requests per "
        f"server in {args.rounds} alternating rounds, "
        f"CLIP ViT-B/32, {precision}"
    )
    mean_batch = batched_load.mean_batch
    print(
        f"  micro-batcher (max 16, wait {args.max_wait_ms:g} ms, mean batch {mean_batch:.1f}): "
        f"{batched:7.2f} images/s"
    )
    print(f"  batch size 1:                          {single:7.2f} images/s")
    print(f"  ratio: {batched / single:.2f}x (target >= 2x)")
    print(
        f"  the model alone: {alone_single:.1f} ms/image at batch 1, {alone_batched:.1f} at "
        f"batch 16: {alone_single / alone_batched:.2f}x is the most batching can give here"
    )
    alone_rate = 1000 / alone_batched
    print(
        f"  batched server against the model alone at batch 16: {batched:.1f} / "
        f"{alone_rate:.1f} images/s = {batched / alone_rate:.2f} (goal >= 0.9)"
    )
    if cosine is not None:
        label = "int8" if args.cpu_int8 else "bf16"
        print(f"  {label} vs fp32 embedding of the photo: cosine {cosine:.5f}")


if __name__ == "__main__":
    main()
