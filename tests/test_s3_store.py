"""The S3 blob store against a real S3 server on loopback (moto's standalone server, started here
as a subprocess): the store on its own, then the whole library over HTTP with its files in S3.
Skipped when boto3 or ``moto[server]`` is not installed (both are in the dev extra)."""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_settings
from tests.s3_fixtures import REGION, Recording, bucket_keys, requires_s3
from tests.test_library_api import jpeg, upload, wait_processed
from viewfinder.errors import NotFoundError, StorageError
from viewfinder.storage.blobs import original_key, preview_key, thumbnail_key
from viewfinder.testing.server import free_port

pytestmark = requires_s3

SHA = hashlib.sha256(b"one").hexdigest()


def _store(endpoint: str, bucket: str, prefix: str = "", client: Any = None) -> Any:
    from viewfinder.storage.s3 import S3BlobStore

    return S3BlobStore(bucket, prefix, endpoint_url=endpoint, region=REGION, client=client)


# --- the store --------------------------------------------------------------------------------


def test_round_trip_missing_keys_and_uri(endpoint: str, bucket: str, s3: Any) -> None:
    store = _store(endpoint, bucket, "/photos/")
    store.check()
    key, thumb = original_key(SHA), thumbnail_key(SHA)
    assert not store.exists(key)
    with pytest.raises(NotFoundError, match="missing"):
        store.get(key)
    store.put(key, b"original bytes")
    store.put(thumb, b"\xff\xd8 a jpeg")
    assert store.exists(key)
    assert store.get(key) == b"original bytes"
    assert bucket_keys(s3, bucket) == [f"photos/{key}", f"photos/{thumb}"]
    head = s3.head_object(Bucket=bucket, Key=f"photos/{thumb}")
    assert head["ContentType"] == "image/jpeg"
    assert store.uri(key) == f"s3://{bucket}/photos/{key}"
    assert store.local_path(key) is None
    store.delete(key)
    store.delete(key)  # deleting what is gone is not an error, as in the local store
    assert not store.exists(key)
    with pytest.raises(NotFoundError):
        store.get(key)
    assert bucket_keys(s3, bucket) == [f"photos/{thumb}"]


def test_put_is_one_request_and_skips_an_object_of_the_same_size(
    endpoint: str, bucket: str, s3: Any
) -> None:
    recording = Recording(s3)
    store = _store(endpoint, bucket, client=recording)
    key = preview_key(SHA)
    store.put(key, b"12345")
    assert recording.calls.count("put_object") == 1
    recording.calls.clear()
    store.put(key, b"abcde")  # same key, same size: content-addressed, so already there
    assert recording.calls == ["head_object"]
    assert store.get(key) == b"12345"
    store.put(key, b"longer bytes")  # a different size is a torn or foreign object: replaced
    assert store.get(key) == b"longer bytes"


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "originals/ab/../../etc/passwd",
        f"originals/{SHA[:2]}/{SHA}/../../x",
        f"/originals/{SHA[:2]}/{SHA}",
        f"originals/{SHA[:2]}/{SHA.upper()}",
        f"other/{SHA[:2]}/{SHA}",
        "",
    ],
)
def test_bad_keys_are_refused_before_any_request(
    endpoint: str, bucket: str, s3: Any, key: str
) -> None:
    recording = Recording(s3)
    store = _store(endpoint, bucket, client=recording)
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.uri(key),
        lambda: store.local_path(key),
    ):
        with pytest.raises(ValueError, match="invalid blob key"):
            call()
    assert recording.calls == []
    assert bucket_keys(s3, bucket) == []


def test_prefixes_isolate_stores_in_one_bucket(endpoint: str, bucket: str, s3: Any) -> None:
    first, second, bare = (
        _store(endpoint, bucket, "a"),
        _store(endpoint, bucket, "b/c/"),
        _store(endpoint, bucket),
    )
    key = original_key(SHA)
    first.put(key, b"first")
    assert not second.exists(key)
    assert not bare.exists(key)
    with pytest.raises(NotFoundError):
        second.get(key)
    second.put(key, b"second")
    second.delete(key)
    assert first.get(key) == b"first"
    assert bucket_keys(s3, bucket) == [f"a/{key}"]
    with pytest.raises(StorageError, match="invalid S3 prefix"):
        _store(endpoint, bucket, "a/../b")


# --- start-up ---------------------------------------------------------------------------------


def test_start_up_fails_clearly_when_the_bucket_cannot_be_used(
    endpoint: str, tmp_path: Path, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from viewfinder.api.app import create_app

    def settings(**s3: Any) -> Any:
        return make_settings(tmp_path, tiny_models, s3_region=REGION, **s3)

    with pytest.raises(StorageError, match=r"S3 bucket 'no-such-bucket' at .* does not exist"):
        create_app(settings(s3_bucket="no-such-bucket", s3_endpoint_url=endpoint))
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError, match="cannot reach S3 bucket 'photos'"):
        create_app(settings(s3_bucket="photos", s3_endpoint_url=dead))
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if the [s3] extra were not installed
    with pytest.raises(StorageError, match=r"pip install 'viewfinder\[s3\]'"):
        create_app(settings(s3_bucket="photos", s3_endpoint_url=endpoint))
    assert not (tmp_path / "data" / "viewfinder.db").exists()  # nothing was opened


def test_settings_read_the_s3_variables_and_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from viewfinder.settings import Settings

    monkeypatch.setenv("VIEWFINDER_S3_BUCKET", "photos")
    monkeypatch.setenv("VIEWFINDER_S3_PREFIX", "library/")
    monkeypatch.setenv("VIEWFINDER_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    loaded = Settings(_env_file=None)
    assert (loaded.s3_bucket, loaded.s3_prefix, loaded.s3_endpoint_url, loaded.s3_region) == (
        "photos",
        "library/",
        "http://127.0.0.1:9000",
        "eu-west-3",
    )
    monkeypatch.setenv("VIEWFINDER_S3_BUCKET", "")
    assert Settings(_env_file=None).s3_bucket is None


# --- the library over HTTP --------------------------------------------------------------------


def test_library_over_http_keeps_its_files_in_s3(
    endpoint: str, bucket: str, s3: Any, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    from viewfinder.api.app import create_app

    settings = make_settings(
        tmp_path,
        tiny_models,
        s3_bucket=bucket,
        s3_prefix="lib",
        s3_endpoint_url=endpoint,
        s3_region=REGION,
        faces_enabled=False,
        index_save_interval_s=0,
    )
    green, red = jpeg((30, 160, 40), seed=1), jpeg((200, 20, 20), seed=2)
    png = io.BytesIO()
    Image.new("RGB", (80, 60), (20, 20, 200)).save(png, format="PNG")
    blue = png.getvalue()
    with TestClient(create_app(settings)) as client:
        made = upload(client, ("green.jpg", green), ("red.jpg", red), folder="nature")
        assert made.status_code == 201
        ids = [r["asset"]["id"] for r in made.json()]
        seed004 = client.post("/images", files={"file": ("blue.png", blue, "image/png")})
        assert seed004.status_code == 201
        wait_processed(client, 3)  # the workers read every original back from S3

        shas = {hashlib.sha256(data).hexdigest(): data for data in (green, red, blue)}
        assert bucket_keys(s3, bucket) == sorted(
            f"lib/{make(sha)}"
            for sha in shas
            for make in (original_key, thumbnail_key, preview_key)
        )
        assert not settings.blob_root.exists()  # nothing went to local files

        for asset_id, data in zip(ids, (green, red), strict=True):
            file = client.get(f"/api/v1/assets/{asset_id}/file")
            assert file.status_code == 200
            assert file.content == data
            assert file.headers["content-type"] == "image/jpeg"
            sha = hashlib.sha256(data).hexdigest()
            for which, key, longest in (
                ("thumbnail", thumbnail_key(sha), 256),
                ("preview", preview_key(sha), 1024),
            ):
                got = client.get(f"/api/v1/assets/{asset_id}/{which}")
                assert got.status_code == 200
                assert got.headers["content-type"] == "image/jpeg"
                stored = s3.get_object(Bucket=bucket, Key=f"lib/{key}")["Body"].read()
                assert got.content == stored
                assert max(Image.open(io.BytesIO(got.content)).size) <= longest

        body = seed004.json()
        blue_sha = hashlib.sha256(blue).hexdigest()
        assert body["storage_path"] == f"s3://{bucket}/lib/{original_key(blue_sha)}"
        image = client.get(body["image_url"])
        assert image.content == blue
        assert image.headers["content-type"] == "image/png"

        hits = client.post(
            "/api/demo_backend_v2/image_search/search", json={"query": "photos", "k": 10}
        ).json()
        assert len(hits) == 3
        by_path = {h["s3_path"]: h for h in hits}
        assert set(by_path) == {f"s3://{bucket}/lib/{original_key(sha)}" for sha in shas}
        for sha, data in shas.items():
            hit = by_path[f"s3://{bucket}/lib/{original_key(sha)}"]
            assert client.get(hit["image_url"]).content == data

        assert client.delete(f"/api/v1/assets/{ids[0]}").status_code == 204
        green_sha = hashlib.sha256(green).hexdigest()
        assert not [k for k in bucket_keys(s3, bucket) if green_sha in k]
        assert len(bucket_keys(s3, bucket)) == 6  # the other two assets keep their three objects

        # An object lost behind the library's back is a 404 naming what is missing, not a 500.
        s3.delete_object(Bucket=bucket, Key=f"lib/{preview_key(hashlib.sha256(red).hexdigest())}")
        lost = client.get(f"/api/v1/assets/{ids[1]}/preview")
        assert lost.status_code == 404
        assert "preview" in lost.json()["detail"]
