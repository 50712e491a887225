"""The web UI's photos: its headers and static files over HTTP, then the timeline, the photo
viewer, folders and upload in a real browser (Playwright driving Debian's Chromium) against a
real ``viewfinder serve`` with the real face models, on real photos from ../shared/data."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import requires_shared, shared_data
from tests.web_fixtures import accessibility_violations, screenshot, ui_page, ui_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

FACES = "faces_face_recognition"
# Photos with their EXIF capture dates (DateTimeOriginal), portraits among them, and photos with
# none, which are shown on the day they were added.
TRIPS = [
    (FACES, "examples__biden.jpg"),  # 10 May 2010, 970 x 2204
    (FACES, "examples__knn_examples__train__obama__obama.jpg"),  # 6 December 2012
    (FACES, "examples__knn_examples__train__obama__obama2.jpg"),  # no date, portrait
]
FAMILY = [
    ("faces_openface", "carell.jpg"),  # 21 November 2014, portrait
    ("person_scenes", "yolov5__bus.jpg"),  # 1 March 2019, portrait
]
UNDATED = [("captioned_skimage", "rocket.jpg"), ("captioned_skimage", "chelsea.png")]
HORSE = ("captioned_skimage", "horse.png")
# Markup that runs if it ever reaches innerHTML. Unquoted: Chromium sends a file name's double
# quotes as %22 in the multipart header (the HTML standard's form encoding), and the server stores
# the name as sent.
HOSTILE_NAME = "<img src=x onerror=window.__xss=1>.jpg"
PROCESSING_TIMEOUT_MS = 180_000
# Drops a file on the timeline as a browser does: dragenter, or dragover then drop, carrying it.
DROP_FILE = """([step, name, data]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type: "image/png" }));
    const view = document.querySelector(".timeline");
    for (const type of step === "drop" ? ["dragover", "drop"] : [step]) {
        view.dispatchEvent(
            new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }),
        );
    }
}"""

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
    [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("index.html", "text/html"),
        ("lib/photos.js", "text/javascript"),
        ("views/timeline.js", "text/javascript"),
        ("views/upload.js", "text/javascript"),
        ("views/viewer.css", "text/css"),
        ("views/folders.css", "text/css"),
    ],
)
def test_static_files_are_served_with_their_content_types(
    client: TestClient, name: str, media_type: str
) -> None:
    response = client.get(f"/ui/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
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
        # the subfolders: up and out of them, hidden names, folders themselves
        "/ui/static/lib/%2e%2e/%2e%2e/routes.py",
        "/ui/static/lib/..%2f..%2froutes.py",
        "/ui/static/views/%2e%2e%2f%2e%2e%2f%2e%2e%2fapi%2fapp.py",
        "/ui/static/views/.hidden",
        "/ui/static/views/.hidden.js",
        "/ui/static/views/%2etimeline.js",
        "/ui/static/views//timeline.js",
        "/ui/static/views/",
        "/ui/static/lib",
        "/ui/static/views%5ctimeline.js",
    ],
)
def test_path_tricks_under_static_leak_nothing(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    body = response.text
    for secret in ("[build-system]", "APIRouter", "root:x:0:0", "Viewfinder's web UI", "export "):
        assert secret not in body


# --- in a browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[str]:
    with ui_server(tmp_path_factory.mktemp("web-ui"), tiny_models, face_organize_delay_s=1) as base:
        yield base


def _assets(server: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{server}/api/v1/assets", params={"limit": 1000, **params}, timeout=30)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _tile_ids(page: Page, selector: str) -> list[int]:
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


def _wait_for_title(page: Page, name: str) -> None:
    """The viewer shows the photo ``name`` (its title, once the asset has loaded)."""
    title = page.locator("#viewer-title")
    page.wait_for_function(
        "name => document.getElementById('viewer-title')?.textContent === name", arg=name
    )
    assert title.inner_text() == name


def _upload(page: Page, folder: str, files: list[tuple[str, str]]) -> None:
    done = page.locator("#upload-log li.ok").count()
    page.fill("#upload-folder", folder)
    page.set_input_files("#file-input", [shared_data(*f) for f in files])
    page.locator("#upload-log li.ok").nth(done + len(files) - 1).wait_for()


def _wait_until_processed(page: Page, count: int) -> None:
    """The header's status says every photo is indexed and nothing is waiting (faces too)."""
    page.locator("#processing").filter(has_text=f"{count} photos indexed").wait_for(
        timeout=PROCESSING_TIMEOUT_MS
    )


def _check_aspect_ratios(page: Page, selector: str, assets: dict[int, dict[str, Any]]) -> None:
    tiles = page.locator(f"{selector} [data-asset-id]")
    for i in range(tiles.count()):
        tile = tiles.nth(i)
        box = tile.bounding_box()
        assert box is not None
        asset = assets[int(tile.get_attribute("data-asset-id") or 0)]
        shown, real = box["width"] / box["height"], asset["width"] / asset["height"]
        assert abs(shown - real) / real < 0.03, (asset["original_filename"], shown, real)
        srcset = tile.locator("img").get_attribute("srcset") or ""
        assert asset["thumbnail_url"] in srcset
        assert asset["preview_url"] in srcset


def _day_of(asset: dict[str, Any]) -> date:
    """The UTC day a photo is grouped under, as GET /api/v1/timeline buckets it."""
    when = datetime.fromisoformat(asset["captured_at"] or asset["created_at"])
    return when.astimezone(UTC).date()


@requires_shared
@pytest.mark.slow
def test_upload_browse_view_step_delete_and_folders(browser: Any, server: str) -> None:
    with ui_page(browser, server) as (ui, errors):
        # An empty library says what to do.
        ui.locator("#timeline-state .empty").filter(has_text="No photos yet").wait_for()
        assert "viewfinder index DIR" in ui.inner_text("#timeline-state")
        assert accessibility_violations(ui) == []

        # Upload through the file picker, into folders; the photos appear without a reload.
        _upload(ui, "trips/2024", TRIPS)
        _upload(ui, "family/2014", FAMILY)
        _upload(ui, "", UNDATED)
        total = len(TRIPS) + len(FAMILY) + len(UNDATED)
        assert ui.inner_text("#upload-summary") == "Uploaded 2 photos."
        ui.locator("#timeline [data-asset-id]").nth(total - 1).wait_for()
        ui.locator("#library-count").filter(has_text=f"{total} photos").wait_for()
        _wait_until_processed(ui, total)

        # Newest first, in the API's timeline order, grouped by day under dated headings.
        newest = _assets(server, sort="newest")
        by_id = {a["id"]: a for a in newest}
        by_name = {a["original_filename"]: a for a in newest}
        assert _tile_ids(ui, "#timeline") == [a["id"] for a in newest]
        days = ui.eval_on_selector_all("#timeline section.day", "s => s.map(n => n.dataset.day)")
        assert days == [str(d) for d in sorted({_day_of(a) for a in newest}, reverse=True)]
        # The photos without a date, on the day they were added, newest first.
        added = [a for a in newest if a["captured_at"] is None]
        assert len(added) == 3
        today = _day_of(added[0])
        section = f'#timeline section.day[data-day="{today}"]'
        assert _tile_ids(ui, section) == [a["id"] for a in added]
        heading = f"{today:%A}, {today:%B} {today.day}, {today.year}"  # Chromium's en-US
        assert ui.inner_text(f"{section} h2") == heading
        assert ui.inner_text('#timeline section.day[data-day="2010-05-10"] h2') == (
            "Monday, May 10, 2010"
        )
        _wait_for_images(ui, "#timeline")
        _check_aspect_ratios(ui, "#timeline", by_id)

        # The month list jumps to a month: its first photo takes focus.
        carell = by_name["carell.jpg"]["id"]
        ui.get_by_role("button", name="November 2014: 1 photo").click()
        assert ui.evaluate("document.activeElement.dataset.assetId") == str(carell)
        ui.evaluate("window.scrollTo(0, 0)")
        assert accessibility_violations(ui) == []
        screenshot(ui, "timeline")

        # The viewer: preview, details, faces drawn where the API found them.
        first = by_name[TRIPS[1][1]]["id"]  # Obama, 2012
        ui.locator(f'#timeline [data-asset-id="{first}"]').click()
        ui.wait_for_url(f"{server}/photos/{first}")
        viewer = ui.locator("#overlay .viewer")
        _wait_for_title(ui, TRIPS[1][1])
        _wait_for_images(ui, "#overlay .stage")
        order = [a["id"] for a in newest]
        at = order.index(first)
        assert viewer.locator(".position").inner_text() == f"{at + 1} of {total}"
        assert viewer.locator(".caption").count() == (1 if by_id[first]["caption"] else 0)
        details = viewer.locator(".details").inner_text()
        assert "trips/2024" in details
        assert "910 \u00d7 1,137 px" in details
        faces = httpx.get(f"{server}/api/v1/assets/{first}/faces", timeout=30).json()
        assert faces, "the real detector finds Obama's face"
        boxes = viewer.locator(".face-box")
        assert boxes.count() == len(faces)
        photo = viewer.locator("img.photo").bounding_box()
        drawn = boxes.first.bounding_box()
        assert photo is not None
        assert drawn is not None
        scale = photo["width"] / by_id[first]["width"]
        x1, y1, x2, _ = faces[0]["box"]
        assert abs(drawn["x"] - (photo["x"] + x1 * scale)) < 4
        assert abs(drawn["y"] - (photo["y"] + y1 * scale)) < 4
        assert abs(drawn["width"] - (x2 - x1) * scale) < 6
        names = boxes.locator(".face-name").all_inner_texts()
        persons = {p["id"]: p["name"] for p in httpx.get(f"{server}/api/v1/persons").json()}
        assert names == [persons.get(f["person_id"], "Unnamed") for f in faces]
        viewer.locator(".similar [data-asset-id]").first.wait_for()
        assert first not in _tile_ids(ui, "#overlay .similar")
        assert accessibility_violations(ui) == []
        screenshot(ui, "viewer")

        # Keyboard: the arrows step through the timeline's order; Esc returns to the grid with
        # the last photo's tile focused.
        ui.keyboard.press("ArrowRight")
        ui.wait_for_url(f"{server}/photos/{order[at + 1]}")
        _wait_for_title(ui, TRIPS[0][1])
        ui.keyboard.press("ArrowLeft")
        ui.wait_for_url(f"{server}/photos/{first}")
        _wait_for_title(ui, TRIPS[1][1])
        ui.keyboard.press("ArrowLeft")
        ui.wait_for_url(f"{server}/photos/{order[at - 1]}")
        _wait_for_title(ui, by_id[order[at - 1]]["original_filename"])
        # Carell's photo: what its camera wrote (EXIF) is in the details.
        camera = viewer.locator(".details").inner_text()
        assert "NIKON D4S" in camera
        assert "f/2.8 \u00b7 1/60 s \u00b7 ISO 1600" in camera
        # Tab stays inside the overlay.
        for _ in range(25):
            ui.keyboard.press("Tab")
            assert ui.evaluate(
                "document.getElementById('overlay').contains(document.activeElement)"
            )
        ui.keyboard.press("Escape")
        ui.wait_for_url(f"{server}/")
        ui.locator("#overlay").wait_for(state="hidden")
        ui.wait_for_function(
            "id => document.activeElement?.dataset?.assetId === id", arg=str(order[at - 1])
        )

        # Add to a new collection from the viewer.
        ui.locator(f'#timeline [data-asset-id="{first}"]').click()
        viewer.get_by_role("button", name="Add to collection").click()
        ui.fill("#collection-new", "Portraits")
        viewer.get_by_role("button", name="Create and add").click()
        ui.locator("#messages").filter(has_text="Added to Portraits").wait_for()
        collections = httpx.get(f"{server}/api/v1/collections", timeout=30).json()
        portraits = next(c for c in collections if c["name"] == "Portraits")
        members = httpx.get(f"{server}/api/v1/collections/{portraits['id']}/assets").json()
        assert [m["id"] for m in members] == [first]

        # Delete (the confirmation is accepted): the viewer moves on to the next photo and
        # the grid underneath drops the tile.
        viewer.get_by_role("button", name="Delete").click()
        ui.wait_for_url(f"{server}/photos/{order[at + 1]}")
        assert httpx.get(f"{server}/api/v1/assets/{first}", timeout=30).status_code == 404
        assert ui.locator(f'#timeline [data-asset-id="{first}"]').count() == 0
        ui.keyboard.press("Escape")
        ui.locator("#library-count").filter(has_text=f"{total - 1} photos").wait_for()
        order.remove(first)

        # A reload on a photo's address shows it, and the arrows step in the timeline's order.
        last = order[-1]
        ui.goto(f"{server}/photos/{last}")
        _wait_for_title(ui, by_id[last]["original_filename"])
        viewer.locator(".position").filter(has_text=f"{len(order)} of {len(order)}").wait_for()
        assert viewer.get_by_role("button", name="Next").is_disabled()
        ui.keyboard.press("ArrowLeft")
        ui.wait_for_url(f"{server}/photos/{order[-2]}")
        ui.keyboard.press("Escape")
        ui.wait_for_url(f"{server}/")
        ui.locator("#timeline [data-asset-id]").nth(total - 2).wait_for()

        # Folders: the tree with counts; choosing a folder shows its photos; reload keeps it.
        ui.locator('#nav a[href="/folders"]').click()
        tree = ui.locator(".folder-tree")
        trips = tree.locator("a", has_text="trips")
        trips.wait_for()
        assert "2" in trips.inner_text()  # one of its three was deleted
        toggle = tree.get_by_role("button", name="Subfolders of trips")
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.focus()
        ui.keyboard.press("Enter")
        assert toggle.get_attribute("aria-expanded") == "true"
        ui.keyboard.press("Tab")
        ui.keyboard.press("Tab")
        assert ui.evaluate("document.activeElement.textContent").startswith("2024")
        # The arrows too: up to trips, Left closes it, Right opens it, Right again into 2024.
        ui.keyboard.press("ArrowUp")
        assert ui.evaluate("document.activeElement.textContent").startswith("trips")
        ui.keyboard.press("ArrowLeft")
        assert toggle.get_attribute("aria-expanded") == "false"
        ui.keyboard.press("ArrowRight")
        assert toggle.get_attribute("aria-expanded") == "true"
        ui.keyboard.press("ArrowRight")
        assert ui.evaluate("document.activeElement.textContent").startswith("2024")
        ui.keyboard.press("Enter")
        ui.wait_for_url(f"{server}/folders?path=trips/2024")
        in_trips = [a["id"] for a in _assets(server, sort="newest", folder="trips/2024")]
        assert len(in_trips) == 2
        ui.locator("#view .justified [data-asset-id]").nth(1).wait_for()
        ui.reload()
        ui.locator("#view .justified [data-asset-id]").nth(1).wait_for()
        assert _tile_ids(ui, "#view .justified") == in_trips
        assert ui.locator('.folder-tree a[aria-current="page"]').inner_text().startswith("2024")
        _wait_for_images(ui, "#view .justified")
        assert accessibility_violations(ui) == []
        screenshot(ui, "folders")

        # A parent folder shows its subfolders' photos, or (unticked) only its own: none.
        ui.goto(f"{server}/folders?path=family")
        ui.locator("#view .justified [data-asset-id]").nth(1).wait_for()
        ui.get_by_label("Include subfolders").uncheck()
        ui.wait_for_url(f"{server}/folders?path=family&sub=0")
        ui.locator("#view").filter(has_text="No photos directly in this folder").wait_for()
        assert accessibility_violations(ui) == []
        assert errors == []


@requires_shared
@pytest.mark.slow
def test_dark_and_phone_layouts(browser: Any, server: str) -> None:
    if not _assets(server):  # run alone: the photos of the scenario above
        httpx.post(
            f"{server}/api/v1/assets",
            files=[("files", (n, shared_data(d, n).read_bytes())) for d, n in TRIPS + UNDATED],
            timeout=120,
        ).raise_for_status()
    newest = _assets(server, sort="newest")
    with ui_page(browser, server, dark=True) as (ui, errors):
        ui.locator("#timeline [data-asset-id]").nth(len(newest) - 1).wait_for()
        _wait_for_images(ui, "#timeline")
        assert accessibility_violations(ui) == []
        screenshot(ui, "timeline-dark")
        ui.locator("#timeline [data-asset-id]").first.click()
        ui.locator("#overlay img.photo").wait_for()
        assert accessibility_violations(ui) == []
        screenshot(ui, "viewer-dark")
        assert errors == []
    with ui_page(browser, server, mobile=True) as (ui, errors):
        ui.locator("#timeline [data-asset-id]").nth(len(newest) - 1).wait_for()
        _wait_for_images(ui, "#timeline")
        # Several photos per row on a phone, nothing wider than the screen.
        widths = ui.eval_on_selector_all(
            "#timeline [data-asset-id]", "t => t.map(n => n.getBoundingClientRect().right)"
        )
        assert max(widths) <= 390
        tops = ui.eval_on_selector_all(
            "#timeline [data-asset-id]", "t => t.map(n => n.getBoundingClientRect().top)"
        )
        assert len(set(tops)) < len(tops)
        assert ui.evaluate("document.documentElement.scrollWidth") <= 390
        assert accessibility_violations(ui) == []
        screenshot(ui, "timeline-mobile")
        ui.locator("#timeline [data-asset-id]").first.click()
        ui.locator("#overlay img.photo").wait_for()
        image = ui.locator("#overlay .stage").bounding_box()
        panel = ui.locator("#overlay .viewer-panel").bounding_box()
        assert image is not None
        assert panel is not None
        assert panel["y"] >= image["y"] + image["height"] - 1  # the details below the photo
        assert accessibility_violations(ui) == []
        screenshot(ui, "viewer-mobile")
        assert errors == []


@requires_shared
@pytest.mark.slow
def test_hostile_names_stay_text_and_server_errors_are_shown(browser: Any, server: str) -> None:
    hostile = shared_data(*HORSE).read_bytes()
    not_an_image = b"just some text, not an image"
    with ui_page(browser, server) as (ui, errors):
        ui.locator("#library-count").filter(has_text="photos").wait_for()
        # The hostile name arrives by drag and drop onto the view, the refused file by the picker.
        ui.evaluate(DROP_FILE, ["dragenter", HOSTILE_NAME, base64.b64encode(hostile).decode()])
        assert "dropping" in (ui.get_attribute(".timeline", "class") or "")
        ui.evaluate(DROP_FILE, ["drop", HOSTILE_NAME, base64.b64encode(hostile).decode()])
        assert "dropping" not in (ui.get_attribute(".timeline", "class") or "")
        ui.locator("#upload-log li.ok").wait_for()
        ui.set_input_files(
            "#file-input", [{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": not_an_image}]
        )
        ui.locator("#upload-log li.error").wait_for()
        tile = ui.locator(f'#timeline img[alt^="{HOSTILE_NAME}, "]')
        tile.wait_for()

        # The name is literal text everywhere it is shown; no element was made from it.
        assert ui.locator("#upload-log li.ok").inner_text() == f"Added {HOSTILE_NAME}"
        tile.click()
        _wait_for_title(ui, HOSTILE_NAME)
        assert ui.locator("#overlay img.photo").get_attribute("alt") == HOSTILE_NAME
        assert ui.locator('img[src="x"]').count() == 0
        assert ui.evaluate("typeof window.__xss") == "undefined"

        # The refused file: the log shows the server's own `detail` for it.
        refused = httpx.post(
            f"{server}/api/v1/assets", files=[("files", ("notes.jpg", not_an_image))], timeout=60
        )
        assert refused.status_code == 400
        detail = refused.json()["detail"]
        assert (
            ui.locator("#upload-log li.error").inner_text() == f"notes.jpg was not added: {detail}"
        )
        assert "1 not added" in ui.inner_text("#upload-summary")

        # The only console error is the browser's own note of that 400 response.
        assert len(errors) == 1, errors
        assert "status of 400" in errors[0]
