"""Whether ``serve`` may start: on an address other machines can reach, only with a key, or when
VIEWFINDER_ALLOW_ANONYMOUS=1 says that anonymous access is intended."""

from __future__ import annotations

import ipaddress

from viewfinder.access.keys import key_store_for
from viewfinder.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` exposes the server to this machine only. Host names other than
    ``localhost`` count as exposed (what they resolve to can change)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def anonymous_exposure(settings: Settings, host: str) -> str | None:
    """Why serving on ``host`` is refused, or None when it may start. Looks at the database's
    keys only when the environment does not settle it."""
    if is_loopback(host) or settings.allow_anonymous or settings.api_keys:
        return None
    with key_store_for(settings) as store:
        if store.any_key():
            return None
    return (
        f"refusing to serve on {host}, an address other machines can reach, without an API key: "
        "anyone who reaches it could read, change and delete the library. Create a key with "
        "`viewfinder keys create` (or set VIEWFINDER_API_KEYS), serve on 127.0.0.1, or set "
        "VIEWFINDER_ALLOW_ANONYMOUS=1 if anonymous access is intended (a trusted network)."
    )
