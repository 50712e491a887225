"""Search order and people filters through HTTP on SQLite and PostgreSQL: ``sort`` newest /
oldest orders the best hits by relevance (all of them here) by capture date, else upload date,
then id, and pages that list; ``min_score`` cuts before the date order and says when nothing
passed; ``person_ids`` / ``any_person_ids`` / ``exclude_person_ids`` / ``only_people`` select
by the faces stored for each image, in both searches; impossible combinations are 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings
from tests.db_fixtures import face_row
from tests.test_library_ui_api import Served, Uploaded, jpeg, upload
from viewfinder.api.app import create_app
from viewfinder.container import Services


@pytest.fixture
def served(tmp_path: Path, tiny_models: dict[str, Path], database_url: str) -> Iterator[Served]:
    """The app with no worker threads on each backend: the tests embed when they choose."""
    settings = make_settings(
        tmp_path, tiny_models, worker_threads=0, faces_enabled=False, database_url=database_url
    )
    services = Services.build(settings, with_library=True)
    try:
        with TestClient(create_app(settings, services)) as client:
            yield Served(client, services)
    finally:
        services.close()


def post(client: TestClient, **body: Any) -> Any:
    return client.post("/api/v1/search", json={"query": "a photo", "k": 50, **body})


def search(client: TestClient, **body: Any) -> dict[str, Any]:
    response = post(client, **body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def by_image(client: TestClient, **form: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/search/image",
        files={"file": ("q.jpg", jpeg((120, 60, 30)))},
        data={"k": 50, **form},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ids(result: dict[str, Any]) -> list[int]:
    return [h["asset"]["id"] for h in result["hits"]]


def newest_first(assets: list[Uploaded]) -> list[int]:
    """The timeline's newest order: capture date, else upload date, then id, all descending."""
    return [a.id for a in sorted(assets, key=lambda a: (a.taken, a.id), reverse=True)]


# --- order and cut-off -------------------------------------------------------------------------


@pytest.fixture
def dated(served: Served) -> list[Uploaded]:
    """Seven embedded images uploaded out of date order: two taken at the same second (a tie
    the id breaks), two without EXIF dates (their upload time stands in, after every EXIF date)."""
    shots = [
        ((250, 0, 0), "2019:07:01 12:00:00"),
        ((0, 250, 0), None),
        ((0, 0, 250), "2023:03:05 08:00:00"),
        ((250, 250, 0), "2015:01:01 00:00:00"),
        ((0, 250, 250), "2023:03:05 08:00:00"),
        ((250, 0, 250), None),
        ((90, 90, 90), "2021:12:24 18:00:00"),
    ]
    assets = [
        upload(served.client, f"{n}.jpg", jpeg(color, taken))
        for n, (color, taken) in enumerate(shots)
    ]
    served.embed_all()
    return assets


def test_date_sorts_order_the_hits_by_capture_then_upload_date_and_page_that_list(
    served: Served, dated: list[Uploaded]
) -> None:
    client = served.client
    relevance = search(client)
    assert (relevance["sort"], relevance["total"], relevance["candidates"]) == (
        "relevance",
        None,
        None,
    )
    scores = [h["score"] for h in relevance["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert len(scores) == 7

    newest = search(client, sort="newest")
    expected = newest_first(dated)
    assert ids(newest) == expected
    assert (newest["sort"], newest["total"], newest["candidates"]) == ("newest", 7, 100)
    tie = sorted(a.id for a in dated if a.captured_at and a.captured_at.year == 2023)
    assert expected.index(tie[1]) == expected.index(tie[0]) - 1  # same second: higher id first
    assert dated[1].id in expected[:2]
    assert dated[5].id in expected[:2]
    oldest = search(client, sort="oldest")
    assert ids(oldest) == expected[::-1]
    assert ids(by_image(client, sort="oldest")) == expected[::-1]

    # Pages of the date order are slices of one list: every hit once, in the same order.
    pages = [search(client, sort="newest", k=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [i for page in pages for i in ids(page)] == expected
    assert {p["total"] for p in pages} == {7}
    past = search(client, sort="newest", k=2, offset=8)
    assert (past["hits"], past["reason"], past["total"]) == ([], "past_the_end", 7)

    # candidates bounds the set: the three best by relevance, then in date order.
    best3 = set(ids(relevance)[:3])
    top = search(client, sort="newest", candidates=3)
    assert ids(top) == [i for i in expected if i in best3]
    assert (top["total"], top["candidates"]) == (3, 3)


def test_min_score_cuts_before_the_date_order_and_says_when_nothing_passed(
    served: Served, dated: list[Uploaded]
) -> None:
    client = served.client
    similarity = {h["asset"]["id"]: h["similarity"] for h in search(client)["hits"]}
    cut = sorted(similarity.values(), reverse=True)[3]  # the fourth best similarity
    passing = {i for i, s in similarity.items() if s >= cut}
    assert 4 <= len(passing) < 7
    cut_off = search(client, sort="oldest", min_score=cut)
    assert ids(cut_off) == [i for i in newest_first(dated)[::-1] if i in passing]
    # With min_score the set is every hit reaching it, up to 1000.
    assert (cut_off["total"], cut_off["candidates"]) == (len(passing), 1000)
    form = by_image(client, sort="newest", min_score=-1)
    assert ids(form) == newest_first(dated)

    for sort in ("newest", "relevance"):
        nothing = search(client, sort=sort, min_score=1.0)
        assert nothing["hits"] == []
        assert nothing["reason"] == "below_min_score"
        assert nothing["message"].startswith("no image reaches min_score 1 (the best similarity")
        assert nothing["total"] == (0 if sort == "newest" else None)


def test_bad_sorts_are_refused(served: Served) -> None:
    client = served.client
    cases: list[tuple[dict[str, Any], int]] = [
        ({"sort": "random"}, 422),
        ({"sort": "newest", "candidates": 0}, 422),
        ({"sort": "newest", "candidates": 1001}, 422),
        ({"candidates": 10}, 400),  # candidates bounds a date sort only
    ]
    for body, status in cases:
        response = post(client, **body)
        assert response.status_code == status, (body, response.text)
    refused = client.post(
        "/api/v1/search/image",
        files={"file": ("q.jpg", jpeg((1, 2, 3)))},
        data={"sort": "sideways"},
    )
    assert refused.status_code == 422


# --- people ------------------------------------------------------------------------------------


def test_people_filters_select_by_the_faces_of_each_image(served: Served) -> None:
    client = served.client
    assets = [upload(client, f"{n}.jpg", jpeg((30 * n, 200 - 20 * n, 90))).id for n in range(7)]
    served.embed_all()
    person = {
        name: client.post("/api/v1/persons", json={"name": name}).json()["id"]
        for name in ("Ann", "Bob", "Cy")
    }
    ann, bob, cy = person["Ann"], person["Bob"], person["Cy"]
    # (asset, person or None, clusterable): a0 Ann; a1 Ann and Bob; a2 Ann and someone not
    # named yet; a3 Ann and a face too small to recognise; a4 Bob; a5 Ann and Cy, named by hand
    # on a face too small to cluster; a6 no face.
    faces = [
        (0, ann, True),
        (1, ann, True),
        (1, bob, True),
        (2, ann, True),
        (2, None, True),
        (3, ann, True),
        (3, None, False),
        (4, bob, True),
        (5, ann, True),
        (5, cy, False),
    ]
    with served.library.sessions.begin() as session:
        for n, person_id, clusterable in faces:
            face = face_row(assets[n], person_id)
            face.clusterable = clusterable
            session.add(face)

    def found(**filters: Any) -> set[int]:
        by_text = search(client, **filters)
        assert set(ids(by_image(client, **filters))) == set(ids(by_text)), filters
        return {assets.index(i) for i in ids(by_text)}

    assert found() == set(range(7))
    assert found(person_ids=[ann]) == {0, 1, 2, 3, 5}
    assert found(person_ids=[ann, bob]) == {1}
    assert found(any_person_ids=[bob, cy]) == {1, 4, 5}
    assert found(exclude_person_ids=[bob]) == {0, 2, 3, 5, 6}
    assert found(exclude_person_ids=[bob, cy]) == {0, 2, 3, 6}
    assert found(person_ids=[ann], any_person_ids=[bob, cy]) == {1, 5}
    assert found(person_ids=[ann], exclude_person_ids=[cy]) == {0, 1, 2, 3}
    # Only these people: a stranger's recognisable face, or a face named as someone else (even
    # one too small to cluster) rules an image out; an unrecognisable unnamed face does not.
    assert found(person_ids=[ann], only_people=True) == {0, 3}
    assert found(any_person_ids=[ann, bob], only_people=True) == {0, 1, 3, 4}
    assert found(person_ids=[ann], any_person_ids=[cy], only_people=True) == {5}

    # With a collection and a date sort: every filter applies, the order is the date order.
    collection = client.post("/api/v1/collections", json={"name": "picked"}).json()["id"]
    members = [assets[0], assets[1], assets[4]]
    added = client.post(f"/api/v1/collections/{collection}/assets", json={"asset_ids": members})
    assert added.status_code == 200, added.text
    assert found(collection_id=collection, any_person_ids=[ann]) == {0, 1}
    dated = search(client, collection_id=collection, exclude_person_ids=[ann], sort="oldest")
    assert ids(dated) == [assets[4]]
    assert dated["total"] == 1

    # A person no face is named as (or no such person): as person_ids has always done, the
    # filter applies and matches nothing; excluding them excludes nothing.
    for filters in (
        {"person_ids": [cy], "only_people": True},  # a5 shows Ann too
        {"person_ids": [cy + 1000]},
        {"any_person_ids": [cy + 1000]},
    ):
        empty = search(client, **filters)
        assert (empty["hits"], empty["reason"]) == ([], "no_match_filters"), filters
    assert found(exclude_person_ids=[cy + 1000]) == set(range(7))


def test_impossible_people_filters_are_refused(served: Served) -> None:
    client = served.client
    upload(client, "a.jpg", jpeg((250, 0, 0)))
    served.embed_all()
    refused: list[tuple[dict[str, Any], int, str]] = [
        ({"only_people": True}, 400, "only_people needs the people it means"),
        ({"only_people": True, "exclude_person_ids": [1]}, 400, "only_people needs"),
        ({"person_ids": [1, 2], "exclude_person_ids": [2]}, 400, "person 2 is both wanted"),
        ({"any_person_ids": [3], "exclude_person_ids": [3]}, 400, "person 3 is both wanted"),
        ({"any_person_ids": list(range(1, 22))}, 422, "at most 20"),
        ({"exclude_person_ids": list(range(1, 22))}, 422, "at most 20"),
        ({"exclude_person_ids": [2**63]}, 422, "less than or equal to"),
        ({"any_person_ids": ["x"]}, 422, "valid integer"),
    ]
    for body, status, words in refused:
        response = post(client, **body)
        assert response.status_code == status, (body, response.text)
        assert words in response.text, (body, response.text)
    forms: list[tuple[dict[str, Any], int]] = [
        ({"only_people": "true"}, 400),
        ({"person_ids": [4], "exclude_person_ids": [4]}, 400),
        ({"exclude_person_ids": list(range(1, 22))}, 422),
        ({"any_person_ids": list(range(1, 22))}, 422),
    ]
    for form, status in forms:
        response = client.post(
            "/api/v1/search/image", files={"file": ("q.jpg", jpeg((1, 2, 3)))}, data=form
        )
        assert response.status_code == status, (form, response.text)


def test_a_search_by_filters_alone_lists_what_passes_them_by_date(
    served: Served, dated: list[Uploaded]
) -> None:
    """No query and no image: the images the filters allow, newest first (relevance has no
    meaning here, so the answer says which order it used)."""

    def alone(**body: Any) -> Any:
        return served.client.post("/api/v1/search", json={"k": 50, **body})

    everyone = alone(exclude_person_ids=[10_000])  # a filter every image passes
    assert everyone.status_code == 200, everyone.text
    assert ids(everyone.json()) == newest_first(dated)
    assert everyone.json()["sort"] == "newest"
    oldest = alone(exclude_person_ids=[10_000], sort="oldest").json()
    assert (ids(oldest), oldest["sort"]) == (newest_first(dated)[::-1], "oldest")
    page = alone(exclude_person_ids=[10_000], k=2, offset=2).json()
    assert ids(page) == newest_first(dated)[2:4]
    for bounded in ({"min_score": 0.2}, {"candidates": 10}):
        refused = alone(exclude_person_ids=[10_000], **bounded)
        assert refused.status_code == 400, refused.text
        assert "bound the similarity" in refused.json()["detail"]
    # A filter on what a switched-off kind would produce says how to switch it on.
    unread = alone(text="harbour").json()
    assert (unread["hits"], unread["reason"]) == ([], "no_match_filters")
    assert "VIEWFINDER_OCR=1" in unread["message"], unread["message"]
    nobody = alone(person_ids=[10_000]).json()
    assert (nobody["hits"], nobody["reason"]) == ([], "no_match_filters")
    assert "VIEWFINDER" not in nobody["message"]
