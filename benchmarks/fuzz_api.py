"""Fuzz the whole OpenAPI document with schemathesis: valid and invalid requests generated for
every operation, sent in-process to the app, each response checked (no 5xx, documented status
code, documented content type, body matching the documented schema). Prints the number of
requests, the status codes seen and every failed check.

The app runs offline on tiny random checkpoints (real detector weights from ../shared when
present), with a library seeded with a few images so that routes taking an id reach past 404.
Image URLs may only be fetched from 127.0.0.1: generated data never leaves the machine.

    .venv/bin/python -m benchmarks.fuzz_api [--examples 12] [--seed 0] [--only REGEX]

Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.settings import Settings
from viewfinder.testing import checkpoints
from viewfinder.testing.openapi_fuzz import fuzz_app, seed_library

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def offline_settings(root: Path) -> Settings:
    """The test suite's settings (tests/conftest.py make_settings): tiny checkpoints, offline."""
    values: dict[str, Any] = {
        "data_dir": root / "data",
        "offline": True,
        "clip_model": str(checkpoints.build_tiny_clip(root / "clip")),
        "dinov2_model": str(checkpoints.build_tiny_dinov2(root / "dinov2")),
        "dinov3_model": str(checkpoints.build_tiny_dinov3(root / "dinov3")),
        "caption_model": str(checkpoints.build_tiny_blip(root / "blip")),
        "person_detector_model": str(SHARED_MODELS / "yolox" / "yolox_nano.onnx"),
        "yunet_model": str(SHARED_MODELS / "yunet" / "face_detection_yunet_opencv_zoo.onnx"),
        "mtcnn_model": str(SHARED_MODELS / "mtcnn"),
        "face_recognizer_model": str(SHARED_MODELS / "mobilefacenet" / "mobilefacenet.onnx"),
        "fetch_allow_hosts": ["127.0.0.1"],
        "model_idle_ttl_s": 0,
        "batch_max_wait_ms": 2,
    }
    return Settings(**values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=12, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="fuzz only operations matching this regex")
    args = parser.parse_args()
    only = re.compile(args.only)

    with tempfile.TemporaryDirectory() as tmp:
        services = Services.build(offline_settings(Path(tmp)), with_library=True)
        try:
            app = create_app(services.settings, services)
            seeds = seed_library(app)
            report = fuzz_app(
                app,
                examples=args.examples,
                seed=args.seed,
                seeds=seeds,
                skip=lambda label: not only.search(label),
                progress=lambda step: print(f"  {step}", file=sys.stderr, flush=True),
            )
        finally:
            services.close()
    for finding in report.findings:
        print(finding, end="\n\n")
    print(report.summary())
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
