"""Web session tokens: ``v1.<key ref>.<expiry>.<signature>``, HMAC-SHA256 signed.

The cookie never holds the key itself, only which key it was opened with and until when; the
key is looked up again on every use, so revoking it ends its sessions as well."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

VERSION = "v1"
_REF = re.compile(r"^(db-[0-9]+|env-[0-9a-f]{16})$")


def _signature(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(secret: bytes, ref: str, expires_at: int) -> str:
    """A token for the key ``ref``, valid until the Unix time ``expires_at``."""
    if not _REF.match(ref):
        raise ValueError(f"not a key reference: {ref!r}")
    payload = f"{VERSION}.{ref}.{expires_at}"
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: bytes, token: str, now: float) -> str | None:
    """The key reference of a well-signed, unexpired token; None for anything else."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != VERSION or not parts[2].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_signature(secret, payload), parts[3]):
        return None
    if int(parts[2]) <= now or not _REF.match(parts[1]):
        return None
    return parts[1]
