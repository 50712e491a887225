"""``/docs`` works offline: the page references only this server's URLs, they answer with the
right content types, and in a real browser (Debian's Chromium) whose every request is answered
by the app and nothing else, Swagger UI renders every operation of the OpenAPI document."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

ORIGIN = "http://viewfinder.test"
TIMEOUT_MS = 30_000


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def referenced_urls(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    # The start-up script's `url: '...'` is where Swagger UI fetches the document from.
    return parser.urls + re.findall(r"url: '([^']*)'", html)


def test_docs_page_references_only_local_files_that_are_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    urls = referenced_urls(response.text)
    assert len(urls) == 4, urls  # stylesheet, icon, script, document
    expected = {"css": "text/css", "png": "image/png", "js": "text/javascript"}
    for url in urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        served = client.get(url)
        assert served.status_code == 200, url
        media_type = served.headers["content-type"].split(";")[0]
        extension = url.rsplit(".", 1)[-1]
        assert media_type == expected.get(extension, "application/json"), url
        assert len(served.content) > 500, url
    assert "SwaggerUIBundle" in client.get("/docs/static/swagger-ui-bundle.js").text


@pytest.mark.parametrize(
    "path", ["/docs/static/..%2f..%2fpyproject.toml", "/docs/static/__init__.py", "/docs/static/"]
)
def test_only_swagger_files_are_served_under_docs(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "[build-system]" not in response.text


def test_redoc_is_off_rather_than_loaded_from_a_cdn(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404


def test_swagger_ui_renders_every_operation_with_no_other_host(
    browser: Browser, client: TestClient
) -> None:
    elsewhere: list[str] = []

    def answer(route: Route) -> None:
        """Every request the page makes: this app's are answered by it, others are refused."""
        url = route.request.url
        if not url.startswith(ORIGIN + "/"):
            elsewhere.append(url)
            route.abort()
            return
        served = client.get(url.removeprefix(ORIGIN))
        route.fulfill(status=served.status_code, headers=dict(served.headers), body=served.content)

    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.route("**/*", answer)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{ORIGIN}/docs")
        operations = sum(
            len(methods) for methods in client.get("/openapi.json").json()["paths"].values()
        )
        # Locators, not wait_for_function: the page's CSP forbids the eval that would need.
        page.locator(".opblock").nth(operations - 1).wait_for()
        assert page.locator(".opblock").count() == operations
        assert page.locator(".info .title").inner_text().startswith("Viewfinder")
        assert not elsewhere
        assert not errors
    finally:
        context.close()
