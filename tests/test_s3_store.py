"""The S3 blob store against a real S3 server on loopback (moto's standalone server, started here
as a subprocess): the store on its own, then the whole library over HTTP with its files in S3.
Skipped when boto3 or ``moto[server]`` is not installed (both are in the dev extra)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import free_port, make_settings
from tests.test_library_api import jpeg, upload, wait_processed
from viewfinder.errors import NotFoundError, StorageError
from viewfinder.storage.blobs import original_key, preview_key, thumbnail_key

_MISSING = [m for m in ("boto3", "moto", "flask", "flask_cors") if not importlib.util.find_spec(m)]
pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"S3 tests need boto3 and moto[server] (missing: {', '.join(_MISSING)}): "
    "pip install -e '.[dev]'",
)

REGION = "us-east-1"
SHA = hashlib.sha256(b"one").hexdigest()


def _moto_server() -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script)]
    found = shutil.which("moto_server")
    if found is None:
        pytest.skip("the moto_server command of moto[server] is not installed")
    return [found]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server on 127.0.0.1, and an environment in which boto3 talks only to it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask instance metadata
        env.setenv("AWS_CONFIG_FILE", str(log_path.parent / "no-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(log_path.parent / "no-credentials"))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
            env.delenv(name, raising=False)
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [*_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    exited = server.poll() is not None
                    if exited or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"moto_server did not start: {log_path.read_text()}"
                        ) from None
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture
def s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"vf-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _keys(s3: Any, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


class _Recording:
    """A boto3 client that records which S3 operations were asked of it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return method(**kwargs)

        return call


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
    assert _keys(s3, bucket) == [f"photos/{key}", f"photos/{thumb}"]
    head = s3.head_object(Bucket=bucket, Key=f"photos/{thumb}")
    assert head["ContentType"] == "image/jpeg"
    assert store.uri(key) == f"s3://{bucket}/photos/{key}"
    assert store.local_path(key) is None
    store.delete(key)
    store.delete(key)  # deleting what is gone is not an error, as in the local store
    assert not store.exists(key)
    with pytest.raises(NotFoundError):
        store.get(key)
    assert _keys(s3, bucket) == [f"photos/{thumb}"]


def test_put_is_one_request_and_skips_an_object_of_the_same_size(
    endpoint: str, bucket: str, s3: Any
) -> None:
    recording = _Recording(s3)
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
    recording = _Recording(s3)
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
    assert _keys(s3, bucket) == []


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
    assert _keys(s3, bucket) == [f"a/{key}"]
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
        assert _keys(s3, bucket) == sorted(
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
        assert not [k for k in _keys(s3, bucket) if green_sha in k]
        assert len(_keys(s3, bucket)) == 6  # the other two assets keep their three objects

        # An object lost behind the library's back is a 404 naming what is missing, not a 500.
        s3.delete_object(Bucket=bucket, Key=f"lib/{preview_key(hashlib.sha256(red).hexdigest())}")
        lost = client.get(f"/api/v1/assets/{ids[1]}/preview")
        assert lost.status_code == 404
        assert "preview" in lost.json()["detail"]
