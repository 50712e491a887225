"""Server memory under big images: the resident memory (RSS) of a real ``viewfinder serve``
process with CLIP and the face models loaded, at rest, at its peak during each scenario, and
after the scenario's work is done, printed against the memory goals.

The server runs on 127.0.0.1 with CLIP at the real ViT-B/32 dimensions (random weights built
offline: the same memory as the real checkpoint), the real YuNet, MobileFaceNet and YOLOX-nano
weights from ../shared/models, and its embedding and face workers on. Scenarios, in order:

1. one ``POST /api/v1/assets`` with 16 one-bit 7000x7000 PNGs (~100 KB in all), until the
   workers have embedded them and looked for faces;
2. 8 concurrent uploads of one 49-megapixel RGB PNG each, until processed;
3. 8 concurrent uploads of one 48-megapixel JPEG each, until processed;
4. 8 concurrent ``POST /analyze_image_upload/`` of a 48-megapixel JPEG (CLIP embedding and the
   prominent face: full-resolution analysis on the request path).

RSS is read from /proc (the server and any children), sampled every 10 ms for the peak.
"after" is read once the scenario's work is done and the process has been idle for
``--settle`` seconds. Figures are relative to the baseline taken before the first scenario
(models loaded and warmed up), so "after" also shows what earlier scenarios left behind.

    .venv/bin/python -m benchmarks.memory [--scenarios 1,2,3,4] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import functools
import io
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from viewfinder.settings import Settings
from viewfinder.testing import checkpoints
from viewfinder.testing.server import ServeProcess

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
PRELOAD = "clip_image,clip_text,face_detector,face_recognizer,person_detector"
MB = 1024 * 1024
GOAL_BASELINE_MB = 1536  # the server with CLIP and the face models loaded
GOAL_PEAK_MB = 1024  # over the baseline, during a scenario
GOAL_AFTER_MB = 300  # over the baseline, once the scenario's work is done


# --- the images --------------------------------------------------------------------------------


def one_bit_png(seed: int, side: int = 7000) -> bytes:
    """A blank one-bit page with a few set pixels (distinct bytes per seed: no deduplication)."""
    image = Image.new("1", (side, side), 0)
    rng = np.random.default_rng(seed)
    for x, y in rng.integers(0, side, (8, 2)):
        image.putpixel((int(x), int(y)), 1)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def rgb_png(seed: int, side: int = 7000) -> bytes:
    """A flat-coloured 49-megapixel RGB PNG (~150 KB): decodes to 196 MB in Pillow."""
    image = Image.new("RGB", (side, side), (seed * 30 % 256, 90, 160))
    image.putpixel((seed % side, seed % side), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def big_jpeg(seed: int, width: int = 8000, height: int = 6000) -> bytes:
    """A 48-megapixel JPEG of smooth gradients and mild noise (a few MB, under the upload
    limit), different per seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 100, width // 100, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


# --- the server and its memory -----------------------------------------------------------------


def _settings(root: Path, clip: Path) -> Settings:
    return Settings(
        data_dir=root / "data",
        offline=True,
        clip_model=str(clip),
        person_detector_model=str(MODELS / "yolox" / "yolox_nano.onnx"),
        yunet_model=str(MODELS / "yunet" / "face_detection_yunet_opencv_zoo.onnx"),
        face_recognizer_model=str(MODELS / "mobilefacenet" / "mobilefacenet.onnx"),
        preload=PRELOAD.split(","),
        model_idle_ttl_s=0,
        worker_threads=1,
        log_level="WARNING",
    )


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, from /proc (0 once it has exited)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        pending.extend(int(c) for c in children)
    return total


class PeakSampler:
    """The highest RSS seen while the block runs, sampled every ``interval_s``."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        self._pid = pid
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self._pid))
            self._stop.wait(self._interval_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self._pid))


class Server(ServeProcess):
    def unsettled_tasks(self) -> int:
        """Background tasks pending or running, read from the server's SQLite file."""
        path = self.settings.data_dir / "viewfinder.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            row = db.execute(
                "SELECT COUNT(*) FROM asset_tasks WHERE state IN ('pending', 'running')"
            ).fetchone()
        return int(row[0])

    def failed_tasks(self) -> int:
        path = self.settings.data_dir / "viewfinder.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            row = db.execute("SELECT COUNT(*) FROM asset_tasks WHERE state = 'failed'").fetchone()
        return int(row[0])

    def wait_for_workers(self, timeout_s: float = 1800) -> None:
        deadline = time.monotonic() + timeout_s
        while self.unsettled_tasks():
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not finish in time")
            time.sleep(0.2)


# --- the scenarios -----------------------------------------------------------------------------


def _upload(url: str, files: list[tuple[str, bytes]]) -> None:
    response = httpx.post(
        f"{url}/api/v1/assets",
        files=[("files", (name, data)) for name, data in files],
        timeout=1800,
    )
    if response.status_code != 201:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text[:300]}")


ANALYSIS_TASKS = (
    '[{"operation_id": "e", "type": "embed_clip_vit_b_32"},'
    ' {"operation_id": "f", "type": "detect_bounding_box", "params": {"target": "prominent_face"}}]'
)


def _analyze(url: str, data: bytes) -> None:
    response = httpx.post(
        f"{url}/analyze_image_upload/",
        files={"image_file": ("big.jpg", data)},
        data={"tasks_json": ANALYSIS_TASKS},
        timeout=1800,
    )
    if response.status_code != 200:
        raise RuntimeError(f"analysis failed: {response.status_code} {response.text[:300]}")
    statuses = {r["status"] for r in response.json()["results"].values()}
    if "error" in statuses:
        raise RuntimeError(f"analysis failed: {response.text[:300]}")


def _concurrently(calls: list[Callable[[], None]]) -> None:
    with ThreadPoolExecutor(len(calls)) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


@dataclass
class Scenario:
    name: str
    bodies: Callable[[], list[bytes]]  # made before the measurement starts
    run: Callable[[Server, list[bytes]], None]


def scenarios(seed: int) -> dict[str, Scenario]:
    def upload_all_at_once(server: Server, bodies: list[bytes]) -> None:
        _upload(server.url, [(f"page{n}.png", body) for n, body in enumerate(bodies)])
        server.wait_for_workers()

    def upload_concurrently(server: Server, bodies: list[bytes]) -> None:
        _concurrently([functools.partial(_upload, server.url, [("big", b)]) for b in bodies])
        server.wait_for_workers()

    def analyze_concurrently(server: Server, bodies: list[bytes]) -> None:
        _concurrently([functools.partial(_analyze, server.url, b) for b in bodies])

    return {
        "1": Scenario(
            "1 request, 16 one-bit 7000x7000 PNGs, until processed",
            lambda: [one_bit_png(seed * 100 + n) for n in range(16)],
            upload_all_at_once,
        ),
        "2": Scenario(
            "8 concurrent 49 MP RGB PNG uploads, until processed",
            lambda: [rgb_png(seed * 10 + n) for n in range(8)],
            upload_concurrently,
        ),
        "3": Scenario(
            "8 concurrent 48 MP JPEG uploads, until processed",
            lambda: [big_jpeg(seed * 10 + n) for n in range(8)],
            upload_concurrently,
        ),
        "4": Scenario(
            "8 concurrent analyses of 48 MP JPEGs (embed + face)",
            lambda: [big_jpeg(seed * 10 + 50 + n) for n in range(8)],
            analyze_concurrently,
        ),
    }


def _warm_up(server: Server) -> None:
    """Exercise every path once with a small image, so the baseline includes what the first
    request allocates for good (thread pools, model arenas, the FAISS index)."""
    small = big_jpeg(999_999, 640, 480)
    _upload(server.url, [("warm.jpg", small)])
    server.wait_for_workers()
    _analyze(server.url, small)


def _settle_rss(pid: int, settle_s: float) -> int:
    time.sleep(settle_s)
    return rss_bytes(pid)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="1,2,3,4", help="which scenarios, in order")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before 'after'")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the server (e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument("--seed", type=int, default=int(time.time()) % 1000)
    args = parser.parse_args()
    if not MODELS.is_dir():
        sys.exit(f"needs the face and person models in {MODELS}")
    extra = dict(item.split("=", 1) for item in args.env)
    chosen = scenarios(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = checkpoints.build_clip(root / "clip-b32", size="base")
        with Server(_settings(root, clip), extra) as server:
            _warm_up(server)
            baseline = _settle_rss(server.pid, args.settle)
            print(
                f"server RSS with CLIP ViT-B/32, YuNet, MobileFaceNet, YOLOX loaded: "
                f"{baseline / MB:.0f} MB (goal <= {GOAL_BASELINE_MB} MB: "
                f"{_verdict(baseline <= GOAL_BASELINE_MB * MB)})"
            )
            if extra:
                print(f"server environment: {' '.join(args.env)}")
            print(f"{'scenario':60} {'seconds':>8} {'peak-base':>10} {'after-base':>11}  verdict")
            passed = baseline <= GOAL_BASELINE_MB * MB
            for key in args.scenarios.split(","):
                scenario = chosen[key]
                bodies = scenario.bodies()
                started = time.perf_counter()
                with PeakSampler(server.pid) as sampler:
                    scenario.run(server, bodies)
                seconds = time.perf_counter() - started
                after = _settle_rss(server.pid, args.settle)
                peak_mb = (sampler.peak - baseline) / MB
                after_mb = (after - baseline) / MB
                ok = peak_mb <= GOAL_PEAK_MB and after_mb <= GOAL_AFTER_MB
                passed = passed and ok
                print(
                    f"{scenario.name:60} {seconds:8.1f} {peak_mb:8.0f}MB {after_mb:9.0f}MB  "
                    f"{_verdict(ok)}"
                )
            failed = server.failed_tasks()
            if failed:
                print(f"note: {failed} background tasks failed")
    print(
        f"goals: baseline <= {GOAL_BASELINE_MB} MB, peak <= baseline + {GOAL_PEAK_MB} MB, "
        f"after <= baseline + {GOAL_AFTER_MB} MB: {_verdict(passed)}"
    )


if __name__ == "__main__":
    main()
