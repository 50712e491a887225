"""The web UI on a server that needs a key, in a real browser (Playwright driving Debian's
Chromium) against a real ``viewfinder serve`` process: the page asks for the key once, then its
session cookie (which no script can read) carries every request, ``<img>`` URLs included; a page
of another origin cannot make the browser change anything."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image

from tests.conftest import serve_env
from viewfinder.testing.server import free_port, wait_until_serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser

KEY = "a-long-enough-key-for-the-browser-test"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[tuple[str, Path]]:
    """``viewfinder serve`` with one key in VIEWFINDER_API_KEYS, on a free loopback port: its
    URL and its log (requests logged, with their status)."""
    root = tmp_path_factory.mktemp("web-ui-keys")
    env = serve_env(
        root,
        tiny_models,
        VIEWFINDER_API_KEYS=KEY,
        VIEWFINDER_FACES="0",
        VIEWFINDER_LOG_LEVEL="INFO",
    )
    port = free_port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "viewfinder", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/health", proc, 90, (root / "server.log").read_text)
        yield base, root / "server.log"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(buffer, "PNG")
    return buffer.getvalue()


def _total(server: str) -> int:
    listed = httpx.get(f"{server}/api/v1/assets", headers={"X-API-Key": KEY}, timeout=30)
    total: int = listed.json()["total"]
    return total


@pytest.mark.slow
def test_the_page_asks_for_a_key_once_and_its_cookie_loads_images(
    browser: Browser, served: tuple[str, Path], http_server: str
) -> None:
    server, log = served
    stored = httpx.post(
        f"{server}/api/v1/assets",
        files={"files": ("blue.png", _png((20, 60, 200)), "image/png")},
        headers={"X-API-Key": KEY},
        timeout=60,
    )
    assert stored.status_code == 201, stored.text
    assert httpx.get(f"{server}/api/v1/assets", timeout=30).status_code == 401

    context = browser.new_context()
    ui = context.new_page()
    ui.set_default_timeout(TIMEOUT_MS)
    ui.goto(server + "/")
    ui.locator("#sign-in").wait_for()
    assert ui.locator("#view").is_hidden()

    ui.fill("#sign-in-key", "vf_not-a-key-of-this-server-at-all-000000")
    ui.click("#sign-in-form button[type=submit]")
    ui.locator("#sign-in-error").filter(has_text="not valid").wait_for()
    assert ui.locator("#view").is_hidden()

    ui.fill("#sign-in-key", KEY)
    ui.click("#sign-in-form button[type=submit]")
    ui.locator("#view").wait_for()
    assert ui.locator("#sign-in").is_hidden()
    assert ui.input_value("#sign-in-key") == ""  # the key is not kept in the page
    ui.locator("#timeline [data-asset-id]").first.wait_for()
    # The timeline's thumbnail is an <img>: only the cookie authenticates it.
    ui.wait_for_function(
        """() => {
            const images = [...document.querySelectorAll("#timeline img")];
            return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
        }"""
    )
    assert "viewfinder_session" not in ui.evaluate("document.cookie")  # HttpOnly
    cookie = next(c for c in context.cookies() if c["name"] == "viewfinder_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert KEY not in cookie["value"]

    # Once: a reload goes straight to the library.
    ui.reload()
    ui.locator("#timeline [data-asset-id]").first.wait_for()
    assert ui.locator("#sign-in").is_hidden()
    assert "read-only" not in ui.inner_text("#identity")

    # A page of another origin (same site: only the port differs, so the Strict cookie is sent)
    # cannot upload through this browser.
    other = context.new_page()
    other.goto(http_server + "/not-an-image.txt")
    before = _total(server)
    other.evaluate(
        """async (url) => {
            const form = new FormData();
            form.append("files", new Blob(["x"], {type: "image/png"}), "evil.png");
            await fetch(url, {method: "POST", body: form, mode: "no-cors", credentials: "include"});
        }""",
        f"{server}/api/v1/assets",
    )
    assert _total(server) == before
    # It reached the server, which refused it (the browser did not just drop it).
    assert "request finish POST /api/v1/assets status=403" in log.read_text()

    # Signing out forgets the cookie: the prompt is back, after a reload too.
    ui.click("#sign-out")
    ui.locator("#sign-in").wait_for()
    ui.reload()
    ui.locator("#sign-in").wait_for()
    assert ui.locator("#view").is_hidden()
    context.close()
