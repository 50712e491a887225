"""Access control over real HTTP: every route of the OpenAPI document with no key, a wrong key,
a read-only key and a full key; the web UI's session cookie; cross-origin refusals; rate limits."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings
from viewfinder.access.keys import KeyStore
from viewfinder.api.app import create_app
from viewfinder.api.auth import READ_ONLY_POSTS, SESSION_COOKIE
from viewfinder.container import Services

WRONG_KEY = "vf_" + "A" * 43
# The cache of key lookups in this module's server: revocations must show within it.
CACHE_S = 0.3


@dataclass
class Server:
    app: FastAPI
    client: TestClient
    store: KeyStore
    full: str
    read_only: str


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[Server]:
    settings = make_settings(
        tmp_path_factory.mktemp("auth"),
        tiny_models,
        worker_threads=0,
        faces_enabled=False,
        api_key_cache_s=CACHE_S,
    )
    services = Services.build(settings, with_library=True)
    store = KeyStore(services.require_library().sessions)
    _, full = store.create("full")
    _, read_only = store.create("viewer", read_only=True)
    app = create_app(settings, services)
    try:
        with TestClient(app) as client:
            yield Server(app, client, store, full, read_only)
    finally:
        services.close()


def operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the app's OpenAPI document."""
    paths = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def concrete(path: str) -> str:
    """The path with a dummy id in each parameter (a 404 is an answer like any other)."""
    return re.sub(r"\{[^}]+\}", "999999", path)


def is_read(method: str, path: str) -> bool:
    return method == "GET" or (method == "POST" and path in READ_ONLY_POSTS)


# --- every route -------------------------------------------------------------------------------


def test_every_route_needs_a_key_and_read_only_keys_only_read(server: Server) -> None:
    ops = operations(server.app)
    assert len(ops) >= 50  # the walk below covers the whole API, not a sample
    writes = [op for op in ops if not is_read(*op)]
    assert ("DELETE", "/api/v1/assets/{asset_id}") in writes
    assert ("POST", "/api/v1/persons/{person_id}/merge") in writes
    assert ("POST", "/api/v1/classifiers/train") in writes
    headers = {
        "none": {},
        "wrong": {"Authorization": f"Bearer {WRONG_KEY}"},
        "read_only": {"X-API-Key": server.read_only},
        "full": {"Authorization": f"Bearer {server.full}"},
    }
    seen: dict[tuple[str, str, str], int] = {}
    for method, path in ops:
        for who, sent in headers.items():
            response = server.client.request(method, concrete(path), headers=sent)
            seen[(method, path, who)] = response.status_code
            if response.status_code in (401, 403):
                assert isinstance(response.json()["detail"], str)

    wrong: list[str] = []

    def expect(ok: bool, method: str, path: str, who: str) -> None:
        if not ok:
            wrong.append(f"{who:9} {method} {path} -> {seen[(method, path, who)]}")

    for method, path in ops:
        public = (method, path) in (("GET", "/health"), ("GET", "/ready"))
        for who in ("none", "wrong"):
            status = seen[(method, path, who)]
            expect(status == 200 if public else status == 401, method, path, who)
        status = seen[(method, path, "read_only")]
        read_only_ok = status not in (401, 403) if is_read(method, path) else status == 403
        expect(read_only_ok, method, path, "read_only")
        expect(seen[(method, path, "full")] not in (401, 403), method, path, "full")
    assert wrong == [], "\n".join(wrong)


def test_read_only_posts_are_routes_of_the_api(server: Server) -> None:
    # The list of POSTs a read-only key may call names only real routes (none left stale).
    posts = {path for method, path in operations(server.app) if method == "POST"}
    assert posts >= READ_ONLY_POSTS
    assert "/api/v1/assets" not in READ_ONLY_POSTS


def test_the_page_and_its_files_are_public_the_data_is_not(server: Server) -> None:
    client = server.client
    assert client.get("/").status_code == 200
    assert client.get("/ui/static/app.js").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    for path in ("/api/v1/assets/1/thumbnail", "/api/v1/assets/1/file", "/images", "/clusters"):
        assert client.get(path).status_code == 401, path
    assert client.get("/api/images/health").status_code == 401  # only GET /health is public
    refused = client.get("/api/v1/assets")
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer KEY" in refused.json()["detail"]


def test_openapi_declares_the_two_ways_of_sending_a_key(server: Server) -> None:
    document = server.client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": "an API key"}
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "security" not in document["paths"]["/api/v1/assets"]["get"]


# --- the web UI's session ----------------------------------------------------------------------


def _fresh(server: Server) -> TestClient:
    """A client with its own cookie jar, on the module's app."""
    return TestClient(server.app)


def test_signing_in_sets_an_http_only_strict_cookie_that_reads(server: Server) -> None:
    client = _fresh(server)
    assert client.get("/api/v1/session").json() == {
        "keys_required": True,
        "authenticated": False,
        "name": None,
        "read_only": False,
    }
    refused = client.post("/api/v1/session", json={"key": WRONG_KEY})
    assert refused.status_code == 401
    assert "set-cookie" not in refused.headers

    signed_in = client.post("/api/v1/session", json={"key": server.read_only})
    assert signed_in.status_code == 200
    assert signed_in.json()["read_only"] is True
    cookie = signed_in.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "Path=/;" in cookie or cookie.endswith("Path=/")
    token = client.cookies[SESSION_COOKIE]
    assert server.read_only not in token
    assert token.startswith("v1.db-")

    # <img> requests carry only the cookie: thumbnails, files and lists answer.
    assert client.get("/api/v1/assets").status_code == 200
    assert client.get("/api/v1/assets/999999/thumbnail").status_code == 404
    assert client.get("/api/v1/session").json()["name"] == "viewer"
    # ... and the key's own limits apply to its session.
    same_origin = {"Origin": "http://testserver"}
    assert (
        client.post("/api/v1/persons", json={"name": "x"}, headers=same_origin).status_code == 403
    )

    signed_out = client.delete("/api/v1/session", headers=same_origin)
    assert signed_out.status_code == 204
    assert "max-age=0" in signed_out.headers["set-cookie"].lower()
    assert client.get("/api/v1/assets").status_code == 401


def test_a_session_changes_data_only_from_the_same_origin(server: Server) -> None:
    client = _fresh(server)
    assert client.post("/api/v1/session", json={"key": server.full}).status_code == 200
    body = {"name": "cookie-made"}
    for headers in ({}, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = client.post("/api/v1/persons", json=body, headers=headers)
        assert refused.status_code == 403, headers
        assert "detail" in refused.json()
    assert client.get("/api/v1/persons").json() == []  # nothing was created
    made = client.post("/api/v1/persons", json=body, headers={"Origin": "http://testserver"})
    assert made.status_code == 201, made.text
    again = client.post(
        "/api/v1/persons", json={"name": "by-fetch"}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert again.status_code == 201, again.text
    # A key in a header needs no Origin (curl, SDKs).
    by_key = _fresh(server).post(
        "/api/v1/persons", json={"name": "by-key"}, headers={"X-API-Key": server.full}
    )
    assert by_key.status_code == 201


def test_a_forged_or_tampered_session_is_refused(server: Server) -> None:
    client = _fresh(server)
    assert client.post("/api/v1/session", json={"key": server.full}).status_code == 200
    token = client.cookies[SESSION_COOKIE]
    version, ref, expires, signature = token.split(".")
    forged = [
        f"{version}.{ref}.{int(expires) + 1}.{signature}",  # a longer life
        f"{version}.db-2.{expires}.{signature}",  # another key (the read-only one)
        f"{version}.{ref}.{expires}.{signature[:-2]}AA",
        "v1.db-1.99999999999.",
        server.full,  # the key itself is not a session
    ]
    for value in forged:
        stranger = _fresh(server)
        stranger.cookies.set(SESSION_COOKIE, value)
        response = stranger.get("/api/v1/assets")
        assert response.status_code == 401, value
        assert "sign in again" in response.json()["detail"]


def test_revoking_a_key_ends_its_requests_and_sessions_within_the_cache_time(
    server: Server,
) -> None:
    info, key = server.store.create("short-lived")
    browser = _fresh(server)
    assert browser.post("/api/v1/session", json={"key": key}).status_code == 200
    by_header = {"Authorization": f"Bearer {key}"}
    assert server.client.get("/api/v1/assets", headers=by_header).status_code == 200
    assert browser.get("/api/v1/assets").status_code == 200

    server.store.revoke(str(info.id))
    revoked_at = time.monotonic()
    while server.client.get("/api/v1/assets", headers=by_header).status_code == 200:
        assert time.monotonic() - revoked_at < CACHE_S + 1, "the revoked key still works"
        time.sleep(0.05)
    time.sleep(CACHE_S)  # the session's own cache entry is as old at most
    assert browser.get("/api/v1/assets").status_code == 401
    assert browser.post("/api/v1/session", json={"key": key}).status_code == 401


# --- cross-origin writes without any key -------------------------------------------------------


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_without_keys_other_origins_cannot_write(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    frontend = "http://localhost:5173"
    settings = make_settings(
        tmp_path, tiny_models, worker_threads=0, faces_enabled=False, cors_origins=[frontend]
    )
    services = Services.build(settings, with_library=True)
    try:
        with TestClient(create_app(settings, services)) as client:

            def upload(name: str, **headers: str) -> int:
                files = {"files": (name, _png(), "image/png")}
                return client.post("/api/v1/assets", files=files, headers=headers).status_code

            assert upload("evil.png", Origin="http://evil.example") == 403
            assert upload("site.png", **{"Sec-Fetch-Site": "cross-site"}) == 403
            assert client.get("/api/v1/assets").json()["total"] == 0
            assert (
                client.get("/api/v1/assets", headers={"Origin": "http://evil.example"}).status_code
                == 200
            )
            assert upload("own.png", Origin="http://testserver") == 201
            assert upload("frontend.png", Origin=frontend) == 201
            assert upload("curl.png") == 201
            # Preflights are still the CORS middleware's.
            preflight = client.options(
                "/api/v1/assets",
                headers={"Origin": frontend, "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == frontend
            # No key exists: the session routes say so.
            assert client.get("/api/v1/session").json()["keys_required"] is False
            assert client.post("/api/v1/session", json={"key": WRONG_KEY}).status_code == 409
    finally:
        services.close()


# --- keys from the environment, rate limits ----------------------------------------------------


def test_environment_keys_and_per_key_rate_limits(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    env_key = "a-long-enough-shared-secret-key"
    settings = make_settings(
        tmp_path,
        tiny_models,
        api_keys=[env_key, "another-long-enough-key-x"],
        rate_limit_per_minute=3,
    )
    # No image library: keys come from the environment only.
    services = Services.build(settings)
    try:
        with TestClient(create_app(settings, services)) as client:
            assert client.get("/api/v1/models").status_code == 401
            first = {"X-API-Key": env_key}
            second = {"Authorization": "Bearer another-long-enough-key-x"}
            assert [client.get("/api/v1/models", headers=first).status_code for _ in range(3)] == [
                200
            ] * 3
            limited = client.get("/api/v1/models", headers=first)
            assert limited.status_code == 429
            assert int(limited.headers["retry-after"]) == 20  # a request per 20 s at 3/min
            assert "rate limit of 3 requests per minute" in limited.json()["detail"]
            assert client.get("/api/v1/models", headers=second).status_code == 200  # per key
            assert client.get("/health").status_code == 200  # never limited
            # Made-up keys are limited per address too.
            wrong = {"X-API-Key": WRONG_KEY}
            statuses = [client.get("/api/v1/models", headers=wrong).status_code for _ in range(4)]
            assert statuses == [401, 401, 401, 429]
    finally:
        services.close()
