"""Hostile and malformed input through HTTP: integers past 64 bits, NaN and infinities in JSON,
NUL and other control characters in strings and file names, blank names. Each is answered with a
4xx that names the problem (never a 500), on SQLite and PostgreSQL, and nothing is stored."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings
from viewfinder.api.app import create_app

TOO_BIG = 2**63  # one past the largest signed 64-bit integer
TOO_SMALL = -(2**63) - 1


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (40, 90, 200)).save(out, format="PNG")
    return out.getvalue()


def multipart(field: str, filename: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
    """A multipart body built by hand: HTTP clients escape the bytes a hostile one sends as is."""
    body = (
        b'--XBOUNDARYX\r\nContent-Disposition: form-data; name="' + field.encode() + b'"; '
        b'filename="' + filename + b'"\r\nContent-Type: image/png\r\n\r\n' + data + b"\r\n"
        b"--XBOUNDARYX--\r\n"
    )
    return body, {"content-type": "multipart/form-data; boundary=XBOUNDARYX"}


@pytest.fixture(scope="module")
def import_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one server folder the API may read (VIEWFINDER_IMPORT_ROOTS)."""
    return tmp_path_factory.mktemp("import-root")


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], import_root: Path
) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("hostile"), tiny_models)
    settings = settings.model_copy(update={"import_roots": [import_root]})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def collection_id(client: TestClient) -> int:
    response = client.post("/api/v1/collections", json={"name": "hostile"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture(scope="module")
def person_id(client: TestClient) -> int:
    response = client.post("/api/v1/persons", json={"name": "Hostile Person"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _int_requests(big: int, collection: int, person: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", f"/api/v1/assets/{big}", {}),
        ("DELETE", f"/api/v1/assets/{big}", {}),
        ("GET", f"/api/v1/assets/{big}/file", {}),
        ("GET", f"/api/v1/assets/{big}/thumbnail", {}),
        ("GET", f"/api/v1/assets/{big}/preview", {}),
        ("GET", f"/api/v1/assets/{big}/faces", {}),
        ("GET", f"/api/v1/assets?offset={big}", {}),
        ("GET", f"/images?offset={big}", {}),
        ("GET", f"/api/v1/faces?offset={big}", {}),
        ("GET", f"/api/v1/faces?person_id={big}", {}),
        ("GET", f"/api/v1/faces/{big}", {}),
        ("GET", f"/api/v1/faces/{big}/thumbnail", {}),
        ("POST", f"/api/v1/faces/{big}/unassign", {}),
        ("POST", f"/api/v1/faces/{big}/assign", {"json": {"name": "x"}}),
        ("POST", "/api/v1/faces/1/assign", {"json": {"person_id": big}}),
        ("GET", f"/api/v1/collections/{big}", {}),
        ("DELETE", f"/api/v1/collections/{big}", {}),
        ("GET", f"/api/v1/collections/{big}/assets", {}),
        ("GET", f"/api/v1/collections/{collection}/assets?offset={big}", {}),
        ("DELETE", f"/api/v1/collections/{collection}/assets/{big}", {}),
        ("POST", f"/api/v1/collections/{collection}/assets", {"json": {"asset_ids": [big]}}),
        ("POST", f"/api/v1/collections/{collection}/assets/remove", {"json": {"asset_ids": [big]}}),
        ("GET", f"/api/v1/persons/{big}", {}),
        ("PATCH", f"/api/v1/persons/{big}", {"json": {"name": "x"}}),
        ("DELETE", f"/api/v1/persons/{big}", {}),
        ("GET", f"/api/v1/persons/{big}/photos", {}),
        ("GET", f"/api/v1/persons/{person}/photos?offset={big}", {}),
        ("POST", f"/api/v1/persons/{big}/merge", {"json": {"into": person}}),
        ("POST", f"/api/v1/persons/{person}/merge", {"json": {"into": big}}),
        ("POST", "/api/v1/search", {"json": {"asset_id": big}}),
        ("POST", "/api/v1/search", {"json": {"query": "a cat", "person_ids": [big]}}),
        (
            "POST",
            "/api/v1/search/image",
            {"files": {"file": ("q.png", png())}, "data": {"offset": str(big)}},
        ),
    ]


@pytest.mark.parametrize("big", [TOO_BIG, TOO_SMALL])
def test_integers_past_64_bits_are_refused_with_the_range(
    client: TestClient, collection_id: int, person_id: int, big: int
) -> None:
    """SQLite cannot bind such an int (it was a 500); every id and offset now says its range."""
    # offsets have their own lower bound of 0
    expected = (
        "greater than or equal to" if big < 0 else "less than or equal to 9223372036854775807"
    )
    for method, url, kwargs in _int_requests(big, collection_id, person_id):
        response = client.request(method, url, **kwargs)
        assert response.status_code == 422, (method, url, response.text)
        assert expected in response.text, (method, url, response.text)
    # the largest representable id is an ordinary id that does not exist
    assert client.get(f"/api/v1/assets/{TOO_BIG - 1}").status_code == 404
    assert client.get(f"/api/v1/persons/{-TOO_BIG}").status_code == 404


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/search", '{"query": "a cat", "min_score": NaN}', "min_score"),
        ("/api/v1/faces/cluster/dual", '{"person_threshold": Infinity}', "person_threshold"),
        ("/api/v1/faces/train", '{"margin": -Infinity}', "margin"),
        ("/api/v1/collections", '{"name": NaN}', "name"),
        ("/analyze_image/", '{"image_url": Infinity, "tasks": []}', "image_url"),
    ],
)
def test_nan_and_infinity_in_json_are_a_422_naming_the_field(
    client: TestClient, url: str, body: str, field: str
) -> None:
    """Python's JSON parser accepts NaN and Infinity; echoing them made the 422 itself fail."""
    response = client.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert error["input"] in ("nan", "inf", "-inf")


@pytest.mark.parametrize("name", [" ", " \t ", "a\x01b", "a\x00b"])
def test_blank_or_control_character_collection_names_are_refused(
    client: TestClient, name: str
) -> None:
    before = client.get("/api/v1/collections").json()
    response = client.post("/api/v1/collections", json={"name": name})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
    assert client.get("/api/v1/collections").json() == before


def test_collection_names_are_stored_trimmed(client: TestClient) -> None:
    response = client.post("/api/v1/collections", json={"name": "  trimmed  "})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "trimmed"
    duplicate = client.post("/api/v1/collections", json={"name": "trimmed "})
    assert duplicate.status_code == 409, duplicate.text


@pytest.fixture
def backend_client(
    tmp_path: Path, tiny_models: dict[str, Path], database_url: str
) -> Iterator[TestClient]:
    """The app on SQLite and on PostgreSQL, whose text columns cannot hold NUL."""
    roots = tmp_path / "imports"
    roots.mkdir()
    settings = make_settings(tmp_path, tiny_models, database_url=database_url, import_roots=[roots])
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_nul_in_strings_is_refused_and_stores_nothing(backend_client: TestClient) -> None:
    client = backend_client
    person = client.post("/api/v1/persons", json={"name": "Ada"}).json()["id"]
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/api/v1/collections", {"json": {"name": "a\x00b"}}, 422),
        ("POST", "/api/v1/collections", {"json": {"name": "ok", "description": "\x00"}}, 422),
        ("POST", "/api/v1/persons", {"json": {"name": "a\x00b"}}, 400),
        ("PATCH", f"/api/v1/persons/{person}", {"json": {"name": "\x00"}}, 400),
        ("POST", "/api/v1/faces/clusters/a%00b/label", {"json": {"name": "Ada"}}, 422),
        ("GET", "/api/v1/faces?cluster_id=%00", {}, 422),
        ("GET", "/api/v1/jobs?kind=a%00b", {}, 422),
        ("GET", "/api/v1/jobs/a%00b", {}, 422),
        ("POST", "/api/v1/imports", {"json": {"path": "\x00"}}, 422),
        ("POST", "/api/v1/classifiers/train", {"json": {"source": "a\x00b"}}, 422),
        ("POST", "/api/v1/classifiers/train", {"json": {"source": "\x00", "queue": False}}, 422),
    ]
    for method, url, kwargs, status in cases:
        response = client.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        assert "NUL" in response.text or "control characters" in response.text, response.text
    assert client.get("/api/v1/collections").json() == []
    assert [p["name"] for p in client.get("/api/v1/persons").json()] == ["Ada"]
    assert client.get("/api/v1/jobs").json() == []


@pytest.mark.parametrize(("route", "field"), [("/api/v1/assets", "files"), ("/images", "file")])
def test_control_characters_in_upload_file_names_are_dropped(
    backend_client: TestClient, route: str, field: str
) -> None:
    body, headers = multipart(field, b"sun\x00set\x01.png", png())
    response = backend_client.post(route, content=body, headers=headers)
    assert response.status_code == 201, response.text
    (asset,) = backend_client.get("/api/v1/assets").json()["items"]
    assert asset["original_filename"] == "sunset.png"


def test_a_422_for_a_deeply_nested_input_leaves_the_input_out(client: TestClient) -> None:
    """The 422 used to echo the input, and encoding 800 nested lists failed with a 500."""
    nested = "[" * 800 + "]" * 800
    response = client.post(
        "/api/v1/collections",
        content=f'{{"name": {nested}}}'.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "name"]
    assert error["msg"] == "Input should be a valid string"
    assert "input" not in error


def test_deeply_nested_tasks_json_is_a_400(client: TestClient) -> None:
    nested = '[{"operation_id": "a", "type": "classify", "params": {"x": ' + "[" * 5000
    response = client.post(
        "/analyze_image_upload/",
        files={"image_file": ("q.png", png())},
        data={"tasks_json": nested + "]" * 5000 + "}}]"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "tasks_json is nested too deeply"


def test_deeply_nested_seed_training_data_is_a_400(client: TestClient, import_root: Path) -> None:
    folder = import_root / "deep-export"
    folder.mkdir()
    (folder / "collections.json").write_text("[" * 5000 + "]" * 5000)
    response = client.post(
        "/api/v1/classifiers/train", json={"source": str(folder), "queue": False}
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "collections.json is nested too deeply"
