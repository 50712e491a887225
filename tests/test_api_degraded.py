"""Degraded paths through HTTP: a model that cannot load, and a model queue that is full."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings
from viewfinder.analysis.service import AnalysisService
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.imaging.fetch import FetchPolicy
from viewfinder.model_registry import factories
from viewfinder.runtime.batcher import BatchPolicy
from viewfinder.runtime.pool import ModelPool


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()


def _post(client: TestClient, tasks: list[dict[str, object]]) -> object:
    return client.post(
        "/analyze_image_upload/",
        files={"image_file": ("x.png", _png())},
        data={"tasks_json": json.dumps(tasks)},
    )


def test_unavailable_dinov3_is_a_per_task_error(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    settings = make_settings(
        tmp_path, tiny_models, dinov3_model="facebook/dinov3-vitl16-pretrain-lvd1689m"
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/analyze_image_upload/",
            files={"image_file": ("x.png", _png())},
            data={
                "tasks_json": json.dumps(
                    [
                        {"operation_id": "v3", "type": "embed_dino_v3"},
                        {"operation_id": "v2", "type": "embed_dino_v2"},
                    ]
                )
            },
        )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results["v3"]["status"] == "error"
    message = results["v3"]["error_message"]
    assert "VIEWFINDER_DINOV3_MODEL" in message
    assert "viewfinder models pull" in message
    assert results["v2"]["status"] == "success"


class GatedModel:
    """Holds every forward until released, so the queue can be filled deterministically."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def preprocess(self, item: Image.Image) -> int:
        return item.width

    def forward(self, batch: Sequence[int]) -> list[np.ndarray]:
        self.entered.set()
        self.release.wait(10)
        return [np.ones(4, dtype=np.float32) for _ in batch]

    def postprocess(self, raw: np.ndarray, prepared: int) -> np.ndarray:
        return raw

    def warmup_item(self) -> Image.Image:
        return Image.new("RGB", (1, 1))


def test_full_model_queue_answers_429_with_retry_after(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    settings = make_settings(tmp_path, tiny_models)
    services = Services.build(settings)
    gated = GatedModel()
    gated.release.set()  # let the warm-up through
    model_factories = factories(services.models, settings)
    model_factories["dinov2"] = lambda: gated
    services.pool = ModelPool(
        model_factories, BatchPolicy(max_batch_size=1, max_wait_s=0, queue_limit=1), 0
    )
    services.analysis = AnalysisService(
        services.pool, services.classifiers, FetchPolicy.from_settings(settings), 10**8
    )
    services.pool.get("dinov2")
    gated.release.clear()
    gated.entered.clear()
    task = [{"operation_id": "a", "type": "embed_dino_v2"}]
    with TestClient(create_app(settings, services)) as client, ThreadPoolExecutor(4) as ex:
        first = ex.submit(_post, client, task)  # occupies forward
        assert gated.entered.wait(10)
        second = ex.submit(_post, client, task)  # waits in the queue (limit 1)
        deadline = 0
        while services.pool.get("dinov2").batcher._queue.qsize() < 1 and deadline < 500:
            threading.Event().wait(0.01)
            deadline += 1
        refused = _post(client, task)
        gated.release.set()
        assert refused.status_code == 429  # type: ignore[attr-defined]
        assert refused.headers["Retry-After"] == "1"  # type: ignore[attr-defined]
        assert "retry" in refused.json()["detail"]  # type: ignore[attr-defined]
        assert first.result().status_code == 200  # type: ignore[attr-defined]
        assert second.result().status_code == 200  # type: ignore[attr-defined]
    services.close()
