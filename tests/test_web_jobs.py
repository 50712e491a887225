"""The Jobs & status view in a real browser against real ``viewfinder serve`` processes (real
face models, tiny CLIP): a folder import started from the page shows as a running job with a
progress bar, then its result, while the per-kind progress of embedding and faces follows; on a
second server whose CLIP model is genuinely missing, embedding pauses and the page shows a
banner with the reason and what to do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import SHARED_DATA, requires_shared, shared_data
from tests.web_fixtures import accessibility_violations, screenshot, ui_page, ui_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# Every shared photo (about 120, with READMEs and label files that are skipped): an import that
# runs for several seconds, so the page sees it running.


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[str]:
    with ui_server(
        tmp_path_factory.mktemp("web-jobs"), tiny_models, import_roots=[SHARED_DATA]
    ) as base:
        yield base


def _count(text: str) -> int:
    return int(text.split(maxsplit=1)[0].replace(",", ""))


@requires_shared
@pytest.mark.slow
def test_an_import_runs_with_progress_and_processing_follows(server: str, browser: Browser) -> None:
    folder = shared_data()
    with ui_page(browser, server, "/jobs") as (page, errors):
        page.locator(".jobs-kinds, .jobs-body .empty").first.wait_for()
        jobs = page.inner_text("#jobs-jobs + .jobs-body")
        assert "No job is running." in jobs
        assert "No job yet." in jobs
        assert accessibility_violations(page) == []

        page.locator(".jobs-import summary").click()
        page.fill("#jobs-import-path", str(folder))
        page.fill("#jobs-import-prefix", "shared")
        with page.expect_response("**/api/v1/imports") as started:
            page.get_by_role("button", name="Import", exact=True).click()
        job_id = started.value.json()["id"]
        row = page.locator(f'.job[data-job-id="{job_id}"]')

        # Running: a progress bar with the counts the job reports (it refreshes every 2 s).
        running = page.locator(f'.job[data-job-id="{job_id}"][data-state="running"]')
        running.locator("progress").wait_for()
        counts = running.locator(".counts").inner_text()
        assert re.fullmatch(r"\d+ photos? imported, \d+ skipped so far \(\d+ files seen\)", counts)
        assert accessibility_violations(page) == []
        screenshot(page, "jobs-running")

        # Done: the result in words, the same as the API's.
        page.locator(f'.job[data-job-id="{job_id}"][data-state="done"]').wait_for(timeout=180_000)
        job = httpx.get(f"{server}/api/v1/jobs/{job_id}", timeout=30).json()
        created = job["result"]["created"]
        skipped = len(job["result"]["skipped"])
        assert created > 100
        assert skipped >= 1
        summary = row.locator(".summary").inner_text()
        assert summary.startswith(f"{created} photos added")
        assert summary.endswith(f"{skipped} skipped")
        row.locator("summary", has_text="Details").click()
        assert "README.md: not an image" in row.locator(".skipped").inner_text()

        # Processing per kind follows until every photo is embedded and its faces found.
        for kind in ("embed", "faces"):
            card = page.locator(f'.jobs-kind[data-kind="{kind}"]')
            card.wait_for()
            assert card.locator("progress").get_attribute("aria-label")
            page.locator(f'.jobs-kind[data-kind="{kind}"][data-state="idle"]').wait_for(
                timeout=240_000
            )
            counts = card.locator(".counts").inner_text()
            assert _count(counts) == created, counts
        # "Organise faces now" queues the organise job (or joins the one queued after the
        # import); the page follows it to its result.
        with page.expect_response("**/api/v1/faces/organize") as queued:
            page.get_by_role("button", name="Organise faces now").click()
        assert queued.value.status == 202
        organise_id = queued.value.json()["job_id"]
        done = page.locator(f'.job[data-job-id="{organise_id}"][data-state="done"]')
        done.wait_for(timeout=120_000)
        assert done.locator("h4").inner_text() == "Organise faces"
        assert page.locator(".banner").count() == 0
        assert page.locator(".jobs-model").count() >= 4  # the configured models, listed
        assert accessibility_violations(page) == []
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "jobs", full_page=True)
        assert errors == []


@requires_shared
@pytest.mark.slow
def test_a_paused_kind_shows_a_banner_with_its_reason(
    tmp_path: Path, tiny_models: dict[str, Path], browser: Browser
) -> None:
    missing = tmp_path / "clip-not-here"
    photo = shared_data("person_scenes", "yolov5__bus.jpg").read_bytes()
    root = tmp_path / "server"
    root.mkdir()
    with ui_server(root, tiny_models, clip_model=str(missing)) as base:
        uploaded = httpx.post(
            f"{base}/api/v1/assets", files=[("files", ("bus.jpg", photo))], timeout=60
        )
        assert uploaded.status_code == 201, uploaded.text
        with ui_page(browser, base, "/jobs", dark=True) as (page, errors):
            banner = page.locator('.banner[data-kind="embed"]')
            banner.wait_for(timeout=60_000)
            text = banner.inner_text()
            assert "Search embeddings processing is paused" in text
            assert "embed processing paused: model not available" in text
            assert str(missing) in text
            assert "VIEWFINDER_CLIP_MODEL" in text
            assert "viewfinder models pull" in text
            assert "1 photo waiting" in text
            kind = page.locator('.jobs-kind[data-kind="embed"]')
            assert kind.get_attribute("data-state") == "paused"
            assert "1 pending" in kind.locator(".counts").inner_text()
            # The header's pill says so too, and links here.
            assert "Paused: embed" in page.inner_text("#processing")
            clip = page.locator('.jobs-model[data-model="clip_image"]')
            assert clip.get_attribute("data-state") == "error"
            assert str(missing) in clip.inner_text()
            assert accessibility_violations(page) == []
            screenshot(page, "jobs-paused-dark", full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column
            banner.wait_for()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert accessibility_violations(page) == []
            screenshot(page, "jobs-paused-dark-mobile", full_page=True)
            assert errors == []
