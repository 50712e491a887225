"""Cross-origin browser access (VIEWFINDER_CORS_ORIGINS), off unless configured: seed 003's
React frontend runs on its own origin and calls the API from the browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings
from viewfinder.api.app import create_app
from viewfinder.settings import Settings

FRONTEND = "http://localhost:5173"
PREFLIGHT = {"Origin": FRONTEND, "Access-Control-Request-Method": "POST"}


def test_cross_origin_access_is_off_by_default(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    with TestClient(create_app(make_settings(tmp_path, tiny_models))) as client:
        response = client.get("/health", headers={"Origin": FRONTEND})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        assert client.options("/api/images/analyze", headers=PREFLIGHT).status_code == 405


def test_configured_origins_may_call_the_api(
    tmp_path: Path, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIEWFINDER_CORS_ORIGINS", f"{FRONTEND}, https://app.example")
    assert Settings().cors_origins == [FRONTEND, "https://app.example"]
    settings = make_settings(tmp_path, tiny_models, cors_origins=[FRONTEND])
    with TestClient(create_app(settings)) as client:
        preflight = client.options("/api/images/analyze", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == FRONTEND
        assert "POST" in preflight.headers["access-control-allow-methods"]

        response = client.get("/health", headers={"Origin": FRONTEND})
        assert response.headers["access-control-allow-origin"] == FRONTEND

        stranger = {**PREFLIGHT, "Origin": "http://evil.example"}
        refused = client.options("/api/images/analyze", headers=stranger)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
