"""Downloading an image from a user-supplied URL without letting the URL reach inside the network.

A URL from a request must not become a way to reach this machine or its neighbours (SSRF): the
cloud metadata service at 169.254.169.254, an admin port on 127.0.0.1, a database on 10.0.0.5.
So every connection, including every redirect hop, goes through ``_GuardedBackend``, which
resolves the host once, refuses the connection if any of its addresses is not public, and then
connects to the address it checked: a DNS answer that changes between check and connect (DNS
rebinding) cannot slip through, because there is no second lookup. TLS still verifies the
certificate against the host name, which httpcore passes as ``server_hostname``.

httpcore is used directly rather than httpx so that the network backend can be replaced and
nothing reads proxy settings from the environment (a proxy would make the address check moot).

Hosts, addresses and networks named in ``VIEWFINDER_FETCH_ALLOW_HOSTS`` are trusted (tests, an
intranet image store), each on the ports its entry names (80 and 443 unless it names others; see
``allowlist``), checked before any connection. The whole download, redirects included, must
finish within ``timeout_s``; name resolution uses the system resolver, whose own timeout applies
to it.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Final
from urllib.parse import quote, urljoin, urlsplit

import httpcore

from viewfinder.errors import FetchError, TooLargeError
from viewfinder.imaging.allowlist import SETTING, Allowlist, IPAddress, IPNetwork, normalise_host
from viewfinder.settings import Settings

Resolver = Callable[[str, int], list[str]]

_PREFIX: Final = "Could not download image from URL"
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_USER_AGENT: Final = b"Viewfinder image fetcher"
_MAX_URL_IN_MESSAGE: Final = 200

# Addresses that are not on the public internet, listed explicitly rather than trusting
# ``is_global`` alone, whose tables differ between Python releases.
_NON_PUBLIC_V4: Final = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches localhost on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_NON_PUBLIC_V6: Final = tuple(
    IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback, IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32",
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local
        "ff00::/8",  # multicast
    )
)
_NAT64: Final = IPv6Network("64:ff9b::/96")


def resolve_with_getaddrinfo(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (both IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one download. ``resolver`` maps (host, port) to IP address strings."""

    max_bytes: int
    timeout_s: float
    max_redirects: int
    allow_hosts: tuple[str, ...] = ()
    resolver: Resolver = field(default=resolve_with_getaddrinfo, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            max_bytes=settings.max_download_bytes,
            timeout_s=settings.fetch_timeout_s,
            max_redirects=settings.fetch_max_redirects,
            allow_hosts=tuple(settings.fetch_allow_hosts),
        )


def fetch_image_bytes(url: str, policy: FetchPolicy) -> bytes:
    """The body of ``url`` after at most ``policy.max_redirects`` redirects.

    Raises ``FetchError`` for refused, unreachable, slow or failing URLs and ``TooLargeError``
    for a body over ``policy.max_bytes``.
    """
    deadline = time.monotonic() + policy.timeout_s
    guard = AddressGuard(policy.resolver, Allowlist.parse(policy.allow_hosts))
    backend = _GuardedBackend(guard, deadline)
    with (
        _httpcore_errors_as_fetch_errors(url, policy),
        httpcore.ConnectionPool(network_backend=backend, retries=0, http2=False) as pool,
    ):
        current = url
        for _ in range(policy.max_redirects + 1):
            target = _Target.parse(current)
            body, location = _get(pool, target, policy)
            if location is None:
                return body
            current = urljoin(current, location)
    raise FetchError(
        f"{_PREFIX}: {_shown(url)} redirects more than {policy.max_redirects} times "
        "(VIEWFINDER_FETCH_MAX_REDIRECTS); use the final URL of the image."
    )


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet (IPv4 forms embedded in IPv6 included)."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        blocked: tuple[IPNetwork, ...] = _NON_PUBLIC_V6
    else:
        blocked = _NON_PUBLIC_V4
    if any(address in network for network in blocked):
        return False
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address that an IPv4-mapped, 6to4 or NAT64 address leads to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class AddressGuard:
    """Resolves a host and decides whether connecting to it is allowed."""

    resolver: Resolver
    allowlist: Allowlist

    def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to; ``FetchError`` if any of them is off limits (on
        ``port``, the port the connection would be made to)."""
        literal = _parse_ip(host)
        addresses = [literal] if literal is not None else self._resolve(host, port)
        if self.allowlist.allows_name(host, port):
            return addresses
        for address in addresses:
            if is_public_address(address) or self.allowlist.allows_address(address, port):
                continue
            where = host if literal is not None else f"{host} resolves to {address}, which"
            ports = self.allowlist.ports_of_name(host)
            if ports is not None:
                where = host  # the name is trusted, on other ports
            else:
                ports = self.allowlist.ports_of_address(address)
            if ports.every or ports.ports:
                entry = f"[{host}]" if ":" in host else host
                raise FetchError(
                    f"{_PREFIX}: {where} is allowed by {SETTING} only on {ports.describe()}, "
                    f"not on port {port}; add {entry}:{port} to {SETTING} to allow this port "
                    f"({entry}:* allows every port)."
                )
            raise FetchError(
                f"{_PREFIX}: {where} is not a public address; downloads from loopback, "
                "private, link-local and other internal networks are refused. If this host "
                f"is trusted, add it to {SETTING} (host, host:port or host:*)."
            )
        return addresses

    def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            answers = self.resolver(host, port)
        except (OSError, UnicodeError) as err:
            raise FetchError(
                f"{_PREFIX}: the host {host!r} could not be resolved ({err}); check the URL."
            ) from None
        addresses = [_parse_ip(answer) for answer in answers]
        valid = [address for address in addresses if address is not None]
        if not valid or len(valid) != len(addresses):
            raise FetchError(f"{_PREFIX}: the host {host!r} has no usable address; check the URL.")
        return valid


class _GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to checked addresses and within a deadline."""

    def __init__(self, guard: AddressGuard, deadline: float) -> None:
        self._guard = guard
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._guard.checked_addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(
                    str(address),
                    port,
                    timeout=_clamp(timeout, self._deadline, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                failure = err
                continue
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None  # checked_addresses never returns an empty list
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise FetchError(f"{_PREFIX}: Unix sockets are never used for downloads.")


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write ends by the download's deadline.

    A per-read timeout alone lets a server drip one byte just before each timeout forever.
    """

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, self._deadline, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(
            ssl_context,
            server_hostname=server_hostname,
            timeout=_clamp(timeout, self._deadline, httpcore.ConnectTimeout),
        )
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


def _clamp(timeout: float | None, deadline: float, expired: type[Exception]) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("the download's time limit has passed")
    return remaining if timeout is None else min(timeout, remaining)


@dataclass(frozen=True)
class _Target:
    """One validated http(s) URL, split the way httpcore needs it."""

    shown: str
    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, url: str) -> _Target:
        shown = _shown(url)
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise FetchError(f"{_PREFIX}: {shown} is not a valid URL.") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            what = f"a {scheme}: URL" if scheme else "a URL without http:// or https://"
            raise FetchError(f"{_PREFIX}: {shown} is {what}; only http and https URLs are fetched.")
        if parts.username is not None or parts.password is not None:
            raise FetchError(
                f"{_PREFIX}: URLs with credentials (user:password@) are refused; "
                "use a URL that needs no login."
            )
        if not parts.hostname:
            raise FetchError(f"{_PREFIX}: {shown} has no host name.")
        try:
            host = normalise_host(parts.hostname.encode("idna").decode("ascii"))
        except UnicodeError:
            raise FetchError(f"{_PREFIX}: {shown} has an invalid host name.") from None
        # Keep existing %-escapes and RFC 3986 delimiters; escape spaces and non-ASCII.
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
        if parts.query:
            path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~?")
        return cls(shown, scheme, host, port, path)

    def httpcore_url(self) -> httpcore.URL:
        return httpcore.URL(scheme=self.scheme, host=self.host, port=self.port, target=self.path)

    def host_header(self) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port is None else f"{host}:{self.port}").encode("ascii")


def _get(
    pool: httpcore.ConnectionPool, target: _Target, policy: FetchPolicy
) -> tuple[bytes, str | None]:
    """``(body, None)`` for a 2xx answer, ``(b"", location)`` for a redirect."""
    headers = [
        (b"Host", target.host_header()),
        (b"User-Agent", _USER_AGENT),
        (b"Accept", b"image/*, */*;q=0.5"),
        (b"Accept-Encoding", b"identity"),  # we do not decode gzip; ask for plain bytes
    ]
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), policy.timeout_s)
    with pool.stream(
        "GET", target.httpcore_url(), headers=headers, extensions={"timeout": timeouts}
    ) as response:
        status = response.status
        if status in _REDIRECT_STATUSES:
            location = _header(response, b"location")
            if not location:
                raise FetchError(
                    f"{_PREFIX}: {target.shown} answered a redirect (HTTP {status}) "
                    "without a Location; use the final URL of the image."
                )
            return b"", location
        if not 200 <= status < 300:
            reason = response.extensions.get("reason_phrase", b"").decode("latin-1")
            raise FetchError(
                f"{_PREFIX}: the server answered HTTP {status} {reason}".rstrip()
                + f" for {target.shown}; check that the URL is right and publicly readable."
            )
        _check_declared_length(response, target, policy.max_bytes)
        return _read_capped(response, target, policy.max_bytes), None


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def _check_declared_length(response: httpcore.Response, target: _Target, limit: int) -> None:
    declared = _header(response, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(target, f"is {int(declared)} bytes", limit)


def _read_capped(response: httpcore.Response, target: _Target, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(target, "is larger than that", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(target: _Target, size: str, limit: int) -> TooLargeError:
    return TooLargeError(
        f"{_PREFIX}: downloads are limited to {limit} bytes and the image at {target.shown} "
        f"{size}. Send a smaller image or raise VIEWFINDER_MAX_DOWNLOAD_BYTES."
    )


@contextmanager
def _httpcore_errors_as_fetch_errors(url: str, policy: FetchPolicy) -> Iterator[None]:
    shown = _shown(url)
    try:
        yield
    except httpcore.TimeoutException:
        raise FetchError(
            f"{_PREFIX}: {shown} did not finish within {policy.timeout_s:g} s "
            "(VIEWFINDER_FETCH_TIMEOUT_S); try again later or use a faster host."
        ) from None
    except httpcore.ConnectError as err:
        raise FetchError(f"{_PREFIX}: could not connect for {shown} ({err}).") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as err:
        raise FetchError(
            f"{_PREFIX}: the connection for {shown} failed ({err or type(err).__name__})."
        ) from None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ip_address(text.strip("[]"))
    except ValueError:
        return None


def _shown(url: str) -> str:
    url = url.strip()
    return url if len(url) <= _MAX_URL_IN_MESSAGE else url[:_MAX_URL_IN_MESSAGE] + "..."
