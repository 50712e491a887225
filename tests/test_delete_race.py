"""Deleting an asset while the same bytes are uploaded again. Blobs are content-addressed, so the
new row shares the blob keys of the row being deleted: a delete that removed "its" blobs after
the new row was written (or after the upload had written them) left the new row without files.

The interleavings are forced with hooks on the library's own objects (the vector store's
``remove``, called between the row delete and the blob removal, and the blob store's ``put``)
and events; every wait has a deadline, so a regression fails instead of hanging."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings
from tests.test_library_api import jpeg, upload
from viewfinder.api.app import create_app
from viewfinder.library.library import Library

WAIT_S = 20
PHOTO = jpeg((40, 90, 200), size=(96, 64), seed=7)


@contextmanager
def library_client(
    overrides: dict[str, Any], tmp_path: Path, tiny_models: dict[str, Path]
) -> Iterator[tuple[TestClient, Library]]:
    settings = make_settings(
        tmp_path, tiny_models, worker_threads=0, faces_enabled=False, **overrides
    )
    with TestClient(create_app(settings)) as client:
        yield client, client.app.state.services.require_library()  # type: ignore[attr-defined]


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings of the blob store: local files, or a bucket on a loopback S3 server."""
    if request.param == "local":
        return {}
    from tests.s3_fixtures import _MISSING, REGION

    if _MISSING:
        pytest.skip(f"S3 tests need boto3 and moto[server] (missing: {', '.join(_MISSING)})")
    endpoint = request.getfixturevalue("endpoint")
    bucket = request.getfixturevalue("bucket")
    return {"s3_bucket": bucket, "s3_endpoint_url": endpoint, "s3_region": REGION}


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def pause_first_call(
    obj: Any, name: str, when: Callable[..., bool] = lambda *a: True
) -> tuple[threading.Event, threading.Event]:
    """Make the first matching call of ``obj.name`` signal ``reached`` and wait for ``go``."""
    reached, go = threading.Event(), threading.Event()
    original = getattr(obj, name)

    def paused(*args: Any) -> Any:
        if when(*args) and not reached.is_set():
            reached.set()
            assert go.wait(WAIT_S), f"the test never let {name} go on"
        return original(*args)

    setattr(obj, name, paused)
    return reached, go


def assert_files_served(client: TestClient, asset_id: int) -> None:
    file = client.get(f"/api/v1/assets/{asset_id}/file")
    assert file.status_code == 200, file.text
    assert file.content == PHOTO
    for which in ("thumbnail", "preview"):
        derived = client.get(f"/api/v1/assets/{asset_id}/{which}")
        assert derived.status_code == 200, (which, derived.text)


def test_an_upload_between_the_row_delete_and_the_blob_removal_keeps_its_files(
    database_url: str, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    with library_client({"database_url": database_url}, tmp_path, tiny_models) as (client, lib):
        old_id = upload(client, ("a.jpg", PHOTO)).json()[0]["asset"]["id"]
        row_deleted, remove_blobs = pause_first_call(lib.index, "remove")
        deleting, deleted = in_thread(lambda: client.delete(f"/api/v1/assets/{old_id}"))
        assert row_deleted.wait(WAIT_S)
        again = upload(client, ("again.jpg", PHOTO))
        remove_blobs.set()
        deleting.join(WAIT_S)
        assert [answer.status_code for answer in deleted] == [204]
        assert again.status_code == 201, again.text
        result = again.json()[0]
        assert result["created"] is True
        assert_files_served(client, result["asset"]["id"])


def test_a_delete_between_an_uploads_blob_writes_and_its_row_keeps_the_files(
    database_url: str, storage: dict[str, Any], tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    overrides = {"database_url": database_url, **storage}
    with library_client(overrides, tmp_path, tiny_models) as (client, lib):
        old_id = upload(client, ("a.jpg", PHOTO)).json()[0]["asset"]["id"]
        row_deleted, remove_blobs = pause_first_call(lib.index, "remove")
        deleting, deleted = in_thread(lambda: client.delete(f"/api/v1/assets/{old_id}"))
        assert row_deleted.wait(WAIT_S)
        # The upload finds no row, writes its blobs (the last one is the preview) and pauses.
        wrote_blobs, insert_row = pause_first_call(
            lib.blobs, "put", when=lambda key, _data: key.startswith("previews/")
        )
        uploading, uploaded = in_thread(lambda: upload(client, ("again.jpg", PHOTO)))
        assert wrote_blobs.wait(WAIT_S)
        remove_blobs.set()  # the delete removes the blobs: no row refers to them yet
        deleting.join(WAIT_S)
        assert [answer.status_code for answer in deleted] == [204]
        insert_row.set()
        uploading.join(WAIT_S)
        assert [answer.status_code for answer in uploaded] == [201]
        assert_files_served(client, uploaded[0].json()[0]["asset"]["id"])
