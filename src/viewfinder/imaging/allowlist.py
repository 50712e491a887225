"""``VIEWFINDER_FETCH_ALLOW_HOSTS``: the hosts and networks that image downloads may reach although
they are not public, each on the ports it names.

An entry is a host name, an IP address or a CIDR network, optionally followed by ``:port``:

- ``images.internal``, ``10.0.0.5``, ``10.0.0.0/8``, ``::1``: ports 80 and 443 only (the ports of
  ``http://`` and ``https://`` URLs without a port), so trusting an intranet image store does not
  also open the admin port or the database beside it on the same machine;
- ``images.internal:8080``, ``10.0.0.0/8:8080``, ``[::1]:8080``: that port only;
- ``images.internal:*``, ``[fd00::/8]:*``: every port.

An IPv6 address or network takes a port only inside brackets (``[::1]:8080``): in a bare ``::1``
the last group is part of the address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Final

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

SETTING: Final = "VIEWFINDER_FETCH_ALLOW_HOSTS"
DEFAULT_PORTS: Final = frozenset({80, 443})


class AllowlistEntryError(ValueError):
    """An entry of the setting cannot be read; the message names it and the accepted forms."""


@dataclass(frozen=True)
class PortSet:
    """The ports an entry allows: some ports, or every port."""

    ports: frozenset[int] = DEFAULT_PORTS
    every: bool = False

    def __contains__(self, port: object) -> bool:
        return self.every or port in self.ports

    def __or__(self, other: PortSet) -> PortSet:
        return PortSet(self.ports | other.ports, self.every or other.every)

    def describe(self) -> str:
        if self.every:
            return "every port"
        numbers = [str(port) for port in sorted(self.ports)]
        if len(numbers) == 1:
            return f"port {numbers[0]}"
        return f"ports {', '.join(numbers[:-1])} and {numbers[-1]}"


@dataclass(frozen=True)
class Allowlist:
    """Trusted hosts (names matched exactly, case-insensitive) and networks, each with its ports."""

    names: dict[str, PortSet] = field(default_factory=dict)
    networks: tuple[tuple[IPNetwork, PortSet], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """The allow-list of ``entries``; ``AllowlistEntryError`` for one that cannot be read."""
        names: dict[str, PortSet] = {}
        networks: list[tuple[IPNetwork, PortSet]] = []
        for entry in entries:
            if not entry.strip():
                continue
            host, ports = _split_entry(entry.strip())
            network = _network(host)
            if network is not None:
                networks.append((network, ports))
            elif _is_host_name(host):
                name = normalise_host(host)
                names[name] = names[name] | ports if name in names else ports
            else:
                raise _entry_error(entry, "is neither a host name nor an IP address or network")
        return cls(names, tuple(networks))

    def allows_name(self, host: str, port: int) -> bool:
        ports = self.names.get(normalise_host(host))
        return ports is not None and port in ports

    def allows_address(self, address: IPAddress, port: int) -> bool:
        return port in self.ports_of_address(address)

    def ports_of_name(self, host: str) -> PortSet | None:
        """The ports allowed for the name ``host``; None when no entry names it."""
        return self.names.get(normalise_host(host))

    def ports_of_address(self, address: IPAddress) -> PortSet:
        """The ports allowed for ``address`` by the networks holding it (none: an empty set)."""
        forms: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        allowed = PortSet(frozenset())
        for network, ports in self.networks:
            if any(form in network for form in forms):
                allowed = allowed | ports
        return allowed


def normalise_host(host: str) -> str:
    return host.lower().rstrip(".")


def _split_entry(entry: str) -> tuple[str, PortSet]:
    """``(host, ports)`` of one entry (see the module's documentation for the forms)."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket:
            raise _entry_error(entry, "opens a bracket it does not close")
        if not rest:
            return host, PortSet()
        if not rest.startswith(":"):
            raise _entry_error(entry, "has text after its closing bracket that is not :port")
        return host, _ports(entry, rest[1:])
    if entry.count(":") == 1:  # host:port; a bare IPv6 address has two colons or more
        host, _, port_text = entry.partition(":")
        if not host:
            raise _entry_error(entry, "has a port but no host")
        return host, _ports(entry, port_text)
    return entry, PortSet()


def _ports(entry: str, text: str) -> PortSet:
    if text == "*":
        return PortSet(frozenset(), every=True)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _entry_error(entry, f"has the port {text!r}; a port is 1 to 65535, or *: every port")
    return PortSet(frozenset({int(text)}))


def _network(host: str) -> IPNetwork | None:
    try:
        return ip_network(host, strict=False)
    except ValueError:
        return None


def _is_host_name(host: str) -> bool:
    labels = normalise_host(host).split(".")
    return all(label and all(c.isalnum() or c in "-_" for c in label) for label in labels)


def _entry_error(entry: str, problem: str) -> AllowlistEntryError:
    return AllowlistEntryError(
        f"{SETTING}: the entry {entry!r} {problem}. Write host, host:port or host:* (a host "
        "name, an IP address or a CIDR network; an IPv6 one in brackets before a port: "
        "[::1]:8080); a host without a port allows ports 80 and 443."
    )
