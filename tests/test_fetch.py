"""Fetching image URLs: a real HTTP server on 127.0.0.1, and the SSRF guard.

Hard rule: no traffic leaves loopback. Every test runs with ``socket.create_connection`` wrapped
so that any attempt to reach anything but 127.0.0.1 is recorded and refused before a packet is
sent; tests that expect a refusal assert that no attempt happened at all.
"""

from __future__ import annotations

import http.server
import io
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from PIL import Image

from viewfinder.errors import FetchError, TooLargeError
from viewfinder.imaging.decode import decode_image
from viewfinder.imaging.fetch import FetchPolicy, fetch_image_bytes, is_public_address
from viewfinder.settings import Settings

LOOPBACK = "127.0.0.1"
MAX_BYTES = 64 * 1024


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (7, 5), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = png_bytes()


# --- the loopback server -------------------------------------------------------------------


@dataclass
class Served:
    port: int
    hosts: list[str] = field(default_factory=list)  # Host headers received, in order

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"


def make_handler(served: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on behaviour, not logs."""

        def do_GET(self) -> None:
            served.hosts.append(self.headers.get("Host", ""))
            path = self.path
            if path == "/image.png":
                self.reply(200, IMAGE)
            elif path.startswith("/sized/"):
                self.reply(200, b"x" * int(path.rsplit("/", 1)[1]))
            elif path == "/missing":
                self.reply(404, b"no such image")
            elif path == "/declared-huge":
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
            elif path == "/streamed-huge":
                self.stream_without_length(chunks=64, chunk=b"x" * 16384, pause_s=0.0)
            elif path == "/slow-start":
                time.sleep(1.5)
                self.reply(200, IMAGE)
            elif path == "/stall-twice":
                time.sleep(0.6)
                self.send_response(200)
                self.send_header("Content-Length", str(len(IMAGE)))
                self.end_headers()
                self.wfile.flush()
                time.sleep(0.6)
                self.wfile.write(IMAGE)
            elif path == "/drip":
                self.stream_without_length(chunks=100, chunk=b"x", pause_s=0.05)
            elif path.startswith("/redirect?to="):
                location = unquote(path.split("=", 1)[1])
                self.redirect(location.replace("{port}", str(served.port)))
            elif path == "/loop":
                self.redirect("/loop")
            elif path == "/redirect-without-location":
                self.reply(302, b"")
            else:
                self.reply(500, b"unexpected path")

        def reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def stream_without_length(self, chunks: int, chunk: bytes, pause_s: float) -> None:
            self.send_response(200)
            self.end_headers()  # HTTP/1.0 without Content-Length: the body ends at close
            try:
                for _ in range(chunks):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(pause_s)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    served = Served(port=0)
    httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), make_handler(served))
    httpd.daemon_threads = True
    served.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connection attempt; any target but 127.0.0.1 is refused before a packet leaves."""
    attempts: list[tuple[str, int]] = []
    real = socket.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append((address[0], address[1]))
        if address[0] != LOOPBACK:
            raise ConnectionRefusedError(f"test guard: {address[0]} is not {LOOPBACK}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    return attempts


def policy(**overrides: Any) -> FetchPolicy:
    values: dict[str, Any] = {
        "max_bytes": MAX_BYTES,
        "timeout_s": 5.0,
        "max_redirects": 3,
        "allow_hosts": (f"{LOOPBACK}:*",),  # the test server's port is chosen at random
    }
    values.update(overrides)
    return FetchPolicy(**values)


@dataclass
class StubResolver:
    """Answers every lookup with fixed addresses and remembers what it was asked."""

    answers: list[str]
    asked: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return list(self.answers)


# --- fetching from the loopback server -----------------------------------------------------


def test_fetches_an_image(server: Served, connections: list[tuple[str, int]]) -> None:
    data = fetch_image_bytes(server.url("/image.png"), policy())
    assert data == IMAGE
    assert decode_image(data, 1000).size == (7, 5)
    assert connections == [(LOOPBACK, server.port)]
    assert server.hosts[-1] == f"{LOOPBACK}:{server.port}"


def test_http_error_status_is_named(server: Served) -> None:
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(server.url("/missing"), policy())
    message = str(raised.value)
    assert message.startswith("Could not download image from URL: ")
    assert "HTTP 404" in message


def test_declared_length_over_the_limit_is_refused_before_reading(server: Served) -> None:
    started = time.perf_counter()
    with pytest.raises(TooLargeError) as raised:
        fetch_image_bytes(server.url("/declared-huge"), policy())
    assert time.perf_counter() - started < 2.0
    assert "1000000000 bytes" in str(raised.value)
    assert "VIEWFINDER_MAX_DOWNLOAD_BYTES" in str(raised.value)


def test_streamed_body_over_the_limit_is_cut_off(server: Served) -> None:
    with pytest.raises(TooLargeError) as raised:
        fetch_image_bytes(server.url("/streamed-huge"), policy())
    assert str(MAX_BYTES) in str(raised.value)


def test_body_of_exactly_the_limit_is_accepted(server: Served) -> None:
    assert len(fetch_image_bytes(server.url(f"/sized/{MAX_BYTES}"), policy())) == MAX_BYTES
    with pytest.raises(TooLargeError):
        fetch_image_bytes(server.url(f"/sized/{MAX_BYTES + 1}"), policy())


def test_slow_server_times_out(server: Served) -> None:
    started = time.perf_counter()
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(server.url("/slow-start"), policy(timeout_s=0.3))
    assert time.perf_counter() - started < 1.0
    assert "VIEWFINDER_FETCH_TIMEOUT_S" in str(raised.value)


def test_dripping_body_cannot_outlast_the_total_timeout(server: Served) -> None:
    # One byte every 50 ms never trips a per-read timeout; the total limit must still hold.
    started = time.perf_counter()
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(server.url("/drip"), policy(timeout_s=0.5))
    assert time.perf_counter() - started < 1.2
    assert "within 0.5 s" in str(raised.value)


def test_each_wait_is_cut_short_by_the_total_timeout(server: Served) -> None:
    # Two waits of 0.6 s each stay under a 1 s per-read timeout; together they exceed 1 s.
    started = time.perf_counter()
    with pytest.raises(FetchError, match="within 1 s"):
        fetch_image_bytes(server.url("/stall-twice"), policy(timeout_s=1.0))
    assert time.perf_counter() - started < 1.15


@pytest.mark.parametrize("location", ["/image.png", "http://127.0.0.1:{port}/image.png"])
def test_redirect_on_the_same_server_is_followed(
    server: Served, connections: list[tuple[str, int]], location: str
) -> None:
    assert fetch_image_bytes(server.url(f"/redirect?to={location}"), policy()) == IMAGE
    assert {host for host, _ in connections} == {LOOPBACK}


def test_redirect_to_another_loopback_address_is_refused_before_connecting(
    server: Served, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(server.url("/redirect?to=http://127.0.0.2:{port}/image.png"), policy())
    message = str(raised.value)
    assert "127.0.0.2 is not a public address" in message
    assert "VIEWFINDER_FETCH_ALLOW_HOSTS" in message
    assert connections == [(LOOPBACK, server.port)]


def test_redirect_to_a_file_url_is_refused(
    server: Served, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(server.url("/redirect?to=file:///etc/passwd"), policy())
    assert "file: URL" in str(raised.value)
    assert connections == [(LOOPBACK, server.port)]


def test_redirect_limit(server: Served) -> None:
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(server.url("/loop"), policy(max_redirects=2))
    assert "more than 2 times" in str(raised.value)
    with pytest.raises(FetchError):
        fetch_image_bytes(server.url("/redirect?to=/image.png"), policy(max_redirects=0))
    assert fetch_image_bytes(server.url("/redirect?to=/image.png"), policy(max_redirects=1))


def test_redirect_without_location(server: Served) -> None:
    with pytest.raises(FetchError, match="without a Location"):
        fetch_image_bytes(server.url("/redirect-without-location"), policy())


def test_loopback_is_refused_unless_allowed(
    server: Served, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(FetchError, match="not a public address"):
        fetch_image_bytes(server.url("/image.png"), policy(allow_hosts=()))
    assert connections == []


def test_allowed_by_network(server: Served) -> None:
    assert fetch_image_bytes(server.url("/image.png"), policy(allow_hosts=("127.0.0.0/8:*",)))


def test_proxy_environment_is_ignored(
    server: Served, connections: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://10.9.9.9:3128")
    assert fetch_image_bytes(server.url("/image.png"), policy()) == IMAGE
    assert connections == [(LOOPBACK, server.port)]


# --- hostnames through a stubbed resolver ---------------------------------------------------


def test_allowed_hostname_resolving_to_loopback_is_fetched(
    server: Served, connections: list[tuple[str, int]]
) -> None:
    resolver = StubResolver([LOOPBACK])
    url = f"http://Images.Test:{server.port}/image.png"
    allowed = (f"images.test:{server.port}",)
    data = fetch_image_bytes(url, policy(allow_hosts=allowed, resolver=resolver))
    assert data == IMAGE
    assert resolver.asked == [("images.test", server.port)]
    assert connections == [(LOOPBACK, server.port)]
    assert server.hosts[-1] == f"images.test:{server.port}"


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["127.0.0.1"],
        ["0.0.0.0"],
        ["::1"],
        ["fd00::1"],
        ["fe80::1"],
        ["::ffff:127.0.0.1"],
        ["::ffff:10.0.0.1"],
        ["100.64.0.1"],
        ["224.0.0.1"],
        ["64:ff9b::a9fe:a9fe"],  # NAT64 form of 169.254.169.254
        ["2002:7f00:1::"],  # 6to4 form of 127.0.0.1
        ["93.184.216.34", "10.0.0.5"],  # one bad answer spoils the lot
        ["2606:4700:4700::1111", "::1"],
    ],
)
def test_hostname_resolving_to_internal_addresses_is_refused(
    answers: list[str], connections: list[tuple[str, int]]
) -> None:
    resolver = StubResolver(answers)
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(
            "http://images.example/cat.png", policy(allow_hosts=(), resolver=resolver)
        )
    assert "not a public address" in str(raised.value)
    assert resolver.asked == [("images.example", 80)]
    assert connections == []


def test_allowed_address_does_not_allow_its_neighbours(connections: list[tuple[str, int]]) -> None:
    resolver = StubResolver(["127.0.0.2"])
    with pytest.raises(FetchError, match=r"resolves to 127\.0\.0\.2, which is not a public"):
        fetch_image_bytes("http://images.example/cat.png", policy(resolver=resolver))
    assert connections == []


def test_public_answer_is_connected_to_exactly_as_checked(
    connections: list[tuple[str, int]],
) -> None:
    # The guard fixture stops the connection to the public address: no packet leaves, but the
    # attempt shows that the address checked is the address connected to, with no second lookup.
    resolver = StubResolver(["93.184.216.34"])
    with pytest.raises(FetchError, match="could not connect"):
        fetch_image_bytes("https://images.example/cat.png", policy(resolver=resolver))
    assert resolver.asked == [("images.example", 443)]
    assert connections == [("93.184.216.34", 443)]


def test_unresolvable_host(connections: list[tuple[str, int]]) -> None:
    def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(FetchError, match="could not be resolved"):
        fetch_image_bytes("http://no-such-host.invalid/x.png", policy(resolver=fail))
    assert connections == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "file: URL"),
        ("ftp://example.com/cat.png", "ftp: URL"),
        ("gopher://example.com/", "gopher: URL"),
        ("data:image/png;base64,iVBORw0KGgo=", "data: URL"),
        ("example.com/cat.png", "without http"),
        ("http://user:secret@example.com/cat.png", "credentials"),
        ("http:///cat.png", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://127.0.0.2/", "127.0.0.2 is not a public address"),
        ("http://[::1]:8080/", "::1 is not a public address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is not a public"),
    ],
)
def test_refused_urls_never_resolve_or_connect(
    url: str, reason: str, connections: list[tuple[str, int]]
) -> None:
    resolver = StubResolver(["93.184.216.34"])
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(url, policy(resolver=resolver))
    message = str(raised.value)
    assert message.startswith("Could not download image from URL: ")
    assert reason in message
    assert "secret" not in message
    assert resolver.asked == []
    assert connections == []


def test_self_signed_certificate_is_refused(
    tmp_path: Path, connections: list[tuple[str, int]]
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a throwaway certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=images.test", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), make_handler(Served(port=0)))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"https://images.test:{httpd.server_address[1]}/image.png"
        resolver = StubResolver([LOOPBACK])
        with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch_image_bytes(url, policy(allow_hosts=("images.test:*",), resolver=resolver))
        assert connections == [(LOOPBACK, httpd.server_address[1])]
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- the address rules and the policy ------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("127.0.0.2", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("198.18.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::127.0.0.1", False),
        ("2001:db8::1", False),
        ("ff02::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ip_address(address)) is public


def test_policy_from_settings() -> None:
    settings = Settings(
        max_download_bytes=1234,
        fetch_timeout_s=2.5,
        fetch_max_redirects=1,
        fetch_allow_hosts="images.test, 10.0.0.0/8",
    )
    assert FetchPolicy.from_settings(settings) == FetchPolicy(
        max_bytes=1234,
        timeout_s=2.5,
        max_redirects=1,
        allow_hosts=("images.test", "10.0.0.0/8"),
    )


# --- ports of allowed hosts ----------------------------------------------------------------


def test_an_allowed_host_is_allowed_on_the_default_ports_only(
    server: Served, connections: list[tuple[str, int]]
) -> None:
    """An entry without a port opened every port of the host (an admin port on 127.0.0.1 as
    well as an image store on port 80); it stands for ports 80 and 443 only."""
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes(server.url("/image.png"), policy(allow_hosts=(LOOPBACK,)))
    message = str(raised.value)
    assert message.startswith("Could not download image from URL: ")
    assert f"only on ports 80 and 443, not on port {server.port}" in message
    assert f"add {LOOPBACK}:{server.port} to VIEWFINDER_FETCH_ALLOW_HOSTS" in message
    assert connections == []


@pytest.mark.parametrize("entry", ["127.0.0.1:{port}", "127.0.0.1:*", "127.0.0.0/8:{port}"])
def test_host_port_and_host_star_entries_allow_that_port_or_every_port(
    server: Served, entry: str, connections: list[tuple[str, int]]
) -> None:
    allowed = entry.replace("{port}", str(server.port))
    assert fetch_image_bytes(server.url("/image.png"), policy(allow_hosts=(allowed,))) == IMAGE
    assert connections == [(LOOPBACK, server.port)]


def test_a_redirect_to_another_port_of_an_allowed_host_is_refused(
    server: Served, connections: list[tuple[str, int]]
) -> None:
    url = server.url("/redirect?to=http://127.0.0.1:1/image.png")
    with pytest.raises(FetchError, match="not on port 1;"):
        fetch_image_bytes(url, policy(allow_hosts=(f"{LOOPBACK}:{server.port}",)))
    assert connections == [(LOOPBACK, server.port)]


def test_an_allowed_name_is_allowed_on_its_port_only(
    server: Served, connections: list[tuple[str, int]]
) -> None:
    url = f"http://images.test:{server.port}/image.png"
    allowed = policy(allow_hosts=(f"images.test:{server.port}",), resolver=StubResolver([LOOPBACK]))
    assert fetch_image_bytes(url, allowed) == IMAGE
    default_ports = policy(allow_hosts=("images.test",), resolver=StubResolver([LOOPBACK]))
    with pytest.raises(FetchError, match=f"images.test is allowed by .* not on port {server.port}"):
        fetch_image_bytes(url, default_ports)
    assert connections == [(LOOPBACK, server.port)]


@pytest.mark.parametrize(
    ("entry", "allowed"),
    [
        ("[::1]:8080", True),
        ("[::1]:*", True),
        ("[::/127]:8080", True),
        ("[::1]:8081", False),
        ("[::1]", False),  # ports 80 and 443
        ("::1", False),  # a bare IPv6 address has no port: 80 and 443
        ("::/127", False),
    ],
)
def test_ipv6_entries_take_their_port_after_the_brackets(
    entry: str, allowed: bool, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(FetchError) as raised:
        fetch_image_bytes("http://[::1]:8080/image.png", policy(allow_hosts=(entry,)))
    if allowed:  # let through by the allow-list: the test's own guard stops the connection
        assert "could not connect" in str(raised.value)
        assert connections == [("::1", 8080)]
    else:
        assert "not on port 8080;" in str(raised.value)
        assert connections == []


@pytest.mark.parametrize(
    "entry", ["127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:65536", "[::1", "[::1]8080", ":80"]
)
def test_malformed_allow_list_entries_fail_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match="VIEWFINDER_FETCH_ALLOW_HOSTS"):
        Settings(fetch_allow_hosts=entry)
