"""Ids are never handed out twice, on both backends and through the API, and what is keyed by an
id outside the database (classifier files) goes with its row."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import make_settings
from tests.db_fixtures import face_row
from viewfinder.api.app import create_app
from viewfinder.classifiers.store import LinearClassifier
from viewfinder.container import Services
from viewfinder.db.engine import make_engine
from viewfinder.db.migrate import upgrade
from viewfinder.db.models import Asset, Base, Collection, Face, FaceHead, Person
from viewfinder.settings import Settings


def _asset(n: int) -> Asset:
    return Asset(
        sha256=f"{n:064x}",
        original_filename=f"{n}.png",
        content_type="image/png",
        size_bytes=1,
        width=1,
        height=1,
    )


def _rows(s: Session) -> dict[type[Base], Callable[[int], Base]]:
    """A factory of a new row per table with an integer id."""
    holder = _asset(10_000)
    s.add(holder)
    s.flush()
    return {
        Asset: _asset,
        Person: lambda n: Person(name=f"p{n}", name_key=f"p{n}"),
        Collection: lambda n: Collection(name=f"c{n}"),
        FaceHead: lambda n: FaceHead(version=f"v{n}", weights=b""),
        Face: lambda n: face_row(holder.id),
    }


def test_deleting_the_newest_row_never_frees_its_id(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        factories = _rows(s)
    for table, make in factories.items():
        with sessions.begin() as s:
            first, newest = make(1), make(2)
            s.add_all([first, newest])
            s.flush()
            gone = newest.id  # type: ignore[attr-defined]
            s.execute(delete(table).where(table.id == gone))  # type: ignore[attr-defined]
        with sessions.begin() as s:
            again = make(3)
            s.add(again)
            s.flush()
            assert again.id > gone, table.__name__  # type: ignore[attr-defined]


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 24), (seed * 40 % 256, 90, 200)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def settings(tmp_path: Path, tiny_models: dict[str, Path]) -> Settings:
    return make_settings(tmp_path, tiny_models, worker_threads=0)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_api_ids_of_deleted_assets_people_and_collections_stay_retired(
    client: TestClient,
) -> None:
    def upload(seed: int) -> int:
        response = client.post("/api/v1/assets", files={"files": (f"{seed}.png", _png(seed))})
        return int(response.json()[0]["asset"]["id"])

    upload(1)
    newest = upload(2)
    file_url = f"/api/v1/assets/{newest}/file"
    assert client.get(file_url).status_code == 200
    assert client.delete(f"/api/v1/assets/{newest}").status_code == 204
    assert upload(3) > newest
    assert client.get(file_url).status_code == 404  # a cached URL never shows another image

    for route, body in (("/api/v1/persons", "name"), ("/api/v1/collections", "name")):
        client.post(route, json={body: "first"})
        made = client.post(route, json={body: "newest"}).json()["id"]
        assert client.delete(f"{route}/{made}").status_code == 204
        assert client.post(route, json={body: "next"}).json()["id"] > made, route


def _analyze(client: TestClient, kind: str, params: dict[str, int]) -> dict[str, Any]:
    task = {"operation_id": "t", "type": kind, "params": params}
    response = client.post(
        "/analyze_image_upload/",
        files={"image_file": ("q.png", _png(7))},
        data={"tasks_json": json.dumps([task])},
    )
    result: dict[str, Any] = response.json()["results"]["t"]
    return result


def _classify(client: TestClient, collection_id: int) -> dict[str, Any]:
    return _analyze(client, "classify", {"collection_id": collection_id})


def test_a_deleted_collections_classifier_goes_with_it(
    client: TestClient, settings: Settings
) -> None:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    cid = client.post("/api/v1/collections", json={"name": "warm"}).json()["id"]
    dim = len(_analyze(client, "embed_clip_vit_b_32", {})["data"])
    for version in ("2026-01-01_000000", "2026-01-02_000000"):
        services.classifiers.save(
            LinearClassifier(cid, coef=(1.0,) * dim, intercept=5.0, version=version)
        )
    assert _classify(client, cid)["status"] == "success"
    kept = LinearClassifier(cid + 1, coef=(1.0,) * dim, intercept=5.0)
    services.classifiers.save(kept)  # another id's classifier (seed 000 data) is untouched

    assert client.delete(f"/api/v1/collections/{cid}").status_code == 204

    assert list(settings.classifier_dir.glob(f"collection_{cid}_classifier_*.json")) == []
    best = json.loads((settings.classifier_dir / "best_models.json").read_text())
    assert best == {str(cid + 1): kept.file_name}
    assert _classify(client, cid)["status"] == "skipped"


def test_upgrading_a_sqlite_database_keeps_every_row_and_retires_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0004")
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("PRAGMA foreign_keys=ON")
        db.executemany(
            "INSERT INTO assets (id, sha256, original_filename, folder, content_type, size_bytes,"
            " width, height, created_at) VALUES (?, ?, 'a.png', '', 'image/png', 1, 1, 1, "
            "'2026-01-01 00:00:00')",
            [(1, "a" * 64), (2, "b" * 64), (3, "c" * 64)],
        )
        db.execute("DELETE FROM assets WHERE id = 3")
        db.execute(
            "INSERT INTO asset_tasks (asset_id, kind, state, attempts, updated_at)"
            " VALUES (2, 'embed', 'done', 0, '2026-01-01')"
        )
        db.execute("INSERT INTO collections (id, name, created_at) VALUES (1, 'c', '2026-01-01')")
        db.execute(
            "INSERT INTO collection_members (collection_id, asset_id, added_at)"
            " VALUES (1, 2, '2026-01-01')"
        )

    upgrade(url)

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            sql = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master").fetchall())
            for table in ("assets", "persons", "faces", "face_heads", "collections"):
                assert "AUTOINCREMENT" in sql[table], table
            # Rebuilding the parent tables did not cascade into their children.
            assert connection.exec_driver_sql("SELECT count(*) FROM asset_tasks").scalar() == 1
            members = connection.exec_driver_sql("SELECT count(*) FROM collection_members")
            assert members.scalar() == 1
        with sessionmaker(engine).begin() as s:
            assert sorted(s.scalars(select(Asset.id))) == [1, 2]
            s.execute(delete(Asset).where(Asset.id == 2))
            fresh = _asset(99)
            s.add(fresh)
            s.flush()
            # Id 2, deleted after the upgrade, is retired; id 3, deleted before it, could not be
            # known (the old table kept no record of it).
            assert fresh.id == 3
            s.execute(delete(Asset).where(Asset.id == 3))
            again = _asset(100)
            s.add(again)
            s.flush()
            assert again.id == 4
    finally:
        engine.dispose()
