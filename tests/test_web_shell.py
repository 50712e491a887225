"""The web UI's shell in a real browser: every view has its own address (reload and Back work),
the section is marked in the navigation, dark mode follows the system, and axe-core finds no
accessibility violation in the shell of any view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.web_fixtures import accessibility_violations, ui_page, ui_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser

VIEWS = ["/", "/folders", "/people", "/search", "/duplicates", "/collections", "/analyse", "/jobs"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[str]:
    with ui_server(tmp_path_factory.mktemp("web-shell"), tiny_models) as base:
        yield base


@pytest.mark.parametrize("path", [*VIEWS, "/people/1", "/collections/1", "/photos/1"])
def test_every_view_address_answers_the_page(server: str, path: str) -> None:
    response = httpx.get(server + path, timeout=30)
    assert response.status_code == 200
    assert '<script type="module" src="/ui/static/app.js"></script>' in response.text


def test_unknown_addresses_and_api_routes_are_not_the_page(server: str) -> None:
    assert httpx.get(server + "/nowhere", timeout=30).status_code == 404
    assert (
        httpx.get(server + "/images", timeout=30)
        .headers["content-type"]
        .startswith("application/json")
    )  # seed 004's route keeps its address


def test_views_have_addresses_back_works_and_no_violations(server: str, browser: Browser) -> None:
    with ui_page(browser, server) as (page, errors):
        for path in VIEWS:
            link = page.locator(f'#nav a[href="{path}"]')
            link.click()
            page.wait_for_url(server + path)
            assert link.get_attribute("aria-current") == "page"
            page.locator("#view .view-title").first.wait_for()
            assert accessibility_violations(page) == [], path
        page.go_back()
        page.wait_for_url(server + "/analyse")
        page.reload()
        assert page.locator('#nav a[aria-current="page"]').get_attribute("href") == "/analyse"
        assert errors == []


def test_dark_mode_follows_the_system(server: str, browser: Browser) -> None:
    background = "getComputedStyle(document.body).backgroundColor"
    with ui_page(browser, server) as (page, _):
        light = page.evaluate(background)
    with ui_page(browser, server, dark=True) as (page, errors):
        dark = page.evaluate(background)
        assert accessibility_violations(page) == []
        assert errors == []
    assert light != dark
    channels = [int(c) for c in dark.removeprefix("rgb(").removesuffix(")").split(",")]
    assert max(channels) < 64  # a dark background, not just a different one
