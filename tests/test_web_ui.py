"""The web UI at ``/``: its headers and static files over HTTP, then the page itself in a real
browser (Playwright driving Debian's Chromium) against a real ``viewfinder serve`` process."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import requires_shared, serve_env, shared_data
from viewfinder.testing.server import free_port, wait_until_serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROCKET = ("captioned_skimage", "rocket.jpg")
CHELSEA = ("captioned_skimage", "chelsea.png")
HORSE = ("captioned_skimage", "horse.png")
# Markup that runs if it ever reaches innerHTML. Unquoted: Chromium sends a file name's double
# quotes as %22 in the multipart header (the HTML standard's form encoding), and the server stores
# the name as sent.
HOSTILE_NAME = "<img src=x onerror=window.__xss=1>.jpg"
TIMEOUT_MS = 30_000

# --- over HTTP -----------------------------------------------------------------------------------


def test_page_is_html_with_a_strict_content_security_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split(";")
    }
    assert policy["default-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]
    assert policy["frame-ancestors"] == ["'none'"]
    for directive in ("script-src", "style-src"):  # no 'unsafe-inline' anywhere
        assert policy.get(directive, policy["default-src"]) == ["'self'"]
    html = response.text
    assert '<script type="module" src="/ui/static/app.js"></script>' in html
    assert "<style" not in html
    assert " style=" not in html
    assert "<script>" not in html


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript"), ("app.css", "text/css"), ("index.html", "text/html")],
)
def test_static_files_are_served_with_their_content_types(
    client: TestClient, name: str, media_type: str
) -> None:
    response = client.get(f"/ui/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.content) > 100


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/..%2f..%2f..%2f..%2fpyproject.toml",
        "/ui/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/ui/static/%2e%2e/routes.py",
        "/ui/static/..%2froutes.py",
        "/ui/static/..%5croutes.py",
        "/ui/static/__init__.py",
        "/ui/static/%2fetc%2fpasswd",
        "/ui/static/app.js%00.html",
        "/ui/static/",
    ],
)
def test_path_tricks_under_static_leak_nothing(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    body = response.text
    for secret in ("[build-system]", "APIRouter", "root:x:0:0", "Viewfinder's web UI"):
        assert secret not in body


# --- in a browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[str]:
    """``viewfinder serve`` on tiny checkpoints, in its own process, on a free loopback port."""
    root = tmp_path_factory.mktemp("web-ui")
    env = serve_env(root, tiny_models)
    port = free_port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "viewfinder", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=root,  # no stray .env file is read
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/health", proc, 90, (root / "server.log").read_text)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page on the UI, and the console errors and page errors it reports."""
    context = browser.new_context()
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    opened.on("dialog", lambda d: d.accept())  # the delete confirmation
    opened.goto(server + "/")
    yield opened, errors
    context.close()


def _card_ids(page: Page, selector: str) -> list[int]:
    ids: list[int] = page.eval_on_selector_all(
        f"{selector} [data-asset-id]", "nodes => nodes.map(n => Number(n.dataset.assetId))"
    )
    return ids


def _wait_for_images(page: Page, selector: str) -> None:
    """Every image under ``selector`` has loaded and decoded to real pixels."""
    page.wait_for_function(
        """selector => {
            const images = [...document.querySelectorAll(selector + " img")];
            return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=selector,
    )


def _wait_until_embedded(page: Page, count: int) -> None:
    processing = page.locator("#processing")
    processing.filter(has_text=f"{count} indexed").wait_for()
    assert "Embedding" not in processing.inner_text()


def _search_ids(server: str, body: dict[str, Any]) -> list[int]:
    response = httpx.post(f"{server}/api/v1/search", json=body, timeout=60)
    assert response.status_code == 200
    return [hit["asset"]["id"] for hit in response.json()["hits"]]


@requires_shared
@pytest.mark.slow
def test_upload_browse_search_cluster_and_delete_in_the_browser(
    page: tuple[Page, list[str]], server: str
) -> None:
    ui, errors = page
    ui.locator("#health").filter(has_text="Server ok").wait_for()

    # Upload two photos through the file picker, into a folder.
    ui.fill("#upload-folder", "trips/2024")
    ui.set_input_files("#file-input", [shared_data(*ROCKET), shared_data(*CHELSEA)])
    ui.locator("#upload-log li.ok").nth(1).wait_for()
    gallery = ui.locator("#gallery li.card")
    gallery.nth(1).wait_for()
    assert gallery.count() == 2
    assert ui.inner_text("#library-count") == "2 images"
    assert ui.locator("#load-more").is_hidden()  # everything is on the first page
    assert ui.locator("#results").is_hidden()
    names = sorted(ui.locator("#gallery .name").all_inner_texts())
    assert names == sorted([ROCKET[1], CHELSEA[1]])
    assert set(ui.locator("#gallery .folder").all_inner_texts()) == {"Folder: trips/2024"}
    _wait_for_images(ui, "#gallery")
    listed = httpx.get(f"{server}/api/v1/assets").json()
    assert sorted(_card_ids(ui, "#gallery")) == sorted(a["id"] for a in listed["items"])
    by_name = {a["original_filename"]: a["id"] for a in listed["items"]}

    _wait_until_embedded(ui, 2)

    # Text search: the hits the API ranks, in its order, each with its score.
    ui.fill("#search-query", "a rocket standing on a launchpad")
    ui.click("#search-form button[type=submit]")
    results = ui.locator("#results-grid li.card")
    results.first.wait_for()
    expected = _search_ids(server, {"query": "a rocket standing on a launchpad", "k": 24})
    assert expected
    assert _card_ids(ui, "#results-grid") == expected
    assert all(s.startswith("Score ") for s in ui.locator("#results-grid .score").all_inner_texts())
    assert ui.inner_text("#results-title") == "Results for “a rocket standing on a launchpad”"

    # "Similar" on the cat: the API leaves the image itself out of its own results, so the
    # page names it as the query and ranks the other photo.
    cat_card = ui.locator(f'#gallery li[data-asset-id="{by_name[CHELSEA[1]]}"]')
    cat_card.get_by_role("button", name=f"Find images similar to {CHELSEA[1]}").click()
    ui.locator("#results-title").filter(has_text=f"Similar to “{CHELSEA[1]}”").wait_for()
    results.first.wait_for()
    similar = _search_ids(server, {"asset_id": by_name[CHELSEA[1]], "k": 24})
    assert similar == [by_name[ROCKET[1]]]
    assert _card_ids(ui, "#results-grid") == similar
    assert ui.get_attribute("#results-note img.source", "alt") == CHELSEA[1]
    _wait_for_images(ui, "#results")
    ui.click("#results-clear")
    assert ui.locator("#results").is_hidden()

    # Clusters: every uploaded image in exactly one cluster, thumbnails loaded.
    ui.click("#clusters-run")
    ui.locator("#clusters section.cluster").first.wait_for()
    clustered = Counter(_card_ids(ui, "#clusters"))
    assert clustered == Counter(by_name.values())
    _wait_for_images(ui, "#clusters")
    alts = ui.eval_on_selector_all("#clusters img", "nodes => nodes.map(n => n.alt)")
    assert sorted(alts) == sorted(by_name)

    # People: none are named in a fresh library, and the page says so.
    assert httpx.get(f"{server}/api/v1/persons").json() == []
    ui.click("#people-refresh")
    ui.locator("#people-status").filter(has_text="Nobody is named yet").wait_for()

    # Delete the rocket (the confirmation is accepted): gone from the page and from the server.
    rocket = by_name[ROCKET[1]]
    ui.get_by_role("button", name=f"Delete {ROCKET[1]}").first.click()
    ui.locator(f'[data-asset-id="{rocket}"]').first.wait_for(state="detached")
    assert ui.locator(f'[data-asset-id="{rocket}"]').count() == 0
    assert ui.inner_text("#library-count") == "1 image"
    assert httpx.get(f"{server}/api/v1/assets/{rocket}").status_code == 404
    ui.click("#library-refresh")
    ui.locator("#gallery li.card").nth(1).wait_for(state="detached")
    assert _card_ids(ui, "#gallery") == [by_name[CHELSEA[1]]]

    assert errors == []


@requires_shared
@pytest.mark.slow
def test_hostile_names_stay_text_and_server_errors_are_shown(
    page: tuple[Page, list[str]], server: str
) -> None:
    ui, errors = page
    hostile = shared_data(*HORSE).read_bytes()
    not_an_image = b"just some text, not an image"
    ui.set_input_files(
        "#file-input",
        [
            {"name": HOSTILE_NAME, "mimeType": "image/jpeg", "buffer": hostile},
            {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": not_an_image},
        ],
    )
    ui.locator("#upload-log li.error").wait_for()
    card = ui.locator("#gallery li.card").filter(has_text=HOSTILE_NAME)
    card.wait_for()
    _wait_for_images(ui, "#gallery")

    # The name is literal text everywhere it is shown; no element was made from it.
    assert card.locator(".name").inner_text() == HOSTILE_NAME
    assert card.locator("img").get_attribute("alt") == HOSTILE_NAME
    assert ui.locator("#upload-log li.ok").inner_text() == f"Added {HOSTILE_NAME}"
    assert ui.locator('img[src="x"]').count() == 0
    assert ui.evaluate("typeof window.__xss") == "undefined"

    # The refused file: the log shows the server's own `detail` for it.
    refused = httpx.post(
        f"{server}/api/v1/assets", files=[("files", ("notes.jpg", not_an_image))], timeout=60
    )
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert ui.locator("#upload-log li.error").inner_text() == f"notes.jpg was not added: {detail}"

    # The only console error is the browser's own note of that 400 response.
    assert len(errors) == 1
    assert "status of 400" in errors[0]
