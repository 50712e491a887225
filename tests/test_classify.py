"""``classify``: a classifier trained on stored CLIP embeddings, saved in the safe JSON format,
then used through the HTTP API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.linear_model import LogisticRegression

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.classifiers.store import ClassifierStore, LinearClassifier
from viewfinder.container import Services


def _tinted(rng: np.random.Generator, warm: bool) -> Image.Image:
    base = np.array([200, 40, 30] if warm else [30, 60, 210], dtype=np.float32)
    pixels = base + rng.normal(0, 25, size=(48, 48, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_trained_classifier_is_used_by_classify(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    settings = make_settings(tmp_path, tiny_models)
    services = Services.build(settings)
    rng = np.random.default_rng(0)
    labels = np.array([i % 2 for i in range(40)])
    features = np.stack([services.pool.run("clip_image", _tinted(rng, bool(y))) for y in labels])
    model = LogisticRegression(class_weight="balanced").fit(features, labels)
    assert model.score(features, labels) == 1.0
    ClassifierStore(settings.classifier_dir).save(
        LinearClassifier(
            collection_id=7,
            coef=tuple(float(c) for c in model.coef_[0]),
            intercept=float(model.intercept_[0]),
        )
    )
    assert json.loads((settings.classifier_dir / "best_models.json").read_text())["7"].endswith(
        ".json"
    )
    with TestClient(create_app(settings, services)) as client:
        for warm in (True, False):
            response = client.post(
                "/analyze_image_upload/",
                files={"image_file": ("x.png", _png(_tinted(rng, warm)))},
                data={
                    "tasks_json": json.dumps(
                        [{"operation_id": "c", "type": "classify", "params": {"collection_id": 7}}]
                    )
                },
            )
            result = response.json()["results"]["c"]
            assert result["status"] == "success", result
            assert result["data"]["is_in_collection"] is warm
            probability = result["data"]["probability"]
            assert 0.0 <= probability <= 1.0
            assert (probability > 0.5) is warm
    services.close()


def test_classifier_round_trips_and_refuses_wrong_dimensions(tmp_path: Path) -> None:
    store = ClassifierStore(tmp_path)
    classifier = LinearClassifier(collection_id=3, coef=(1.0, -1.0), intercept=0.0)
    path = store.save(classifier)
    assert path.suffix == ".json"
    assert store.get(3) == classifier
    assert store.get(4) is None
    assert classifier.probability(np.array([1.0, 0.0], dtype=np.float32)) > 0.5
    with pytest.raises(Exception, match="expects 2-d"):
        classifier.probability(np.zeros(3, dtype=np.float32))
