"""Ingest benchmark: images per second of the indexing pipeline on a folder of real JPEGs at
1080p to 12 megapixels, against the bare CLIP image forward on the same machine, in one run.

Images: ``--count`` JPEGs made once into ``--jpeg-cache`` (outside the repository, reused across
runs) by re-encoding the photos of ../shared/data at sizes from 1920x1080 to 4000x3000 (quality
90): each is a random crop of a source photo resized to its size, with a fixed film grain
(``--grain``, the standard deviation in 8-bit levels) so the files carry more of the bits per
pixel camera photos do (JPEG decoding time follows the bits): upscaled photos alone compress to
about 1 bit/pixel, grain 5 gives about 1.6, a 12 MP camera JPEG (3-5 MB) has 2-3.

Model: CLIP with the real ViT-B/32 dimensions and random weights (the compute equals the real
checkpoint's). Embedding only: VIEWFINDER_FACES=0, no captions.

Pipelines, each on a fresh library:

- embedded default (SQLite, FAISS): ``viewfinder index FOLDER``, which ingests and then embeds on
  its calling thread, timed end to end as a subprocess (start-up and model load included); the
  ingest and embed phases are split where it prints its ingest report.
- PostgreSQL + pgvector (a throwaway PostgreSQL 18 + pgvector 0.8 on a unix socket): the folder
  is ingested with ``viewfinder index FOLDER --no-wait``, then 1 and then 2
  ``viewfinder worker --kinds embed`` processes embed it (torch threads = cores / workers) until
  the task table shows every task done; they are then stopped with SIGTERM. Each run starts
  from no embeddings, with every task parked (state failed) while the workers start with the
  model preloaded (VIEWFINDER_PRELOAD=clip_image); once every worker has logged that it runs,
  the tasks are made pending and timed from the first claim until all are done ("drain by warm
  workers"), and from the workers' launch (start-up and model load included).

The bare forward: the CLIP image tower alone, in this process, on preprocessed tensors at batch
1, 8, 16 and 32, measured before and after the pipelines (their mean at the best batch is the
reference). Then, once, one single-threaded forward loop per core in as many processes at once
(what worker processes with one torch thread each could reach). The breakdown times each step
of one image on one thread.

    .venv/bin/python -m benchmarks.ingest [--count 1000] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import text

from viewfinder.db import tasks as tasks_repo
from viewfinder.db.engine import make_engine, make_session_factory
from viewfinder.imaging.decode import decode_image
from viewfinder.library.ingest import IngestService
from viewfinder.library.processing import CLIP_MODEL, EMBED_TASK, EmbeddingProcessor
from viewfinder.model_registry import model_entries
from viewfinder.runtime.device import select_device
from viewfinder.settings import Settings
from viewfinder.testing import checkpoints
from viewfinder.testing.pgvector_server import fresh_database, pgvector_server

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# (width, height) of landscape photos; portrait sources get them turned.
SIZES = [(1920, 1080), (2560, 1440), (3264, 2448), (3840, 2160), (4000, 3000)]
SOURCE_EXTENSIONS = {".jpg", ".jpeg", ".png"}
MIN_SOURCE_SIDE = 300
GENERATOR_VERSION = 1
FORWARD_BATCHES = (1, 8, 16, 32)


# --- the photos -------------------------------------------------------------------------------


def _sources() -> list[Path]:
    found = []
    for path in sorted((SHARED / "data").rglob("*")):
        if path.suffix.lower() not in SOURCE_EXTENSIONS:
            continue
        with Image.open(path) as image:
            if min(image.size) >= MIN_SOURCE_SIDE:
                found.append(path)
    return found


def _make_one(job: tuple[int, Path, tuple[int, int], float, Path]) -> int:
    """One photo: a random crop of ``source`` with the target's aspect, resized, grained."""
    number, source, size, grain, out = job
    rng = np.random.default_rng([GENERATOR_VERSION, number])
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    width, height = size if image.width >= image.height else size[::-1]
    # The largest crop with the target's aspect, shrunk by up to 10 % and moved at random.
    scale = min(image.width / width, image.height / height) * rng.uniform(0.9, 1.0)
    crop_w, crop_h = int(width * scale), int(height * scale)
    left = int(rng.integers(0, image.width - crop_w + 1))
    top = int(rng.integers(0, image.height - crop_h + 1))
    image = image.resize(
        (width, height), Image.Resampling.BICUBIC, box=(left, top, left + crop_w, top + crop_h)
    )
    if grain > 0:
        # A 512x512 grain tile repeated from a random offset: cheap, and as costly to encode
        # and decode as fresh noise.
        tile = rng.normal(0, grain, (512, 512, 3)).astype(np.int16)
        reps = (height // 512 + 2, width // 512 + 2, 1)
        dy, dx = (int(v) for v in rng.integers(0, 512, 2))
        noise = np.tile(tile, reps)[dy : dy + height, dx : dx + width]
        pixels = np.asarray(image).astype(np.int16) + noise
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image.save(out, "JPEG", quality=90)
    return out.stat().st_size


def jpeg_folder(cache: Path, count: int, grain: float) -> Path:
    """The folder of ``count`` photos, made on first use (in parallel) and reused after."""
    folder = cache / f"v{GENERATOR_VERSION}-n{count}-grain{grain:g}"
    images = folder / "images"
    if (folder / "complete").is_file():
        return images
    sources = _sources()
    if not sources:
        raise SystemExit(f"no photos under {SHARED / 'data'}: this benchmark needs ../shared")
    shutil.rmtree(folder, ignore_errors=True)
    images.mkdir(parents=True)
    rng = np.random.default_rng(GENERATOR_VERSION)
    jobs = [
        (
            n,
            sources[n % len(sources)],
            SIZES[int(rng.integers(0, len(SIZES)))],
            grain,
            images / f"photo-{n:05d}.jpg",
        )
        for n in range(count)
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_make_one, jobs, chunksize=8))
    (folder / "complete").write_text("")
    print(f"made {count} JPEGs in {images} in {time.perf_counter() - started:.0f} s")
    return images


def describe(paths: Sequence[Path]) -> str:
    megapixels, sizes = [], []
    for path in paths:
        with Image.open(path) as image:
            megapixels.append(image.width * image.height / 1e6)
        sizes.append(path.stat().st_size)
    total_mp = sum(megapixels)
    return (
        f"{len(paths)} JPEGs, {min(megapixels):.1f}-{max(megapixels):.1f} MP "
        f"(mean {statistics.mean(megapixels):.1f}), mean {statistics.mean(sizes) / 1e6:.2f} MB, "
        f"{8 * sum(sizes) / (total_mp * 1e6):.2f} bits/pixel"
    )


# --- the model alone --------------------------------------------------------------------------


def _settings(clip: Path, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, clip_model=str(clip), offline=True, faces_enabled=False)


def clip_encoder(clip: Path, data_dir: Path) -> Any:
    """The CLIP image encoder exactly as a server or worker builds it (the registry's)."""
    settings = _settings(clip, data_dir)
    return model_entries(settings, select_device(settings))["clip_image"].build(clip)


def forward_rates(
    encoder: Any, pixels: list[Any], batches: Sequence[int], images: int
) -> dict[int, float]:
    """Images per second of ``encoder.forward`` at each batch size (about ``images`` each)."""
    rates = {}
    for size in batches:
        batch = [pixels[i % len(pixels)] for i in range(size)]
        encoder.forward(batch)  # warm up this shape
        rounds = max(2, images // size)
        started = time.perf_counter()
        for _ in range(rounds):
            encoder.forward(batch)
        rates[size] = rounds * size / (time.perf_counter() - started)
    return rates


def _forward_process(
    clip: str, paths: list[str], batch: int, images: int, ready: Any, start: Any, results: Any
) -> None:
    """One single-threaded forward loop (a child process of ``parallel_forward``)."""
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = clip_encoder(Path(clip), Path(tmp))
    items = [
        encoder.preprocess(
            decode_image(Path(p).read_bytes(), 50_000_000, EmbeddingProcessor.min_side)
        )
        for p in paths
    ]
    inputs = [items[i % len(items)] for i in range(batch)]
    encoder.forward(inputs)  # warm up this shape
    ready.put(True)
    start.wait()
    rounds = max(2, images // batch)
    began = time.perf_counter()
    for _ in range(rounds):
        encoder.forward(inputs)
    results.put((rounds * batch, began, time.perf_counter()))


def parallel_forward(clip: Path, paths: Sequence[Path], batch: int, images: int) -> float:
    """Images per second of one single-threaded forward loop per core, all at once: what
    worker processes with one torch thread each could reach (no decoding, no database)."""
    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    processes = os.cpu_count() or 1
    procs = [
        context.Process(
            target=_forward_process,
            args=(str(clip), [str(p) for p in paths], batch, images, ready, start, results),
        )
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=600)
    start.set()
    done = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(n for n, _, _ in done) / (max(e for _, _, e in done) - min(b for _, b, _ in done))


@dataclass
class Breakdown:
    steps: dict[str, float]  # ms per image, one thread

    @classmethod
    def measure(cls, encoder: Any, paths: Sequence[Path], max_pixels: int) -> Breakdown:
        ingest = IngestService(None, None, None, max_pixels, ())  # type: ignore[arg-type]
        times: dict[str, list[float]] = {}

        def timed(step: str, work: Callable[[], Any]) -> Any:
            started = time.perf_counter()
            result = work()
            times.setdefault(step, []).append((time.perf_counter() - started) * 1000)
            return result

        for path in paths:
            data = timed("read the file", path.read_bytes)
            sha = timed("ingest: SHA-256", lambda d=data: hashlib.sha256(d).hexdigest())
            # Decode at preview size, preview + thumbnail JPEGs, EXIF (blob writes not included).
            timed(
                "ingest: decode + preview/thumbnail",
                lambda d=data, s=sha, p=path: ingest._prepare(d, s, p.name),
            )
            image = timed(
                f"embed: decode (min_side {EmbeddingProcessor.min_side})",
                lambda d=data: decode_image(d, max_pixels, min_side=EmbeddingProcessor.min_side),
            )
            timed("embed: CLIP preprocess", lambda i=image: encoder.preprocess(i))
        return cls({step: statistics.mean(values) for step, values in times.items()})


# --- the pipelines ----------------------------------------------------------------------------


def _env(clip: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWFINDER_")}
    env.update(
        VIEWFINDER_DATA_DIR=str(data_dir),
        VIEWFINDER_MODELS_DIR=str(data_dir / "models"),
        VIEWFINDER_CLIP_MODEL=str(clip),
        VIEWFINDER_OFFLINE="1",
        VIEWFINDER_FACES="0",
        VIEWFINDER_CAPTION_ASSETS="0",
        VIEWFINDER_LOG_LEVEL="WARNING",
    )
    env.update({f"VIEWFINDER_{k}": v for k, v in extra.items()})
    return env


@dataclass
class Timing:
    label: str
    what: str  # what the seconds cover
    seconds: float
    images: int

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def _index(folder: Path, env: dict[str, str], log: Path, *extra: str) -> tuple[float, float]:
    """Run ``viewfinder index``; (seconds until its ingest report, seconds in all)."""
    started = time.perf_counter()
    ingested = None
    with log.open("w") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "viewfinder", "index", str(folder), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if ingested is None and " new, " in line:
                ingested = time.perf_counter() - started
        code = proc.wait()
    total = time.perf_counter() - started
    if code != 0 or ingested is None:
        raise RuntimeError(f"viewfinder index failed ({code}): {''.join(lines)}{log.read_text()}")
    return ingested, total


def embedded(folder: Path, count: int, clip: Path, root: Path) -> list[Timing]:
    data_dir = root / "embedded"
    ingested, total = _index(folder, _env(clip, data_dir), root / "embedded.log")
    shutil.rmtree(data_dir)
    label = "embedded (SQLite + FAISS)"
    print(f"  {label}: {total:.1f} s, of which ingest {ingested:.1f} s", flush=True)
    return [
        Timing(label, "index, end to end", total, count),
        Timing(label, "embed phase (model load incl.)", total - ingested, count),
    ]


def _set_embed_tasks(url: str, state: str, *, delete_embeddings: bool = False) -> None:
    """Every embed task to ``state`` (optionally deleting every embedding first: their pgvector
    rows cascade), then VACUUM ANALYZE so each run starts from a clean table."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if delete_embeddings:
                connection.execute(
                    text("DELETE FROM embeddings WHERE model = :m"), {"m": CLIP_MODEL}
                )
            connection.execute(
                text(
                    "UPDATE asset_tasks SET state = :s, attempts = 0, claimed_by = NULL, "
                    "claimed_at = NULL, last_error = NULL WHERE kind = :k"
                ),
                {"s": state, "k": EMBED_TASK},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE asset_tasks, embeddings, vector_embeddings"))
    finally:
        engine.dispose()


def _wait_ready(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Until every worker logged that it started (after loading the preloaded model)."""
    while not all("thread(s) each" in log.read_text() for log in logs):
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited during start-up: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def workers(url: str, env: dict[str, str], count: int, processes: int, root: Path) -> list[Timing]:
    """``processes`` embed workers, started (model preloaded) while every task is parked as
    failed; then the tasks are made pending and timed from the first claim until all are done.
    A worker that finds no work waits up to 2 s before it looks again (its poll interval)."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {
        **env,
        "VIEWFINDER_TORCH_THREADS": str(threads),
        "VIEWFINDER_PRELOAD": "clip_image",
        "VIEWFINDER_LOG_LEVEL": "INFO",
    }
    _set_embed_tasks(url, "failed", delete_embeddings=True)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    logs = [root / f"worker-{processes}-{n}.log" for n in range(processes)]
    procs = []
    started = time.perf_counter()
    try:
        for log in logs:
            with log.open("w") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "viewfinder", "worker", "--kinds", "embed"],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        _wait_ready(procs, logs)
        startup = time.perf_counter() - started
        _set_embed_tasks(url, "pending")
        queued = time.perf_counter()
        first = None
        while True:
            with sessions() as session:
                counts = tasks_repo.task_counts(session, EMBED_TASK)
            now = time.perf_counter()
            if first is None and counts["pending"] < count:
                first = now
            if counts["done"] + counts["failed"] == count:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited early: {logs[0].read_text()[-2000:]}")
            time.sleep(0.05)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
        engine.dispose()
    if counts["failed"]:
        raise RuntimeError(f"{counts['failed']} tasks failed: {logs[0].read_text()[-2000:]}")
    assert first is not None
    label = f"pgvector, {processes} worker{'s' if processes > 1 else ''} x {threads} thread(s)"
    print(
        f"  {label}: start-up (model preloaded) {startup:.1f} s, first claim "
        f"{first - queued:.1f} s after queueing, drained in {now - first:.1f} s",
        flush=True,
    )
    return [
        Timing(label, "drain by warm workers", now - first, count),
        Timing(label, "from worker launch", now - started, count),
    ]


def pgvector(
    folder: Path, count: int, clip: Path, root: Path, processes: Sequence[int]
) -> list[Timing]:
    with pgvector_server() as admin_url, fresh_database(admin_url) as url:
        env = _env(clip, root / "pgvector", DATABASE_URL=url, VECTOR_STORE="pgvector")
        _, ingest_s = _index(folder, env, root / "pgvector.log", "--no-wait")
        print(f"  pgvector: ingest {ingest_s:.1f} s", flush=True)
        results = [Timing("pgvector", "index --no-wait (ingest only)", ingest_s, count)]
        for n in processes:
            results += workers(url, env, count, n, root)
    return results


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="64 images, a smoke run")
    parser.add_argument("--grain", type=float, default=5.0, help="film grain (0: none)")
    parser.add_argument("--jpeg-cache", default="/tmp/viewfinder-bench-jpegs")
    parser.add_argument(
        "--clip-cache",
        default="/tmp/viewfinder-bench-clip-b32",
        help="the random-weight ViT-B/32 checkpoint, built here once",
    )
    parser.add_argument("--workers", default="1,2", help="pgvector worker process counts")
    args = parser.parse_args()
    count = 64 if args.quick else args.count
    forward_images = 32 if args.quick else 128

    folder = jpeg_folder(Path(args.jpeg_cache), count, args.grain)
    paths = sorted(folder.glob("*.jpg"))
    clip = Path(args.clip_cache)
    if not (clip / "config.json").is_file():
        building = clip.with_name(clip.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        checkpoints.build_clip(building, size="base")
        building.rename(clip)
    import torch

    print(
        f"{describe(paths)}; CLIP ViT-B/32 size, random weights, fp32; faces and captions off; "
        f"{os.cpu_count()} cpus, torch {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    settings = _settings(clip, Path(tempfile.gettempdir()))
    print(
        f"pipeline settings: worker batch {settings.worker_batch_size}, batcher max "
        f"{settings.batch_max_size} (wait {settings.batch_max_wait_ms:g} ms)"
    )
    with tempfile.TemporaryDirectory(prefix="viewfinder-ingest-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        encoder = clip_encoder(clip, root / "bare")
        print(f"  model load in this process: {time.perf_counter() - started:.1f} s")
        wanted = 16 if args.quick else 48
        sample = paths[:: max(1, len(paths) // wanted)][:wanted]  # spread over the sizes
        pixels = [
            encoder.preprocess(
                decode_image(p.read_bytes(), settings.max_image_pixels, EmbeddingProcessor.min_side)
            )
            for p in sample[:16]
        ]
        batches = FORWARD_BATCHES[:2] if args.quick else FORWARD_BATCHES
        before = forward_rates(encoder, pixels, batches, forward_images)
        print("  bare forward (before): " + _rates(before), flush=True)
        breakdown = Breakdown.measure(encoder, sample, settings.max_image_pixels)

        timings = embedded(folder, count, clip, root)
        processes = [int(n) for n in args.workers.split(",") if n]
        timings += pgvector(folder, count, clip, root, processes)

        after = forward_rates(encoder, pixels, batches, forward_images)
        print("  bare forward (after): " + _rates(after), flush=True)
        best = max(before, key=lambda size: before[size] + after[size])
        parallel = parallel_forward(clip, sample[:16], best, forward_images)
    report(count, before, after, parallel, timings, breakdown, len(sample))


def report(
    count: int,
    before: dict[int, float],
    after: dict[int, float],
    parallel: float,
    timings: list[Timing],
    breakdown: Breakdown,
    sampled: int,
) -> None:
    means = {size: (before[size] + after[size]) / 2 for size in before}
    best = max(means, key=lambda size: means[size])
    bare = means[best]
    print()
    print(f"bare CLIP image forward, images/s (mean of before/after): {_rates(means)}")
    print(f"  best: batch {best}, {bare:.1f} images/s ({1000 / bare:.1f} ms/image)")
    print(
        f"  {os.cpu_count()} processes x 1 torch thread at batch {best}, together: "
        f"{parallel:.1f} images/s ({parallel / bare:.2f} x bare; measured once, after)"
    )
    print(f"pipeline ({count} images; target on the embedded default >= 0.8 x bare):")
    print(f"  {'configuration':36} {'timed':32} {'s':>7} {'img/s':>7} {'/ bare':>6}")
    for t in timings:
        print(f"  {t.label:36} {t.what:32} {t.seconds:7.1f} {t.rate:7.1f} {t.rate / bare:6.2f}")
    print(f"breakdown, one thread, ms per image (mean of {sampled} photos):")
    for step, ms in breakdown.steps.items():
        print(f"  {step:44} {ms:7.1f}")
    print(f"  {'forward at batch ' + str(best):44} {1000 / bare:7.1f}")
    embed_steps = sum(ms for step, ms in breakdown.steps.items() if step.startswith("embed"))
    ceiling = 1000 / (embed_steps + 1000 / bare)
    print(
        f"  embed phase done serially (decode + preprocess + forward): at most {ceiling:.1f} "
        f"images/s = {ceiling / bare:.2f} x bare"
    )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def _rates(rates: dict[int, float]) -> str:
    return ", ".join(f"batch {size}: {rate:.1f}" for size, rate in rates.items())


if __name__ == "__main__":
    main()
