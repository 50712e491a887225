"""Indexing an S3 bucket in place, against a real S3 server on 127.0.0.1 (tests/s3_fixtures.py):
a bucket laid out as seed 002's (``s3://image2search/nature/sunset1.jpg`` is in folder
``nature``) is listed page by page, its images become assets whose originals stay in the bucket,
they are embedded and searchable, and a re-run lists the bucket and downloads nothing."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import make_settings, serve_env
from tests.s3_fixtures import REGION, Recording, bucket_keys, requires_s3
from tests.test_library_api import jpeg, wait_processed
from viewfinder.errors import ConflictError, InvalidInputError, NotFoundError
from viewfinder.library.bucket_import import BucketImporter, folder_of
from viewfinder.settings import Settings
from viewfinder.storage.s3_source import S3Location, parse_s3_url, split_object_uri

pytestmark = requires_s3


def png(color: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


# Seed 002's bucket: images under folder prefixes, nested folders, a folder marker object, and
# objects that are not images. Nine keys, so a page size of 2 lists it in five pages.
SEED_002_IMAGES = {
    "nature/sunset1.jpg": jpeg((230, 120, 40), seed=1),
    "nature/mountain_view.jpg": jpeg((90, 110, 130), seed=2),
    "nature/birds/heron.png": png((40, 90, 200)),
    "city/street.jpg": jpeg((120, 120, 120), seed=4),
    "city/night/neon.jpg": jpeg((200, 20, 200), seed=5),
    "cover.jpg": jpeg((20, 200, 60), seed=6),
}
SEED_002_OTHERS = {"nature/": b"", "nature/notes.txt": b"field notes", "readme.md": b"# photos"}
FOLDERS = {
    "nature/sunset1.jpg": "nature",
    "nature/mountain_view.jpg": "nature",
    "nature/birds/heron.png": "nature/birds",
    "city/street.jpg": "city",
    "city/night/neon.jpg": "city/night",
    "cover.jpg": "",
}


def fill(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)


@pytest.fixture
def seed_002_bucket(s3: Any, bucket: str) -> str:
    fill(s3, bucket, SEED_002_IMAGES | SEED_002_OTHERS)
    return bucket


def s3_settings(tmp_path: Path, tiny_models: dict[str, Path], **overrides: Any) -> Settings:
    return make_settings(
        tmp_path,
        tiny_models,
        s3_endpoint_url=overrides.pop("endpoint"),
        s3_region=REGION,
        faces_enabled=False,
        index_save_interval_s=0,
        **overrides,
    )


@pytest.fixture
def in_place(
    endpoint: str, s3: Any, tmp_path: Path, tiny_models: dict[str, Path]
) -> Iterator[tuple[TestClient, Any, Recording]]:
    """A library with local blob files and no worker threads (the test drains the worker), its
    S3 client recording every request, and the API over it."""
    from viewfinder.api.app import create_app
    from viewfinder.container import Services

    settings = s3_settings(tmp_path, tiny_models, endpoint=endpoint, worker_threads=0)
    services = Services.build(settings, with_library=True)
    lib = services.require_library()
    recording = Recording(s3)
    lib.buckets.objects._client = recording  # the one client imports and the worker read with
    with TestClient(create_app(settings, services)) as client:
        yield client, lib, recording
    services.close()


def by_uri(client: TestClient) -> dict[str, dict[str, Any]]:
    items = client.get("/api/v1/assets", params={"limit": 1000}).json()["items"]
    return {a["original_uri"]: a for a in items}


def test_a_seed_002_bucket_is_indexed_in_place_and_a_rerun_downloads_nothing(
    in_place: tuple[TestClient, Any, Recording], seed_002_bucket: str, s3: Any, tmp_path: Path
) -> None:
    client, lib, recording = in_place
    bucket = seed_002_bucket
    before = bucket_keys(s3, bucket)
    report = lib.buckets.ingest(parse_s3_url(f"s3://{bucket}"), page_size=2)
    assert (report.created, report.existing) == (6, 0)
    assert sorted(report.skipped) == [
        ("nature/notes.txt", "not an image file name (no image extension)"),
        ("readme.md", "not an image file name (no image extension)"),
    ]
    assert recording.calls.count("list_objects_v2") == 5  # 9 keys, 2 per page
    assert recording.calls.count("get_object") == 6  # each image once, nothing else

    assets = by_uri(client)
    assert {uri: a["folder"] for uri, a in assets.items()} == {
        f"s3://{bucket}/{key}": folder for key, folder in FOLDERS.items()
    }
    for key, data in SEED_002_IMAGES.items():
        asset = assets[f"s3://{bucket}/{key}"]
        assert asset["sha256"] == hashlib.sha256(data).hexdigest()
        assert asset["original_filename"] == key.rsplit("/", 1)[-1]
        assert asset["size_bytes"] == len(data)
    # Nothing copied: no original in the blob store, nothing written into the user's bucket.
    blobs = lib.settings.blob_root
    assert not (blobs / "originals").exists()
    assert len(list((blobs / "thumbnails").rglob("*.jpg"))) == 6
    assert len(list((blobs / "previews").rglob("*.jpg"))) == 6
    assert bucket_keys(s3, bucket) == before

    # The worker reads the originals from the bucket; every image is embedded.
    assert lib.worker.drain(timeout_s=120)
    state = client.get("/api/v1/jobs/processing").json()
    assert state["counts"]["done"] == 6
    assert state["counts"]["failed"] == 0
    assert state["indexed"] == 6

    hits = client.post(
        "/api/v1/search", json={"query": "a photo of nature", "k": 10, "folder": "nature"}
    ).json()["hits"]
    assert {h["asset"]["original_uri"] for h in hits} == {
        f"s3://{bucket}/{key}" for key in SEED_002_IMAGES if key.startswith("nature/")
    }
    seed002 = client.post(
        "/api/demo_backend_v2/image_search/search",
        json={"query": "street at night", "k": 10, "folder": "city"},
    ).json()
    assert sorted((h["folder"], h["s3_path"]) for h in seed002) == [
        ("city", f"s3://{bucket}/city/street.jpg"),
        ("city/night", f"s3://{bucket}/city/night/neon.jpg"),
    ]
    heron = assets[f"s3://{bucket}/nature/birds/heron.png"]
    original = client.get(heron["file_url"])
    assert original.status_code == 200
    assert original.content == SEED_002_IMAGES["nature/birds/heron.png"]
    assert original.headers["content-type"] == "image/png"
    assert client.get(heron["thumbnail_url"]).headers["content-type"] == "image/jpeg"

    recording.calls.clear()
    again = lib.buckets.ingest(parse_s3_url(f"s3://{bucket}/"), page_size=2)
    assert (again.created, again.existing, len(again.skipped)) == (0, 6, 2)
    assert recording.calls == ["list_objects_v2"] * 5  # the listing, and no download
    assert len(by_uri(client)) == 6

    # Deleting an asset removes what Viewfinder made, never the user's object.
    assert client.delete(f"/api/v1/assets/{heron['id']}").status_code == 204
    assert bucket_keys(s3, bucket) == before
    assert len(list((blobs / "thumbnails").rglob("*.jpg"))) == 5
    # API imports from buckets are off until VIEWFINDER_IMPORT_BUCKETS names them.
    refused = client.post("/api/v1/imports", json={"path": f"s3://{bucket}/nature"})
    assert refused.status_code == 400
    assert "VIEWFINDER_IMPORT_BUCKETS" in refused.json()["detail"]


def test_api_import_job_indexes_a_prefix_in_place_with_files_in_s3(
    endpoint: str, seed_002_bucket: str, s3: Any, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    from viewfinder.api.app import create_app

    bucket = seed_002_bucket
    library_bucket = f"{bucket}-library"
    s3.create_bucket(Bucket=library_bucket)
    s3.put_object(Bucket=bucket, Key="nature-old/faded.jpg", Body=jpeg((9, 9, 9), seed=9))
    before = bucket_keys(s3, bucket)
    settings = s3_settings(
        tmp_path,
        tiny_models,
        endpoint=endpoint,
        s3_bucket=library_bucket,
        import_buckets=[bucket],
    )

    def run_import(path: str) -> dict[str, Any]:
        job = client.post("/api/v1/imports", json={"path": path})
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 60
        while (state := client.get(f"/api/v1/jobs/{job.json()['id']}").json())["state"] != "done":
            assert state["state"] != "failed", state
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert state["kind"] == "import_folder"
        assert state["params"]["path"] == f"s3://{bucket}/nature/"
        result: dict[str, Any] = state["result"]
        return result

    with TestClient(create_app(settings)) as client:
        first = run_import(f"s3://{bucket}/nature")  # a folder: not nature-old/
        assert (first["created"], first["existing"]) == (3, 0)
        assert [s["path"] for s in first["skipped"]] == ["nature/notes.txt"]
        wait_processed(client, 3)
        assets = by_uri(client)
        assert {uri: a["folder"] for uri, a in assets.items()} == {
            f"s3://{bucket}/nature/sunset1.jpg": "nature",
            f"s3://{bucket}/nature/mountain_view.jpg": "nature",
            f"s3://{bucket}/nature/birds/heron.png": "nature/birds",
        }
        stored = bucket_keys(s3, library_bucket)
        assert len(stored) == 6
        assert all(k.startswith(("thumbnails/", "previews/")) for k in stored), stored

        hits = client.post(
            "/api/demo_backend_v2/image_search/search",
            json={"query": "sunset over mountains", "k": 5, "folder": "nature"},
        ).json()
        assert {h["s3_path"] for h in hits} == {
            f"s3://{bucket}/nature/sunset1.jpg",
            f"s3://{bucket}/nature/mountain_view.jpg",
            f"s3://{bucket}/nature/birds/heron.png",
        }
        for hit in hits:
            key = split_object_uri(hit["s3_path"])[1]
            assert client.get(hit["image_url"]).content == SEED_002_IMAGES[key]
        listed = {i["storage_path"] for i in client.get("/images").json()}
        assert listed == set(assets)

        again = run_import(f"s3://{bucket}/nature/")
        assert (again["created"], again["existing"]) == (0, 3)

        sunset = assets[f"s3://{bucket}/nature/sunset1.jpg"]
        assert client.delete(f"/api/v1/assets/{sunset['id']}").status_code == 204
        assert bucket_keys(s3, bucket) == before
        assert len(bucket_keys(s3, library_bucket)) == 4

        for path, detail in [
            ("s3://another-bucket/nature", "not in VIEWFINDER_IMPORT_BUCKETS"),
            (f"s3://{library_bucket}/", "not in VIEWFINDER_IMPORT_BUCKETS"),
            ("s3:///nature", "does not name a bucket"),
        ]:
            refused = client.post("/api/v1/imports", json={"path": path})
            assert refused.status_code == 400, path
            assert detail in refused.json()["detail"]


def test_cli_indexes_a_bucket_in_place_and_a_rerun_adds_nothing(
    endpoint: str, seed_002_bucket: str, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    from viewfinder.cli.main import app
    from viewfinder.container import Services

    env = serve_env(
        tmp_path,
        tiny_models,
        VIEWFINDER_S3_ENDPOINT_URL=endpoint,
        VIEWFINDER_S3_REGION=REGION,
        VIEWFINDER_FACES="false",
        VIEWFINDER_INDEX_SAVE_INTERVAL_S="0",
    )
    runner = CliRunner()
    first = runner.invoke(app, ["index", f"s3://{seed_002_bucket}/city"], env=env)
    assert first.exit_code == 0, first.output
    assert "2 new, 0 already stored, 0 skipped" in first.output
    assert "2 images indexed" in first.output
    again = runner.invoke(app, ["index", f"s3://{seed_002_bucket}/city"], env=env)
    assert again.exit_code == 0, again.output
    assert "0 new, 2 already stored, 0 skipped" in again.output

    settings = make_settings(tmp_path, tiny_models, s3_endpoint_url=endpoint, s3_region=REGION)
    assert settings.data_dir == Path(env["VIEWFINDER_DATA_DIR"])
    services = Services.build(settings, with_library=True)
    try:
        from viewfinder.db import assets as assets_repo

        with services.require_library().sessions() as session:
            assets = assets_repo.list_assets(session)
    finally:
        services.close()
    assert {(a.original_uri, a.folder) for a in assets} == {
        (f"s3://{seed_002_bucket}/city/street.jpg", "city"),
        (f"s3://{seed_002_bucket}/city/night/neon.jpg", "city/night"),
    }
    assert not (settings.blob_root / "originals").exists()

    bad = runner.invoke(app, ["index", "s3://"], env=env)
    assert bad.exit_code == 1
    assert "does not name a bucket" in bad.output
    # A local folder is still a local folder, beside the bucket's assets.
    (tmp_path / "local" / "trips").mkdir(parents=True)
    (tmp_path / "local" / "trips" / "beach.jpg").write_bytes(jpeg((200, 200, 40), seed=7))
    local = runner.invoke(app, ["index", str(tmp_path / "local"), "--no-wait"], env=env)
    assert local.exit_code == 0, local.output
    assert "1 new, 0 already stored, 0 skipped" in local.output
    assert (settings.blob_root / "originals").is_dir()


def test_duplicates_copies_limits_and_changed_objects(
    in_place: tuple[TestClient, Any, Recording], s3: Any, bucket: str
) -> None:
    client, lib, recording = in_place
    one = jpeg((10, 150, 10), seed=11)
    big = jpeg((150, 10, 10), size=(600, 400), seed=12)
    fill(
        s3,
        bucket,
        {
            "a/one.jpg": one,
            "a/broken.jpg": b"\xff\xd8 not really a jpeg",
            "a-old/x.jpg": jpeg((1, 2, 3), seed=13),
            "b/same-bytes.JPG": one,
            "c/copied.jpeg": jpeg((10, 10, 150), seed=14),
        },
    )
    s3.put_object(Bucket=bucket, Key="a/big.jpg", Body=big)
    # As if VIEWFINDER_MAX_DOWNLOAD_BYTES were just below big.jpg's size.
    limited = BucketImporter(lib.sessions, lib.ingest, lib.buckets.objects, len(big) - 1)
    report = limited.ingest(S3Location(bucket, "a/"))
    assert (report.created, report.existing) == (1, 0)
    reasons = dict(report.skipped)
    assert set(reasons) == {"a/big.jpg", "a/broken.jpg"}
    assert "byte limit" in reasons["a/big.jpg"]
    assert "image" in reasons["a/broken.jpg"]
    assert recording.calls.count("get_object") == 2  # one.jpg and broken.jpg; big.jpg never

    # The same bytes under another key are the asset already known.
    same = lib.buckets.ingest(parse_s3_url(f"s3://{bucket}/b"))
    assert (same.created, same.existing) == (0, 1)
    (asset,) = by_uri(client).values()
    assert (asset["original_uri"], asset["folder"]) == (f"s3://{bucket}/a/one.jpg", "a")

    # --copy stores the original like an upload and remembers the object it came from.
    copied = lib.buckets.ingest(parse_s3_url(f"s3://{bucket}/c"), "imported", copy=True)
    assert copied.created == 1
    recording.calls.clear()
    assert lib.buckets.ingest(parse_s3_url(f"s3://{bucket}/c"), copy=True).existing == 1
    assert "get_object" not in recording.calls
    with lib.sessions() as session:
        from viewfinder.db import assets as assets_repo

        stored = assets_repo.list_assets(session, folder="imported/c")
    assert [(a.original_uri, a.source_url) for a in stored] == [
        (None, f"s3://{bucket}/c/copied.jpeg")
    ]
    assert len(list((lib.settings.blob_root / "originals").rglob("*"))) == 2  # dir + file

    # An object overwritten or deleted since it was indexed is an error that says so.
    sha = hashlib.sha256(one).hexdigest()
    uri = f"s3://{bucket}/a/one.jpg"
    s3.put_object(Bucket=bucket, Key="a/one.jpg", Body=jpeg((0, 0, 0), seed=15))
    with pytest.raises(ConflictError, match="changed since it was indexed"):
        lib.originals.read(sha, uri)
    assert client.get(asset["file_url"]).status_code == 409
    s3.delete_object(Bucket=bucket, Key="a/one.jpg")
    with pytest.raises(NotFoundError):
        lib.originals.read(sha, uri)
    assert client.get(asset["file_url"]).status_code == 404


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://image2search", "image2search", ""),
        ("s3://image2search/", "image2search", ""),
        ("s3://image2search/nature", "image2search", "nature/"),
        ("s3://image2search//nature/birds/", "image2search", "nature/birds/"),
    ],
)
def test_s3_urls_name_a_bucket_and_a_folder(url: str, bucket: str, prefix: str) -> None:
    location = parse_s3_url(url)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.url == f"s3://{bucket}/{prefix}"


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "s3://a b/x", "https://bucket/x", "/data"])
def test_bad_s3_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_s3_url(url)


def test_folders_are_the_keys_directories() -> None:
    assert folder_of("nature/sunset1.jpg") == "nature"
    assert folder_of("nature/birds/heron.png") == "nature/birds"
    assert folder_of("cover.jpg") == ""
    assert folder_of("nature//x.jpg", "imported") == "imported/nature"
    with pytest.raises(InvalidInputError):
        folder_of("../x.jpg")
    assert split_object_uri("s3://b1/dir//odd key.jpg") == ("b1", "dir//odd key.jpg")
