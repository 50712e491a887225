"""The web UI's search and duplicates views in a real browser (Playwright driving Debian's
Chromium) against a real ``viewfinder serve`` with the real face models, on real photos from
../shared/data: text search with folder, date and people filters kept in the address (reload and
Back restore the search), the empty states, search by an uploaded or dropped image, "similar",
and a duplicate group resolved by keeping one photo."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image

from tests.conftest import requires_shared, shared_data
from tests.web_fixtures import accessibility_violations, screenshot, ui_page, ui_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.slow, requires_shared]

SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
# With their EXIF capture dates (DateTimeOriginal): the date filter's ground truth.
SCENES = {
    "darknet__dog.jpg": "2014-09-19",
    "darknet__eagle.jpg": "2013-07-19",
    "darknet__horses.jpg": "2013-04-13",
    "darknet__kite.jpg": "2010-06-06",
    "yolov5__bus.jpg": "2019-03-01",
}
COPY = "dog-copy.jpg"  # darknet__dog.jpg at half size, re-encoded: its near-duplicate
PROCESSING_TIMEOUT_S = 180


def upload(base: str, folder: str, files: list[tuple[str, bytes]]) -> dict[str, int]:
    response = httpx.post(
        f"{base}/api/v1/assets",
        files=[("files", (name, data)) for name, data in files],
        data={"folder": folder},
        timeout=120,
    )
    response.raise_for_status()
    return {item["asset"]["original_filename"]: item["asset"]["id"] for item in response.json()}


def wait_until_processed(base: str, count: int) -> None:
    """Until every photo is embedded (searchable) and its faces are detected."""
    deadline = time.monotonic() + PROCESSING_TIMEOUT_S
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/api/v1/status", timeout=30).json()
        kinds = {k["kind"]: k["counts"] for k in status["processing"]}
        done = all(kinds.get(kind, {}).get("done", 0) == count for kind in ("embed", "faces"))
        if done and status["indexed"] == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"processing did not finish: {status}")


def resized_copy(path: Path) -> bytes:
    image = Image.open(path)
    out = io.BytesIO()
    image.resize((image.width // 2, image.height // 2)).save(out, "JPEG", quality=70)
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[str]:
    root = tmp_path_factory.mktemp("web-search")
    with ui_server(root, tiny_models) as base:
        yield base


@pytest.fixture(scope="module")
def library(server: str) -> dict[str, int]:
    """10 photos in three folders (one a resized copy of another) and one named person: the
    asset ids by file name."""
    skimage = [shared_data("captioned_skimage", name) for name in SKIMAGE]
    scenes = [shared_data("person_scenes", name) for name in SCENES]
    ids = upload(server, "skimage", [(p.name, p.read_bytes()) for p in skimage])
    ids |= upload(server, "scenes", [(p.name, p.read_bytes()) for p in scenes])
    ids |= upload(server, "copies", [(COPY, resized_copy(scenes[0]))])
    wait_until_processed(server, len(ids))
    # Name the astronaut's face (the real detector finds it) to filter by that person.
    faces = httpx.get(f"{server}/api/v1/faces?limit=1000", timeout=30).json()["items"]
    face = next(f for f in faces if f["asset_id"] == ids["astronaut.png"])
    httpx.post(
        f"{server}/api/v1/faces/{face['id']}/assign", json={"name": "Eileen Collins"}, timeout=30
    ).raise_for_status()
    return ids


def shown_ids(page: Page) -> set[int]:
    tiles = page.locator('[aria-label="Search results"] .tile')
    return {int(t.get_attribute("data-asset-id") or 0) for t in tiles.all()}


def wait_for_results(page: Page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('[aria-label=\"Search results\"] .tile').length === n"
        " && !document.querySelector('#view .note[role=status]').textContent.includes('Searching')",
        arg=count,
    )


def test_an_empty_library_says_there_is_nothing_to_search_yet(
    server: str, browser: Browser
) -> None:
    """Before any upload (this runs before the ``library`` fixture fills the server)."""
    with ui_page(browser, server, "/search?q=anything") as (page, errors):
        empty = page.locator(".search-empty .empty")
        empty.wait_for()
        assert "indexed" in empty.inner_text().lower() or "embedded" in empty.inner_text().lower()
        empty.get_by_role("link", name="Upload photos on the Photos page").wait_for()
        assert accessibility_violations(page) == []
    with ui_page(browser, server, "/duplicates") as (page, errors2):
        page.get_by_text("No photos are indexed yet").wait_for()
        assert errors == errors2 == []


def test_text_search_with_filters_survives_reload_and_back(
    server: str, library: dict[str, int], browser: Browser
) -> None:
    base, ids = server, library
    scenes = {ids[name] for name in SCENES}
    taken_2013_2014 = {
        ids["darknet__dog.jpg"],
        ids["darknet__eagle.jpg"],
        ids["darknet__horses.jpg"],
    }
    with ui_page(browser, base, "/search") as (page, errors):
        page.get_by_label("Describe a photo").fill("a dog on a porch")
        page.get_by_label("Describe a photo").press("Enter")
        page.wait_for_url("**/search?q=a+dog+on+a+porch")
        wait_for_results(page, len(ids))  # a tiny library: every photo ranks
        assert accessibility_violations(page) == []
        screenshot(page, "search")

        # Every score is part of its tile's name, and shown on focus.
        first = page.locator('[aria-label="Search results"] .tile').first
        first.focus()
        assert "score" in (first.locator("img").get_attribute("alt") or "")
        assert first.locator(".score").evaluate("e => getComputedStyle(e).opacity") == "1"

        page.get_by_label("Folder").select_option("scenes")
        wait_for_results(page, len(scenes))
        assert shown_ids(page) == scenes
        page.get_by_label("Taken from").fill("2013-01-01")
        page.get_by_label("Taken from").dispatch_event("change")
        page.get_by_label("Taken until").fill("2014-12-31")
        page.get_by_label("Taken until").dispatch_event("change")
        wait_for_results(page, len(taken_2013_2014))
        assert shown_ids(page) == taken_2013_2014
        searched = page.url
        assert "folder=scenes" in searched
        assert "from=2013-01-01" in searched
        assert "to=2014-12-31" in searched

        page.reload()
        wait_for_results(page, len(taken_2013_2014))
        assert shown_ids(page) == taken_2013_2014
        assert page.get_by_label("Describe a photo").input_value() == "a dog on a porch"
        assert page.get_by_label("Folder").input_value() == "scenes"
        assert page.get_by_label("Taken until").input_value() == "2014-12-31"

        # A new search is a new address (the filters stay); Back returns to the previous one.
        page.get_by_label("Describe a photo").fill("birds")
        page.get_by_label("Describe a photo").press("Enter")
        page.wait_for_url("**/search?q=birds&folder=scenes*")
        wait_for_results(page, len(taken_2013_2014))
        page.go_back()
        page.wait_for_url(searched)
        wait_for_results(page, len(taken_2013_2014))
        assert page.get_by_label("Describe a photo").input_value() == "a dog on a porch"

        # Nothing matches: the copy has no capture date. The empty state says so and clears.
        page.get_by_label("Folder").select_option("copies")
        empty = page.locator(".search-empty .empty")
        empty.wait_for()
        assert "filter" in empty.inner_text().lower()
        assert accessibility_violations(page) == []
        screenshot(page, "search-empty")
        empty.get_by_role("button", name="Clear the filters").click()
        wait_for_results(page, len(ids))
        assert page.url.endswith("/search?q=a+dog+on+a+porch")

        # Nothing reaches the cut-off: the server's reason, and the way out.
        page.get_by_label("Minimum similarity").fill("0.99")
        page.get_by_label("Minimum similarity").press("Tab")
        empty.wait_for()
        assert "0.99" in empty.inner_text()
        empty.get_by_role("button", name="Remove the cut-off").click()
        wait_for_results(page, len(ids))

        # People: photos showing everyone ticked.
        page.locator("#search-with").get_by_label("Eileen Collins").check()
        wait_for_results(page, 1)
        assert shown_ids(page) == {ids["astronaut.png"]}
        assert "people=" in page.url
        assert errors == []


def drop_file(page: Page, selector: str, url: str, name: str) -> None:
    """Drag a file (the bytes at `url`) onto `selector`, as a person drops one from a folder."""
    page.evaluate(
        """async ([selector, url, name]) => {
            const blob = await (await fetch(url)).blob();
            const transfer = new DataTransfer();
            transfer.items.add(new File([blob], name, { type: blob.type }));
            const target = document.querySelector(selector);
            for (const type of ["dragover", "drop"]) {
                const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
                target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        [selector, url, name],
    )


def test_search_by_image_drop_and_similar(
    server: str, library: dict[str, int], browser: Browser
) -> None:
    base, ids = server, library
    chelsea = shared_data("captioned_skimage", "chelsea.png")
    with ui_page(browser, base, "/search") as (page, errors):
        page.locator("#search-file").set_input_files(str(chelsea))
        wait_for_results(page, len(ids))
        # The same bytes embed to the same vector: the photo itself comes first.
        first = page.locator('[aria-label="Search results"] .tile').first
        assert first.get_attribute("data-asset-id") == str(ids["chelsea.png"])
        assert "chelsea.png" in page.locator(".search-source").inner_text()
        assert accessibility_violations(page) == []

        drop_file(page, ".search-box", f"/api/v1/assets/{ids['rocket.jpg']}/file", "rocket.jpg")
        page.locator(".search-source", has_text="rocket.jpg").wait_for()
        wait_for_results(page, len(ids))
        assert first.get_attribute("data-asset-id") == str(ids["rocket.jpg"])

    with ui_page(browser, base, f"/search?similar={ids['darknet__dog.jpg']}") as (page, errors2):
        wait_for_results(page, len(ids) - 1)  # the photo itself is left out
        first = page.locator('[aria-label="Search results"] .tile').first
        assert first.get_attribute("data-asset-id") == str(ids[COPY])
        assert "darknet__dog.jpg" in page.locator(".search-source").inner_text()
        assert accessibility_violations(page) == []
        page.locator(".search-source").get_by_role("button", name="Clear").click()
        page.wait_for_url("**/search")
        assert errors == errors2 == []

    with ui_page(browser, base, "/search?q=horses&folder=scenes", dark=True) as (page, errors):
        wait_for_results(page, len(SCENES))
        assert accessibility_violations(page) == []
        screenshot(page, "search-dark")
        assert errors == []
    with ui_page(browser, base, "/search?q=horses", mobile=True) as (page, errors):
        wait_for_results(page, len(ids))
        assert accessibility_violations(page) == []
        screenshot(page, "search-mobile")
        assert errors == []


def test_duplicates_keep_one_delete_the_others(
    server: str, library: dict[str, int], browser: Browser
) -> None:
    base, ids = server, library
    dog, copy = ids["darknet__dog.jpg"], ids[COPY]
    # The tiny random CLIP model puts every photo close together (0.95 links most of them): the
    # threshold (in the address) sits where only a real copy passes.
    with ui_page(browser, base, "/duplicates?min=0.99") as (page, errors):
        group = page.locator(".duplicate-group")
        group.wait_for()
        assert group.count() == 1
        cards = group.locator(".duplicate-card")
        assert {c.locator(".tile").get_attribute("data-asset-id") for c in cards.all()} == {
            str(dog),
            str(copy),
        }
        # The suggested keeper has the most pixels: the original, not its half-size copy.
        keeper = group.locator(".duplicate-card.keeper")
        assert "darknet__dog.jpg" in keeper.inner_text()
        assert "768 \u00d7 576" in keeper.inner_text()
        assert accessibility_violations(page) == []
        screenshot(page, "duplicates")

        keeper.get_by_role("button", name="Keep darknet__dog.jpg, delete the others").click()
        page.locator(".duplicate-groups .empty").wait_for()
        assert group.count() == 0
        assert "Lower the similarity" in page.locator(".duplicate-groups").inner_text()
        assert accessibility_violations(page) == []
        assert errors == []

        # The threshold is in the address: the keyboard moves it, reload keeps it.
        slider = page.get_by_label("How similar")
        slider.focus()
        slider.press("ArrowLeft")
        page.wait_for_function("location.search === '?min=0.985'")
        page.reload()
        assert page.get_by_label("How similar").input_value() == "0.985"
    assert httpx.get(f"{base}/api/v1/assets/{copy}", timeout=30).status_code == 404
    assert httpx.get(f"{base}/api/v1/assets/{dog}", timeout=30).status_code == 200
