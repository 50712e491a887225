"""The library routes a web UI needs, through HTTP on SQLite and PostgreSQL: the timeline order
(newest / oldest by capture date, else upload date, then id) and its scrubber buckets, the folder
tree with its counts (case-sensitive), the collection filter of both searches, the reason an
empty search gives, and what a photo viewer shows of one asset."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from tests.conftest import make_settings
from tests.db_fixtures import _reset_postgres, face_row
from viewfinder.api.app import create_app
from viewfinder.container import Services
from viewfinder.library.library import Library

EXIF_IFD = 0x8769


def jpeg(color: tuple[int, int, int], taken: str | None = None, **tags: Any) -> bytes:
    """A small JPEG; ``taken`` ("2021:05:01 10:00:00") becomes EXIF DateTimeOriginal."""
    exif = Image.Exif()
    sub = exif.get_ifd(EXIF_IFD)
    if taken is not None:
        sub[36867] = taken
    for tag, value in tags.items():
        if tag == "make":
            exif[0x010F] = value
        elif tag == "model":
            exif[0x0110] = value
        elif tag == "lens":
            sub[0xA434] = value
        elif tag == "exposure":
            sub[0x829A] = value
        elif tag == "f_number":
            sub[0x829D] = value
        elif tag == "iso":
            sub[0x8827] = value
        elif tag == "focal_length":
            sub[0x920A] = value
    out = io.BytesIO()
    Image.new("RGB", (48, 32), color).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


@dataclass
class Uploaded:
    id: int
    folder: str
    captured_at: datetime | None
    created_at: datetime

    @property
    def taken(self) -> datetime:
        return self.captured_at or self.created_at


def upload(client: TestClient, name: str, data: bytes, folder: str = "") -> Uploaded:
    response = client.post(
        "/api/v1/assets", files=[("files", (name, data))], data={"folder": folder}
    )
    assert response.status_code == 201, response.text
    asset = response.json()[0]["asset"]
    captured = asset["captured_at"]
    return Uploaded(
        asset["id"],
        asset["folder"],
        datetime.fromisoformat(captured) if captured else None,
        datetime.fromisoformat(asset["created_at"]),
    )


@pytest.fixture
def client(tmp_path: Path, tiny_models: dict[str, Path], database_url: str) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path, tiny_models, database_url=database_url, worker_threads=0, faces_enabled=False
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def library(client: TestClient) -> list[Uploaded]:
    """Six images in a case-sensitive folder tree, uploaded out of date order; two without EXIF
    dates (their upload time stands in)."""
    return [
        upload(client, "a.jpg", jpeg((200, 0, 0), "2023:01:15 09:00:00"), "Trips/Rome"),
        upload(client, "b.jpg", jpeg((0, 200, 0)), "trips"),
        upload(client, "c.jpg", jpeg((0, 0, 200), "2021:05:01 10:00:00"), "Trips"),
        upload(client, "d.jpg", jpeg((200, 200, 0), "2023:01:20 18:30:00"), "Trips/Rome/day2"),
        upload(client, "e.jpg", jpeg((0, 200, 200)), ""),
        upload(client, "f.jpg", jpeg((200, 0, 200), "2023:01:15 09:00:00"), "Trips/Rome"),
    ]


def ids(client: TestClient, **params: Any) -> list[int]:
    response = client.get("/api/v1/assets", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["items"]]


# --- timeline order ----------------------------------------------------------------------------


def test_sort_newest_and_oldest_by_capture_then_upload_date_then_id(
    client: TestClient, library: list[Uploaded]
) -> None:
    newest = sorted(library, key=lambda u: (u.taken, u.id), reverse=True)
    assert ids(client, sort="newest") == [u.id for u in newest]
    assert ids(client, sort="oldest") == [u.id for u in reversed(newest)]
    # Two photos taken at the same second: id breaks the tie, the same way in both orders.
    a, f = library[0].id, library[5].id
    assert ids(client, sort="oldest").index(a) < ids(client, sort="oldest").index(f)
    assert ids(client, sort="newest").index(f) < ids(client, sort="newest").index(a)
    # The default is still the order they were added in.
    assert ids(client) == sorted(u.id for u in library)
    assert client.get("/api/v1/assets").json()["sort"] == "id"


def test_pages_of_a_sorted_listing_add_up_to_the_whole(
    client: TestClient, library: list[Uploaded]
) -> None:
    whole = ids(client, sort="newest")
    pages = [ids(client, sort="newest", limit=2, offset=o) for o in range(0, len(whole), 2)]
    assert [i for page in pages for i in page] == whole
    # Filters keep the order.
    rome = [i for i in whole if i in {library[0].id, library[3].id, library[5].id}]
    assert ids(client, sort="newest", folder="Trips/Rome") == rome


def test_a_bad_sort_is_a_clear_4xx(client: TestClient) -> None:
    response = client.get("/api/v1/assets", params={"sort": "random"})
    assert response.status_code == 422
    assert "newest" in response.text
    assert client.get("/api/v1/timeline", params={"sort": "id"}).status_code == 422
    assert client.get("/api/v1/timeline", params={"granularity": "year"}).status_code == 422


def test_timeline_buckets_follow_the_sort_and_give_offsets(
    client: TestClient, library: list[Uploaded]
) -> None:
    for sort, granularity, fmt in (
        ("newest", "month", "%Y-%m"),
        ("oldest", "month", "%Y-%m"),
        ("newest", "day", "%Y-%m-%d"),
    ):
        response = client.get("/api/v1/timeline", params={"sort": sort, "granularity": granularity})
        assert response.status_code == 200, response.text
        body = response.json()
        order = ids(client, sort=sort)
        by_id = {u.id: u for u in library}
        expected: list[dict[str, Any]] = []
        for offset, asset_id in enumerate(order):
            key = by_id[asset_id].taken.astimezone(UTC).strftime(fmt)
            if not expected or expected[-1]["key"] != key:
                expected.append({"key": key, "count": 0, "offset": offset})
            expected[-1]["count"] += 1
        assert body["buckets"] == expected, (sort, granularity)
        assert body["total"] == len(library)
        assert body["granularity"] == granularity
    months = [b["key"] for b in client.get("/api/v1/timeline").json()["buckets"]]
    assert "2023-01" in months
    assert "2021-05" in months


def test_timeline_honours_the_folder_filter(client: TestClient, library: list[Uploaded]) -> None:
    trips = client.get("/api/v1/timeline", params={"folder": "Trips"}).json()
    assert [(b["key"], b["count"]) for b in trips["buckets"]] == [("2023-01", 3), ("2021-05", 1)]
    assert trips["total"] == 4
    only = client.get("/api/v1/timeline", params={"folder": "Trips", "include_subfolders": False})
    assert [(b["key"], b["count"]) for b in only.json()["buckets"]] == [("2021-05", 1)]
    # Offsets point into the same filtered listing.
    listing = ids(client, sort="newest", folder="Trips")
    second = trips["buckets"][1]
    assert listing[second["offset"]] == library[2].id


# --- folders -----------------------------------------------------------------------------------


def test_folder_tree_counts_own_and_below_case_sensitively(
    client: TestClient, library: list[Uploaded]
) -> None:
    response = client.get("/api/v1/folders/tree")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["case_sensitive"] is True

    def shape(node: dict[str, Any]) -> tuple[Any, ...]:
        children = tuple(shape(c) for c in node["children"])
        return (node["path"], node["name"], node["count"], node["total"], children)

    assert shape(body["root"]) == (
        "",
        "",
        1,
        6,
        (
            (
                "Trips",
                "Trips",
                1,
                4,
                (("Trips/Rome", "Rome", 2, 3, (("Trips/Rome/day2", "day2", 1, 1, ()),)),),
            ),
            ("trips", "trips", 1, 1, ()),
        ),
    )
    # A node's path is the folder filter, and its total is what that filter lists.
    for path, total in (("Trips", 4), ("trips", 1), ("Trips/Rome", 3), ("", 6)):
        assert client.get("/api/v1/assets", params={"folder": path}).json()["total"] == total


def test_folder_tree_of_an_empty_library(client: TestClient) -> None:
    body = client.get("/api/v1/folders/tree").json()
    assert body["root"] == {"name": "", "path": "", "count": 0, "total": 0, "children": []}


# --- search filters and empty states -----------------------------------------------------------


@dataclass
class Served:
    client: TestClient
    services: Services

    @property
    def library(self) -> Library:
        return self.services.require_library()

    def embed_all(self) -> None:
        """Embed every pending image now, on this thread (the app runs no worker threads)."""
        assert self.library.worker.drain(60)


@pytest.fixture(params=["sqlite", "postgresql", "pgvector"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, tiny_models: dict[str, Path]
) -> Iterator[Served]:
    """The app on each backend and on the pgvector store, with no worker threads: the tests
    decide what is embedded when."""
    extra: dict[str, Any]
    if request.param == "pgvector":
        url = request.getfixturevalue("pgvector_database_url")
        extra = {"database_url": url, "vector_store": "pgvector"}
    elif request.param == "postgresql":
        url, maintenance = request.getfixturevalue("postgres_test_database")
        _reset_postgres(url, maintenance)
        extra = {"database_url": url}
    else:
        path = tmp_path / "db" / "viewfinder.db"
        path.parent.mkdir()
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        extra = {"database_url": f"sqlite:///{path}"}
    settings = make_settings(tmp_path, tiny_models, worker_threads=0, faces_enabled=False, **extra)
    services = Services.build(settings, with_library=True)
    try:
        with TestClient(create_app(settings, services)) as client:
            yield Served(client, services)
    finally:
        services.close()


def search(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/search", json={"query": "a photo", "k": 50, **body})
    assert response.status_code == 200, response.text
    return response.json()


def search_image(client: TestClient, data: bytes, **form: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/search/image", files={"file": ("q.jpg", data)}, data={"k": 50, **form}
    )
    assert response.status_code == 200, response.text
    return response.json()


def hit_ids(result: dict[str, Any]) -> set[int]:
    return {h["asset"]["id"] for h in result["hits"]}


def test_collection_filter_on_text_and_image_search(served: Served) -> None:
    client = served.client
    colors = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250)]
    assets = [upload(client, f"{i}.jpg", jpeg(c)) for i, c in enumerate(colors)]
    served.embed_all()
    collection = client.post("/api/v1/collections", json={"name": "picked"}).json()
    members = {assets[1].id, assets[3].id}
    added = client.post(
        f"/api/v1/collections/{collection['id']}/assets", json={"asset_ids": sorted(members)}
    )
    assert added.status_code == 200, added.text

    assert hit_ids(search(client)) == {a.id for a in assets}
    filtered = search(client, collection_id=collection["id"])
    assert hit_ids(filtered) == members
    assert filtered["reason"] is None
    by_image = search_image(client, jpeg((250, 0, 0)), collection_id=collection["id"])
    assert hit_ids(by_image) == members
    assert hit_ids(search_image(client, jpeg((250, 0, 0)))) == {a.id for a in assets}
    # With a folder too: both filters apply.
    assert search(client, collection_id=collection["id"], folder="elsewhere")["hits"] == []

    empty = client.post("/api/v1/collections", json={"name": "empty"}).json()
    nothing = search(client, collection_id=empty["id"])
    assert nothing["hits"] == []
    assert nothing["reason"] == "no_match_filters"
    missing = client.post("/api/v1/search", json={"query": "x", "collection_id": 999999})
    assert missing.status_code == 404
    assert "collection 999999 does not exist" in missing.json()["detail"]
    missing = client.post(
        "/api/v1/search/image",
        files={"file": ("q.jpg", jpeg((1, 2, 3)))},
        data={"collection_id": 999999},
    )
    assert missing.status_code == 404


def test_person_filter_on_the_image_search_form(served: Served) -> None:
    client = served.client
    upload(client, "a.jpg", jpeg((250, 0, 0)))
    served.embed_all()
    person = client.post("/api/v1/persons", json={"name": "Nobody Yet"})
    assert person.status_code == 201, person.text
    query = jpeg((240, 10, 10))
    assert len(search_image(client, query)["hits"]) == 1
    # A person no face is assigned to: the filter is applied, nothing matches, and it says so.
    only = search_image(client, query, person_ids=[person.json()["id"]])
    assert only["hits"] == []
    assert only["reason"] == "no_match_filters"
    too_many = client.post(
        "/api/v1/search/image",
        files={"file": ("q.jpg", query)},
        data={"person_ids": list(range(1, 22))},
    )
    assert too_many.status_code == 422


def test_empty_results_say_why(served: Served) -> None:
    client = served.client
    first = upload(client, "a.jpg", jpeg((250, 0, 0)), "trips")
    upload(client, "b.jpg", jpeg((0, 250, 0)), "trips")

    nothing = search(client)
    assert nothing["hits"] == []
    assert nothing["reason"] == "nothing_indexed"
    assert nothing["message"] == "no image is indexed yet; 2 waiting to be embedded"

    served.embed_all()
    assert len(search(client)["hits"]) == 2
    assert search(client)["reason"] is None
    upload(client, "c.jpg", jpeg((0, 0, 250)), "later")  # not embedded yet

    assert search(client, folder="nowhere")["reason"] == "no_match_filters"
    waiting = search(client, folder="later")
    assert waiting["reason"] == "filtered_not_indexed"
    assert waiting["message"] == "1 image matches the filters, none of them is indexed yet"

    strict = search(client, min_score=1.0)
    assert strict["hits"] == []
    assert strict["reason"] == "below_min_score"
    assert "the best similarity was" in strict["message"]
    assert strict["reason"] == search_image(client, jpeg((5, 5, 5)), min_score=1.0)["reason"]

    past = search(client, offset=10)
    assert past["hits"] == []
    assert past["reason"] == "past_the_end"

    # Similar to a stored image, when it is the only one in its folder: nothing else is there.
    alone = client.post(
        "/api/v1/search", json={"asset_id": first.id, "folder": "trips", "k": 5}
    ).json()
    assert len(alone["hits"]) == 1
    assert alone["reason"] is None


# --- a photo viewer's asset --------------------------------------------------------------------


def camera_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Fujifilm"
    exif[0x0110] = "X-T5"
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    sub = exif.get_ifd(EXIF_IFD)
    sub[36867] = "2024:07:14 19:05:33"
    sub[36881] = "+02:00"
    sub[0x829A] = IFDRational(1, 250)
    sub[0x829D] = IFDRational(28, 10)
    sub[0x8827] = 400
    sub[0x920A] = IFDRational(35, 1)
    sub[0xA434] = "XF35mmF1.4 R"
    sub[0x9209] = 16  # flash did not fire
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (IFDRational(48), IFDRational(51), IFDRational(30))
    gps[3] = "W"
    gps[4] = (IFDRational(2), IFDRational(21), IFDRational(0))
    out = io.BytesIO()
    Image.new("RGB", (60, 40), (90, 120, 150)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_metadata_gives_what_the_camera_wrote(client: TestClient) -> None:
    asset = upload(client, "x.jpg", camera_jpeg(), "holiday")
    response = client.get(f"/api/v1/assets/{asset.id}/metadata")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["asset"]["id"] == asset.id
    assert body["asset"]["folder"] == "holiday"
    camera = body["camera"]
    assert datetime.fromisoformat(camera["captured_at"]) == datetime.fromisoformat(
        "2024-07-14T19:05:33+02:00"
    )
    assert datetime.fromisoformat(body["asset"]["captured_at"]) == datetime.fromisoformat(
        camera["captured_at"]
    )
    assert camera == {
        "format": "JPEG",
        "captured_at": camera["captured_at"],
        "camera_make": "Fujifilm",
        "camera_model": "X-T5",
        "lens": "XF35mmF1.4 R",
        "exposure_time": "1/250",
        "f_number": 2.8,
        "iso": 400,
        "focal_length_mm": 35.0,
        "focal_length_35mm": None,
        "flash_fired": False,
        "orientation": 6,
        "software": None,
        "latitude": 48.858333,
        "longitude": -2.35,
    }


def test_metadata_of_an_image_without_exif_and_of_no_asset(client: TestClient) -> None:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(out, format="PNG")
    asset = upload(client, "plain.png", out.getvalue())
    camera = client.get(f"/api/v1/assets/{asset.id}/metadata").json()["camera"]
    assert camera["format"] == "PNG"
    assert {k for k, v in camera.items() if v is not None} == {"format"}
    missing = client.get("/api/v1/assets/999999/metadata")
    assert missing.status_code == 404
    assert "asset 999999 does not exist" in missing.json()["detail"]


def test_an_assets_faces_carry_their_persons_name(served: Served) -> None:
    client = served.client
    asset = upload(client, "group.jpg", jpeg((100, 100, 100)))
    person = client.post("/api/v1/persons", json={"name": "Ada"}).json()
    with served.library.sessions.begin() as s:  # as the face indexer would store them
        s.add_all([face_row(asset.id, person["id"]), face_row(asset.id)])
    faces = client.get(f"/api/v1/assets/{asset.id}/faces").json()
    assert [(f["person_id"], f["person_name"]) for f in faces] == [
        (person["id"], "Ada"),
        (None, None),
    ]
    renamed = client.patch(f"/api/v1/persons/{person['id']}", json={"name": "Ada L."})
    assert renamed.status_code == 200, renamed.text
    faces = client.get(f"/api/v1/assets/{asset.id}/faces").json()
    assert faces[0]["person_name"] == "Ada L."
    assert client.get("/api/v1/assets/999999/faces").status_code == 404
