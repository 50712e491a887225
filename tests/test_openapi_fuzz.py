"""The OpenAPI document against the app: a bounded schemathesis run over every operation (no
5xx, every status code, content type and body as documented), the error responses each route
documents, and the 422 of repeated ``operation_id`` values (a sentence, documented as such).
The full run (>= 1,000 requests) is ``benchmarks/fuzz_api.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.python import asgi

from tests.conftest import make_settings
from viewfinder.access.keys import KeyStore
from viewfinder.api.app import create_app
from viewfinder.api.errors import (
    ACCESS_STATUSES,
    MEANING,
    MIDDLEWARE_STATUSES,
    STATUS_BY_ERROR,
    error_responses,
)
from viewfinder.container import Services
from viewfinder.testing.openapi_fuzz import CHECKS, fuzz_app, seed_library

# Per operation and mode (valid / invalid data): about 400 requests in all, ~15 s on 2 cores.
EXAMPLES = 4
PUBLIC = {("GET", "/health"), ("GET", "/ready")}


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[FastAPI]:
    settings = make_settings(tmp_path_factory.mktemp("fuzz"), tiny_models)
    services = Services.build(settings, with_library=True)
    try:
        built = create_app(settings, services)
        built.state.fuzz_seeds = seed_library(built)
        yield built
    finally:
        asgi.shutdown_lifespans()  # the lifespan schemathesis started, before the services close
        services.close()


@pytest.fixture(scope="module")
def keyed_app(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[tuple[FastAPI, str]]:
    """An app whose library has an API key (so every route but the public ones needs one), and
    a read-only key."""
    settings = make_settings(tmp_path_factory.mktemp("fuzz-keys"), tiny_models)
    services = Services.build(settings, with_library=True)
    try:
        _, read_only = KeyStore(services.require_library().sessions).create("viewer", True)
        yield create_app(settings, services), read_only
    finally:
        asgi.shutdown_lifespans()
        services.close()


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


@pytest.mark.slow
def test_generated_requests_get_documented_answers_and_never_5xx(app: FastAPI) -> None:
    report = fuzz_app(app, examples=EXAMPLES, seed=0, seeds=app.state.fuzz_seeds)
    print(report.summary())
    assert report.requests >= 300, report.summary()
    assert report.server_errors == 0, "\n\n".join(map(str, report.findings[:10]))
    assert not report.findings, "\n\n".join(map(str, report.findings[:10]))
    # Seeded ids and valid bodies reach past 4xx: the success bodies were checked too.
    assert len(report.never_succeeded()) < len(report.per_operation) / 4, report.summary()


def test_repeated_operation_ids_answer_the_documented_422(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operation = schema["/analyze_image/"]["POST"]
    tasks = [
        {"operation_id": "same", "type": "embed_dino_v2"},
        {"operation_id": "same", "type": "describe_image"},
    ]
    case = operation.Case(body={"image_url": "http://127.0.0.1:9/x.png", "tasks": tasks})
    response = case.call()
    assert response.status_code == 422
    assert "same" in response.json()["detail"]  # a sentence, as seed 000's callers read it
    case.validate_response(response, checks=CHECKS)


def test_every_route_documents_access_errors_and_the_detail_body(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        if (method, path) not in PUBLIC:
            missing = {str(s) for s in ACCESS_STATUSES} - set(responses)
            assert not missing, f"{method} {path} does not document {missing}"
        if "requestBody" in operation:  # too large, or not parseable at all
            assert {"400", "413"} <= set(responses), f"{method} {path}"
        for status, response in responses.items():
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            name = schema["$ref"].rsplit("/", 1)[-1]
            assert "detail" in document["components"]["schemas"][name]["properties"], name


def test_routes_that_queue_jobs_document_202(document: dict[str, Any]) -> None:
    queued = {
        ("POST", "/api/v1/imports"),
        ("POST", "/api/v1/reindex"),
        ("POST", "/api/v1/classifiers/train"),
        ("POST", "/api/v1/faces/cluster/dual"),
        ("POST", "/api/v1/faces/train"),
    }
    for method, path, operation in operations(document):
        if (method, path) in queued:
            assert "202" in operation["responses"], f"{method} {path}"


def test_each_error_status_has_a_meaning_and_unknown_ones_are_refused() -> None:
    for _, status in STATUS_BY_ERROR:
        assert MEANING[status]
    for status in MIDDLEWARE_STATUSES:
        assert MEANING[status]
    assert set(error_responses(404, 401)) == {401, 404}
    with pytest.raises(ValueError, match="418"):
        error_responses(418)


def test_without_a_key_every_route_answers_a_documented_refusal(
    keyed_app: tuple[FastAPI, str],
) -> None:
    app, _ = keyed_app
    report = fuzz_app(app, examples=2, modes=[schemathesis.GenerationMode.POSITIVE])
    assert not report.findings, "\n\n".join(map(str, report.findings[:10]))
    # Made-up keys (schemathesis sends some) are 401 until too many fail: then 429.
    assert report.statuses[401] > 0, report.summary()
    # 200: GET /health; 200 or 503: GET /ready (public; 503 while a worker is paused)
    assert set(report.statuses) <= {200, 401, 429, 503}, report.summary()
    assert report.per_operation["GET /health"] == {200: report.per_operation["GET /health"][200]}
    assert set(report.per_operation["GET /ready"]) <= {200, 503}
    for label, seen in report.per_operation.items():
        if label not in ("GET /health", "GET /ready"):
            assert set(seen) <= {401, 429}, label


def test_a_read_only_key_gets_documented_403s_on_writes(keyed_app: tuple[FastAPI, str]) -> None:
    app, read_only = keyed_app
    report = fuzz_app(
        app,
        examples=2,
        modes=[schemathesis.GenerationMode.POSITIVE],
        headers={"X-API-Key": read_only},
        skip=lambda label: label.startswith(("GET", "POST /api/images", "POST /analyze")),
    )
    assert not report.findings, "\n\n".join(map(str, report.findings[:10]))
    assert report.statuses[403] > 0, report.summary()
