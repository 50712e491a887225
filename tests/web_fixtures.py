"""What the web UI's browser tests share: a real ``viewfinder serve`` with the real face models,
a page that records console errors, axe-core's accessibility check and screenshots.

Screenshots go to ``build/screenshots/`` (or ``$VIEWFINDER_SCREENSHOTS``); they are written by
the tests, never committed (the README's three are copied to docs/images/ by hand)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.conftest import make_settings
from viewfinder.testing.server import free_port, settings_env, wait_until_serving

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = Path(os.environ.get("VIEWFINDER_SCREENSHOTS", REPO / "build" / "screenshots"))
TIMEOUT_MS = 30_000


@contextmanager
def ui_server(root: Path, tiny_models: dict[str, Path], **settings: Any) -> Iterator[str]:
    """``viewfinder serve`` on tiny CLIP/caption checkpoints and the real detector and face
    models of ../shared, in its own process on a free loopback port; yields its base URL.
    Extra keyword arguments override settings (``face_organize_delay_s=1``...)."""
    env = settings_env(make_settings(root, tiny_models, **settings), {"VIEWFINDER_OFFLINE": "1"})
    env["VIEWFINDER_LOG_LEVEL"] = "WARNING"
    port = free_port()
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "viewfinder",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=root,  # no stray .env file is read
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{base}/health", proc, 120, log_path.read_text)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)


@contextmanager
def ui_page(
    browser: Browser, base: str, path: str = "/", dark: bool = False, mobile: bool = False
) -> Iterator[tuple[Page, list[str]]]:
    """A fresh browser page at ``base + path``, and the console and page errors it reports
    (a test asserts the list is empty at its end). ``dark`` emulates a dark system theme;
    ``mobile`` a phone's viewport at device scale 3."""
    options: dict[str, Any] = {"color_scheme": "dark" if dark else "light"}
    if mobile:
        options |= {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3}
    else:
        options |= {"viewport": {"width": 1280, "height": 900}}
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("dialog", lambda d: d.accept())  # confirmations (delete...) are accepted
    page.goto(base + path)
    try:
        yield page, errors
    finally:
        context.close()


def accessibility_violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it is now (WCAG 2 A and AA rules), one line each:
    rule, impact, and the first offending elements."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page,
        options={
            "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            "resultTypes": ["violations"],
        },
    )
    lines = []
    for violation in results.response["violations"]:
        targets = [str(node["target"]) for node in violation["nodes"][:3]]
        lines.append(f"{violation['id']} ({violation['impact']}): {', '.join(targets)}")
    return lines


def screenshot(page: Page, name: str, full_page: bool = False) -> Path:
    """Save the page as ``build/screenshots/<name>.png`` and return the path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
