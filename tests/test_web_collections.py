"""The web UI's collections in a real browser (Playwright driving Debian's Chromium) against a
real ``viewfinder serve``, on real photos from ../shared/data: create a collection, add photos
from a search inside its page, browse, remove one, train its classifier (a background job whose
report shows), and delete it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import requires_shared, shared_data
from tests.web_fixtures import accessibility_violations, screenshot, ui_page, ui_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.slow, requires_shared]

PHOTOS = [
    ("captioned_skimage", "astronaut.png"),
    ("captioned_skimage", "chelsea.png"),
    ("captioned_skimage", "coffee.png"),
    ("captioned_skimage", "rocket.jpg"),
    ("person_scenes", "darknet__dog.jpg"),
    ("person_scenes", "darknet__kite.jpg"),
]
PROCESSING_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[tuple[str, dict[str, int]]]:
    """A server with six embedded photos: its base URL and the asset ids by file name."""
    paths = [shared_data(*parts) for parts in PHOTOS]
    with ui_server(tmp_path_factory.mktemp("web-collections"), tiny_models) as base:
        response = httpx.post(
            f"{base}/api/v1/assets",
            files=[("files", (p.name, p.read_bytes())) for p in paths],
            timeout=120,
        )
        response.raise_for_status()
        ids = {i["asset"]["original_filename"]: i["asset"]["id"] for i in response.json()}
        deadline = time.monotonic() + PROCESSING_TIMEOUT_S
        while httpx.get(f"{base}/api/v1/status", timeout=30).json()["indexed"] < len(ids):
            assert time.monotonic() < deadline, "the photos were not embedded in time"
            time.sleep(0.5)
        yield base, ids


def test_create_add_browse_remove_train_delete(
    library: tuple[str, dict[str, int]], browser: Browser
) -> None:
    base, ids = library
    with ui_page(browser, base, "/collections") as (page, errors):
        page.get_by_text("No collections yet").wait_for()
        assert accessibility_violations(page) == []

        page.get_by_label("Name", exact=True).fill("Weekend")
        page.get_by_label("Description (optional)").fill("Photos from the weekend")
        page.get_by_role("button", name="Create").click()
        card = page.locator(".collection-card", has_text="Weekend")
        card.wait_for()
        assert "0 photos" in card.inner_text()
        # A second collection of the same name: the server's 409, said in the form.
        page.get_by_label("Name", exact=True).fill("Weekend")
        page.get_by_role("button", name="Create").click()
        page.locator(".create-collection [role=alert]", has_text="Not created").wait_for()

        card.get_by_role("link", name="Weekend").click()
        page.wait_for_url("**/collections/*")
        collection_id = int(page.url.rsplit("/", 1)[1])
        page.get_by_text("No photos in this collection yet").wait_for()
        assert accessibility_violations(page) == []

        # Add from a search inside the page: tick three results, add them.
        page.get_by_role("button", name="Add photos").click()
        page.get_by_label("Find photos to add").fill("a day out")
        page.get_by_label("Find photos to add").press("Enter")
        results = page.locator('[aria-label="Photos to add"] .tile')
        page.wait_for_function(
            "n => document.querySelectorAll('[aria-label=\"Photos to add\"] .tile').length === n",
            arg=len(ids),
        )
        picked = [int(results.nth(i).get_attribute("data-asset-id") or 0) for i in range(3)]
        for i in range(3):
            results.nth(i).get_by_role("checkbox").check()
        page.get_by_role("button", name="Add 3 photos").click()
        members = page.locator('[aria-label="Photos in Weekend"] .tile')
        page.wait_for_function(
            "() => document.querySelectorAll('[aria-label=\"Photos in Weekend\"] .tile')"
            ".length === 3"
        )
        assert {int(m.get_attribute("data-asset-id") or 0) for m in members.all()} == set(picked)
        assert "3 photos" in page.locator("#view").inner_text()
        page.get_by_role("button", name="Done").click()
        assert accessibility_violations(page) == []

        # Remove one: tick it, the selection bar offers removal (confirmed).
        members.first.get_by_role("checkbox").check()
        page.get_by_text("1 photo selected").wait_for()
        page.get_by_role("button", name="Remove from collection").click()
        page.wait_for_function(
            "() => document.querySelectorAll('[aria-label=\"Photos in Weekend\"] .tile')"
            ".length === 2"
        )
        kept = httpx.get(f"{base}/api/v1/collections/{collection_id}/assets", timeout=30).json()
        assert len(kept) == 2

        # Train: two members against four other photos is enough for the logistic regression.
        page.get_by_text("Not trained yet.").wait_for()
        page.get_by_role("button", name="Train classifier").click()
        training = page.locator(".training")
        training.get_by_text("Trained.").wait_for(timeout=120_000)
        report = training.locator(".report").inner_text()
        assert "Precision" in report
        assert "Recall" in report
        assert "Classifier: precision" in page.locator(".collection-head + .note").inner_text()
        trained = httpx.get(f"{base}/api/v1/collections/{collection_id}", timeout=30).json()
        assert trained["classifier"] is not None
        assert accessibility_violations(page) == []
        screenshot(page, "collection")

        page.get_by_role("link", name="All collections").click()
        page.wait_for_url("**/collections")
        card.locator("img").wait_for()  # the first member's thumbnail as its cover
        assert "2 photos" in card.inner_text()
        assert "Classifier: precision" in card.inner_text()
        assert accessibility_violations(page) == []
        screenshot(page, "collections")

        card.get_by_role("button", name="Delete collection Weekend").click()
        page.get_by_text("No collections yet").wait_for()
        response = httpx.get(f"{base}/api/v1/collections/{collection_id}", timeout=30)
        assert response.status_code == 404
        # Chromium logs every non-2xx answer: the one 409 is the duplicate name asked above.
        assert [e for e in errors if "409 (Conflict)" not in e] == []

    # The photos stay in the library; an unknown collection's page says so.
    assert httpx.get(f"{base}/api/v1/assets/{picked[0]}", timeout=30).status_code == 200
    with ui_page(browser, base, f"/collections/{collection_id}", mobile=True) as (page, errors):
        page.get_by_role("heading", name="No such collection").wait_for()
        page.get_by_role("link", name="All collections").wait_for()
        assert accessibility_violations(page) == []
        assert [e for e in errors if "404 (Not Found)" not in e] == []


def test_collections_on_a_phone_in_dark_mode(
    library: tuple[str, dict[str, int]], browser: Browser
) -> None:
    base, ids = library
    created = httpx.post(f"{base}/api/v1/collections", json={"name": "Pets"}, timeout=30).json()
    httpx.post(
        f"{base}/api/v1/collections/{created['id']}/assets",
        json={"asset_ids": [ids["chelsea.png"], ids["darknet__dog.jpg"]]},
        timeout=30,
    ).raise_for_status()
    with ui_page(browser, base, f"/collections/{created['id']}", mobile=True) as (page, errors):
        page.wait_for_function(
            "() => document.querySelectorAll('[aria-label=\"Photos in Pets\"] .tile').length === 2"
        )
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the phone
        assert accessibility_violations(page) == []
        screenshot(page, "collection-mobile")
        assert errors == []
    with ui_page(browser, base, "/collections", dark=True) as (page, errors):
        page.locator(".collection-card", has_text="Pets").locator("img").wait_for()
        assert accessibility_violations(page) == []
        screenshot(page, "collections-dark")
        assert errors == []
