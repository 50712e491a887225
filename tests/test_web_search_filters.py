"""The search view's order, people, text and object filters, and the viewer's text and objects,
in a real browser (Playwright driving Debian's Chromium) against a real ``viewfinder serve``.

Six generated photos are uploaded and embedded by the server; their capture dates, named faces,
text (as OCR would have read it) and detected objects are then written straight into its
database, so every expected result is known exactly without the OCR and detector workers (those
have their own tests). Each step checks the request the page sent, the results it shows and
their order, and the address, which a fresh page opens to the same search."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import update

from tests.conftest import make_settings
from tests.web_fixtures import accessibility_violations, screenshot, ui_page, ui_server
from viewfinder.db.engine import make_engine, make_session_factory, sqlite_url_for
from viewfinder.db.models import Asset, AssetObject, Face, Person
from viewfinder.library.words import stored_words

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.slow

RESULTS = '[aria-label="Search results"] .tile'
HARBOUR_TEXT = "Welcome to the\nHARBOUR\nest. 1987"

# name: (colour, capture date, people on it, text read in it, objects (label, score, box))
PHOTOS: dict[str, tuple[str, str, list[str | None], str | None, list[tuple[str, float]]]] = {
    "harbour.png": ("#3a6ea5", "2010-01-01", ["Ann"], HARBOUR_TEXT, [("boat", 0.91)]),
    "park.png": ("#5a9e4b", "2015-06-01", ["Ann", "Bob"], "", [("dog", 0.93), ("person", 0.8)]),
    "cat.png": ("#c98b2b", "2020-03-03", ["Bob"], None, [("cat", 0.85)]),
    "street.png": (
        "#777777",
        "2012-12-12",
        ["Cy", "Ann"],
        "Harbour Street",
        [("car", 0.7), ("dog", 0.66)],
    ),
    "party.png": ("#a54a8c", "2018-08-08", ["Ann", None], None, []),
    "plain.png": ("#e0e0e0", "2016-01-01", [], None, []),
}
NEWEST = ["cat.png", "party.png", "plain.png", "park.png", "street.png", "harbour.png"]
SIZE = (320, 240)


def photo(colour: str, name: str) -> bytes:
    image = Image.new("RGB", SIZE, colour)
    ImageDraw.Draw(image).rectangle((40 + len(name) * 8, 40, 200, 180), fill="#ffffff")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def face_thumbnail() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (112, 112), "#d9a77c").save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[str]:
    root = tmp_path_factory.mktemp("web-search-filters")
    options: dict[str, Any] = {"faces_enabled": False, "objects_enabled": False}
    with ui_server(root, tiny_models, **options) as base:
        settings = make_settings(root, tiny_models, **options)
        seed(base, sqlite_url_for(settings.data_dir))
        yield base


def seed(base: str, database: str) -> None:
    """Upload the photos, wait until they are searchable, then write what the workers would
    have found into the server's database."""
    response = httpx.post(
        f"{base}/api/v1/assets",
        files=[("files", (name, photo(spec[0], name))) for name, spec in PHOTOS.items()],
        data={"folder": "seed"},
        timeout=120,
    )
    response.raise_for_status()
    ids = {item["asset"]["original_filename"]: item["asset"]["id"] for item in response.json()}
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/api/v1/status", timeout=30).json()["indexed"] < len(PHOTOS):
        assert time.monotonic() < deadline, "the photos were not embedded in time"
        time.sleep(0.3)
    engine = make_engine(database)
    try:
        with make_session_factory(engine).begin() as session:
            persons = {
                name: Person(name=name, name_key=name.casefold()) for name in ("Ann", "Bob", "Cy")
            }
            session.add_all(persons.values())
            session.flush()
            thumbnail = face_thumbnail()
            for name, (_, taken, people, text, objects) in PHOTOS.items():
                asset_id = ids[name]
                session.execute(
                    update(Asset)
                    .where(Asset.id == asset_id)
                    .values(
                        captured_at=datetime.fromisoformat(f"{taken}T12:00:00"),
                        text=text,
                        text_words=None if text is None else stored_words(text),
                    )
                )
                for i, person in enumerate(people):
                    x = 20 + 90 * i
                    session.add(
                        Face(
                            asset_id=asset_id,
                            x1=x,
                            y1=30,
                            x2=x + 60,
                            y2=100,
                            landmarks=[],
                            detection_score=0.99,
                            quality=1.0,
                            clusterable=True,
                            dim=1,
                            embedding=b"\0\0\0\0",
                            thumbnail=thumbnail,
                            person_id=persons[person].id if person else None,
                            person_source="manual" if person else None,
                        )
                    )
                for i, (label, score) in enumerate(objects):
                    session.add(
                        AssetObject(
                            asset_id=asset_id,
                            label=label,
                            score=score,
                            x1=10 + 100 * i,
                            y1=130,
                            x2=100 + 100 * i,
                            y2=230,
                        )
                    )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def ids(server: str) -> dict[str, int]:
    page = httpx.get(f"{server}/api/v1/assets?limit=100", timeout=30).json()
    return {a["original_filename"]: a["id"] for a in page["items"]}


@pytest.fixture(scope="module")
def person_ids(server: str) -> dict[str, int]:
    return {p["name"]: p["id"] for p in httpx.get(f"{server}/api/v1/persons", timeout=30).json()}


def shown(page: Page, ids: dict[str, int]) -> list[str]:
    """The names of the photos in the results, in their order."""
    names = {v: k for k, v in ids.items()}
    return [names[int(t.get_attribute("data-asset-id") or 0)] for t in page.locator(RESULTS).all()]


def searched(page: Page, action: Callable[[], object]) -> dict[str, Any]:
    """Run `action`, wait for the search it sends (not one sent before it: the page's first
    search may still be on its way) and its results on the page; the request body."""
    with page.expect_request(
        lambda r: r.url.endswith("/api/v1/search") and r.method == "POST"
    ) as info:
        action()
    request = info.value
    assert request.response() is not None
    body = request.post_data_json
    assert isinstance(body, dict)
    page.wait_for_function(
        "() => { const s = document.querySelector('.results-bar .note').textContent;"
        " return s && !s.includes('Searching'); }"
    )
    return body


def enter(field: Locator, text: str) -> Callable[[], None]:
    """An action: type `text` in `field` and press Enter."""

    def action() -> None:
        field.fill(text)
        field.press("Enter")

    return action


def query_of(page: Page) -> dict[str, str]:
    return dict(
        pair.split("=", 1)
        for pair in page.evaluate("location.search").lstrip("?").split("&")
        if pair
    )


def test_sort_newest_and_oldest_survive_reload(
    server: str, ids: dict[str, int], browser: Browser
) -> None:
    with ui_page(browser, server, "/search") as (page, errors):
        body = searched(page, enter(page.get_by_label("Describe a photo"), "a photo"))
        assert "sort" not in body  # relevance is the server's default
        assert sorted(shown(page, ids)) == sorted(PHOTOS)
        body = searched(page, lambda: page.get_by_label("Sort by").select_option("newest"))
        assert body["sort"] == "newest"
        assert shown(page, ids) == NEWEST
        assert query_of(page) == {"q": "a+photo", "sort": "newest"}
        assert "newest first" in page.locator(".results-bar .note").inner_text()
        body = searched(page, lambda: page.get_by_label("Sort by").select_option("oldest"))
        assert body["sort"] == "oldest"
        assert shown(page, ids) == NEWEST[::-1]
        assert accessibility_violations(page) == []

        searched(page, page.reload)
        assert page.get_by_label("Sort by").input_value() == "oldest"
        assert shown(page, ids) == NEWEST[::-1]
        assert errors == []


def test_people_with_all_any_without_and_only_them(
    server: str, ids: dict[str, int], person_ids: dict[str, int], browser: Browser
) -> None:
    ann, bob, cy = person_ids["Ann"], person_ids["Bob"], person_ids["Cy"]
    with ui_page(browser, server, "/search?q=people&sort=oldest") as (page, errors):
        with_set = page.locator("#search-with")
        without_set = page.locator("#search-without")
        with_set.get_by_label("Ann").wait_for()

        body = searched(page, lambda: with_set.get_by_label("Ann").check())
        assert body["person_ids"] == [ann]
        assert shown(page, ids) == ["harbour.png", "street.png", "park.png", "party.png"]
        body = searched(page, lambda: with_set.get_by_label("Bob").check())
        assert sorted(body["person_ids"]) == sorted([ann, bob])
        assert shown(page, ids) == ["park.png"]

        body = searched(page, lambda: page.get_by_label("Any of them").check())
        assert sorted(body["any_person_ids"]) == sorted([ann, bob])
        assert "person_ids" not in body
        assert shown(page, ids) == ["harbour.png", "street.png", "park.png", "party.png", "cat.png"]
        assert query_of(page)["match"] == "any"

        body = searched(page, lambda: without_set.get_by_label("Cy").check())
        assert body["exclude_person_ids"] == [cy]
        assert shown(page, ids) == ["harbour.png", "park.png", "party.png", "cat.png"]
        assert accessibility_violations(page) == []
        screenshot(page, "search-people-filters")

        # Ticking someone on one side unticks them on the other.
        body = searched(page, lambda: with_set.get_by_label("Cy").check())
        assert not without_set.get_by_label("Cy").is_checked()
        assert "exclude_person_ids" not in body

        # Only them: Ann alone (a named face of someone else, or an unnamed one, rules a
        # photo out).
        searched(page, lambda: with_set.get_by_label("Bob").uncheck())
        searched(page, lambda: with_set.get_by_label("Cy").uncheck())
        searched(page, lambda: page.get_by_label("All of them").check())
        body = searched(page, lambda: page.get_by_label("Only them").check())
        assert body["person_ids"] == [ann]
        assert body["only_people"] is True
        assert shown(page, ids) == ["harbour.png"]
        assert query_of(page) == {"q": "people", "people": str(ann), "only": "1", "sort": "oldest"}
        assert page.locator(".filter-count").inner_text().strip() == "(1 set)"

        # Un-ticking the last person turns "only them" off with it (it needs someone).
        body = searched(page, lambda: with_set.get_by_label("Ann").uncheck())
        assert "only_people" not in body
        assert page.get_by_label("Only them").is_disabled()
        assert not page.get_by_label("Only them").is_checked()
        assert len(shown(page, ids)) == len(PHOTOS)
        assert errors == []


def test_text_in_the_photo_alone_and_with_a_query(
    server: str, ids: dict[str, int], browser: Browser
) -> None:
    with ui_page(browser, server, "/search?q=signs&sort=newest") as (page, errors):
        page.locator(".results-bar .note", has_text="photos").wait_for()
        field = page.get_by_label("Text in the photo")
        body = searched(page, enter(field, "harbour"))
        assert body["text"] == "harbour"
        assert body["query"] == "signs"
        assert shown(page, ids) == ["street.png", "harbour.png"]
        body = searched(page, enter(field, "Harbour 1987"))
        assert shown(page, ids) == ["harbour.png"]
        assert query_of(page) == {"q": "signs", "text": "Harbour+1987", "sort": "newest"}

        # The words alone: an empty box searches the photos' text only.
        page.get_by_label("Describe a photo").fill("")
        body = searched(page, lambda: page.get_by_role("button", name="Search", exact=True).click())
        assert "query" not in body
        assert "asset_id" not in body
        assert body["text"] == "Harbour 1987"
        assert shown(page, ids) == ["harbour.png"]
        assert "Harbour 1987" in page.locator(".results-bar .note").inner_text()
        assert accessibility_violations(page) == []
        assert errors == []

    with ui_page(browser, server, "/search?text=harbour&sort=oldest") as (page, errors):
        page.locator(RESULTS).nth(1).wait_for()
        assert shown(page, ids) == ["harbour.png", "street.png"]
        assert page.get_by_label("Text in the photo").input_value() == "harbour"
        assert errors == []


def test_filters_alone_list_the_photos_that_pass_them_newest_first(
    server: str, ids: dict[str, int], person_ids: dict[str, int], browser: Browser
) -> None:
    ann = person_ids["Ann"]
    with ui_page(browser, server, "/search") as (page, errors):
        note = page.locator(".results-bar .note")
        note.filter(has_text="set filters").wait_for()
        objects = page.locator("#search-objects")
        order = page.get_by_label("Sort by")

        # An object alone, the box empty: every photo with a dog, newest first, nothing ranked.
        body = searched(page, lambda: objects.get_by_label("dog").check())
        assert body == {"k": 60, "offset": 0, "objects": ["dog"], "sort": "newest"}
        assert shown(page, ids) == ["park.png", "street.png"]
        assert note.inner_text() == "2 photos with dog, newest first."
        assert query_of(page) == {"objects": "dog"}
        assert order.input_value() == "newest"
        relevance = order.locator('option[value="relevance"]')
        assert relevance.is_disabled()
        hint = page.locator("#search-sort-hint")
        assert hint.inner_text() == "Relevance needs words or an image"
        assert order.get_attribute("aria-describedby") == "search-sort-hint"
        assert page.get_by_label("Minimum similarity").is_disabled()
        assert page.locator(f"{RESULTS} .score").count() == 0  # nothing is a better match
        assert accessibility_violations(page) == []
        screenshot(page, "search-filters-alone")

        body = searched(page, lambda: order.select_option("oldest"))
        assert body["sort"] == "oldest"
        assert "query" not in body
        assert shown(page, ids) == ["street.png", "park.png"]
        assert query_of(page) == {"objects": "dog", "sort": "oldest"}

        # A person alone, in the order chosen.
        objects.get_by_label("dog").uncheck()
        note.filter(has_text="set filters").wait_for()
        body = searched(page, lambda: page.locator("#search-with").get_by_label("Ann").check())
        assert body == {"k": 60, "offset": 0, "person_ids": [ann], "sort": "oldest"}
        assert shown(page, ids) == ["harbour.png", "street.png", "park.png", "party.png"]
        assert note.inner_text() == "4 photos passing the filters, oldest first."
        assert query_of(page) == {"people": str(ann), "sort": "oldest"}

        # Words rank again: a new address with relevance back; Back returns to the filters alone.
        body = searched(page, enter(page.get_by_label("Describe a photo"), "a photo"))
        assert body["query"] == "a photo"
        assert not relevance.is_disabled()
        assert hint.is_hidden()
        assert page.get_by_label("Minimum similarity").is_enabled()
        searched(page, page.go_back)
        assert query_of(page) == {"people": str(ann), "sort": "oldest"}
        assert page.get_by_label("Describe a photo").input_value() == ""
        assert shown(page, ids) == ["harbour.png", "street.png", "park.png", "party.png"]

        # An empty box submitted under a query lists what passes the filters (a new address).
        searched(page, enter(page.get_by_label("Describe a photo"), "a photo"))
        body = searched(page, enter(page.get_by_label("Describe a photo"), ""))
        assert "query" not in body
        assert query_of(page) == {"people": str(ann), "sort": "oldest"}
        assert errors == []

    # A shared address: the cut-off has nothing to bound (the server refuses it), so it is not
    # sent; absent sort is newest.
    with ui_page(browser, server, "/search") as (page, errors):
        body = searched(page, lambda: page.goto(f"{server}/search?people={ann}&min=0.5"))
        assert body == {"k": 60, "offset": 0, "person_ids": [ann], "sort": "newest"}
        assert shown(page, ids) == ["party.png", "park.png", "street.png", "harbour.png"]
        assert page.get_by_label("Sort by").input_value() == "newest"
        assert page.locator("#search-with").get_by_label("Ann").is_checked()
        assert errors == []


def test_objects_filter_and_the_servers_empty_message(
    server: str, ids: dict[str, int], browser: Browser
) -> None:
    with ui_page(browser, server, "/search?q=animals&sort=oldest") as (page, errors):
        objects = page.locator("#search-objects")
        # The library's labels, most frequent first, with how many photos have each.
        objects.get_by_label("dog (2)").wait_for()
        labels = [t.inner_text() for t in objects.locator("label").all()]
        assert labels[0] == "dog (2)"
        assert sorted(labels[1:]) == ["boat (1)", "car (1)", "cat (1)", "person (1)"]

        body = searched(page, lambda: objects.get_by_label("dog").check())
        assert body["objects"] == ["dog"]
        assert shown(page, ids) == ["street.png", "park.png"]
        body = searched(page, lambda: objects.get_by_label("car").check())
        assert sorted(body["objects"]) == ["car", "dog"]
        assert shown(page, ids) == ["street.png"]
        assert query_of(page)["objects"] in ("dog%2Ccar", "car%2Cdog")
        assert accessibility_violations(page) == []
        screenshot(page, "search-objects")

        # Nothing has a cat and the word "harbour": the server's sentence, and the way out.
        searched(page, lambda: objects.get_by_label("dog").uncheck())
        searched(page, lambda: objects.get_by_label("car").uncheck())
        searched(page, lambda: objects.get_by_label("cat").check())
        field = page.get_by_label("Text in the photo")
        body = searched(page, enter(field, "harbour"))
        answer = httpx.post(f"{server}/api/v1/search", json=body, timeout=30).json()
        assert answer["hits"] == []
        assert answer["message"]
        empty = page.locator(".search-empty .empty")
        empty.wait_for()
        message = answer["message"]
        assert message[0].upper() + message[1:] in empty.inner_text()
        assert accessibility_violations(page) == []
        searched(page, lambda: empty.get_by_role("button", name="Clear the filters").click())
        assert len(shown(page, ids)) == len(PHOTOS)
        assert query_of(page) == {"q": "animals", "sort": "oldest"}  # the order is no filter
        assert errors == []


def test_a_shared_address_restores_every_filter_and_back_returns(
    server: str, ids: dict[str, int], person_ids: dict[str, int], browser: Browser
) -> None:
    ann, bob, cy = person_ids["Ann"], person_ids["Bob"], person_ids["Cy"]
    address = (
        f"/search?q=outdoors&people={ann},{bob}&match=any&without={cy}&text=harbour"
        "&objects=boat&sort=oldest"
    )
    with ui_page(browser, server, "/search?q=first") as (page, errors):
        page.locator(RESULTS).first.wait_for()
        body = searched(page, lambda: page.goto(server + address))
        assert body["any_person_ids"] == [ann, bob]
        assert body["exclude_person_ids"] == [cy]
        assert body["text"] == "harbour"
        assert body["objects"] == ["boat"]
        assert body["sort"] == "oldest"
        assert "person_ids" not in body
        assert "only_people" not in body
        assert shown(page, ids) == ["harbour.png"]
        page.locator("#search-objects").get_by_label("boat").wait_for()
        assert page.locator("#search-with").get_by_label("Ann").is_checked()
        assert page.locator("#search-with").get_by_label("Bob").is_checked()
        assert page.locator("#search-without").get_by_label("Cy").is_checked()
        assert page.get_by_label("Any of them").is_checked()
        assert page.locator("#search-objects").get_by_label("boat").is_checked()
        assert page.get_by_label("Text in the photo").input_value() == "harbour"
        assert page.get_by_label("Sort by").input_value() == "oldest"
        assert page.locator(".filter-count").inner_text().strip() == "(5 set)"
        assert page.locator(".search-filters").get_attribute("open") is not None

        # A new search keeps the filters; Back returns to the shared address.
        box = page.get_by_label("Describe a photo")
        searched(page, enter(box, "boats"))
        assert query_of(page)["q"] == "boats"
        assert query_of(page)["objects"] == "boat"
        searched(page, page.go_back)
        assert page.evaluate("location.pathname + location.search") == address
        assert page.get_by_label("Describe a photo").input_value() == "outdoors"
        assert errors == []

    with ui_page(browser, server, address, dark=True) as (page, errors):
        page.locator(RESULTS).first.wait_for()
        assert accessibility_violations(page) == []
        screenshot(page, "search-filters-dark")
        assert errors == []
    with ui_page(browser, server, address, mobile=True) as (page, errors):
        page.locator(RESULTS).first.wait_for()
        assert accessibility_violations(page) == []
        screenshot(page, "search-filters-mobile")
        assert errors == []


def test_viewer_shows_copies_the_text_and_draws_the_objects(
    server: str, ids: dict[str, int], browser: Browser
) -> None:
    harbour = ids["harbour.png"]
    with ui_page(browser, server, f"/photos/{harbour}") as (page, errors):
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
        text = page.locator(".viewer-text")
        text.wait_for()
        assert text.get_attribute("open") is not None  # short text starts open
        assert "Text in the photo (6 words)" in text.locator("summary").inner_text()
        assert page.locator(".ocr-text").inner_text() == HARBOUR_TEXT
        text.get_by_role("button", name="Copy text").click()
        text.get_by_text("Copied.").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == HARBOUR_TEXT
        # Collapsible from the keyboard.
        text.locator("summary").focus()
        page.keyboard.press("Enter")
        assert text.get_attribute("open") is None
        assert not page.locator(".ocr-text").is_visible()
        page.keyboard.press("Enter")
        assert page.locator(".ocr-text").is_visible()

        objects = page.get_by_role("list", name="Objects detected in this photo")
        assert objects.inner_text().split() == ["boat", "91%"]
        toggle = page.get_by_role("button", name="Show objects")
        assert toggle.get_attribute("aria-pressed") == "false"
        box = page.locator(".object-box")
        assert box.count() == 1
        assert not box.is_visible()
        toggle.click()
        assert box.is_visible()
        assert (
            page.get_by_role("button", name="Hide objects").get_attribute("aria-pressed") == "true"
        )
        assert box.inner_text() == "boat 91%"
        # Placed in percent of the original: x 10..100 of 320 px, y 130..230 of 240 px.
        placed = box.evaluate(
            "b => [b.style.left, b.style.top, b.style.width, b.style.height].map(parseFloat)"
        )
        assert placed == pytest.approx([3.125, 54.1667, 28.125, 41.6667], abs=1e-3)
        assert accessibility_violations(page) == []
        screenshot(page, "viewer-text-objects")

        # A label lists every photo with that object, newest first: a search by it alone.
        body = searched(page, lambda: objects.get_by_role("link", name="boat").click())
        assert page.evaluate("location.pathname + location.search") == "/search?objects=boat"
        assert body == {"k": 60, "offset": 0, "objects": ["boat"], "sort": "newest"}
        assert shown(page, ids) == ["harbour.png"]
        assert page.get_by_label("Describe a photo").input_value() == ""
        assert errors == []

    # A photo without text or objects shows neither section nor the toggle.
    with ui_page(browser, server, f"/photos/{ids['plain.png']}") as (page, errors):
        page.get_by_role("heading", name="Similar photos").wait_for()
        assert page.locator(".viewer-text").count() == 0
        assert page.get_by_role("heading", name="Objects").count() == 0
        assert page.get_by_role("button", name="Show objects").is_hidden()
        assert errors == []
