"""What the API asks of access control, with short-lived caches so a request costs no query.

Key lookups (valid or not) and "are keys required?" are remembered for ``api_key_cache_s``
(5 s by default): a revoked key, or a key created in another process, takes effect within that
time. Every method here may query the database: call them off the event loop, after trying
the ``cached_*`` variants, which never do."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from viewfinder.access import tokens
from viewfinder.access.keys import MIN_ENV_KEY_LENGTH, KeyStore, Principal, hash_key
from viewfinder.access.ratelimit import RateLimiter
from viewfinder.errors import InvalidInputError
from viewfinder.settings import Settings

SIGNING_KEY_NAME = "session-signing-key"  # its row in server_secrets
# Bounds the cache of looked-up keys (most of them, in an attack, unknown ones).
MAX_CACHED = 10_000


class _Missing:
    pass


MISSING = _Missing()


class _TtlCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> object:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self.clock():
                return MISSING
            return entry[1]

    def put(self, key: str, value: object) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_CACHED:
                self._entries.clear()
            self._entries[key] = (self.clock() + self.ttl_s, value)


@dataclass(frozen=True)
class OpenedSession:
    token: str
    principal: Principal
    expires_at: int  # Unix time
    max_age_s: int


class AccessControl:
    """Keys from VIEWFINDER_API_KEYS and from the database (``store``; None: environment only)."""

    def __init__(
        self,
        settings: Settings,
        store: KeyStore | None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        short = [i + 1 for i, key in enumerate(settings.api_keys) if len(key) < MIN_ENV_KEY_LENGTH]
        if short:
            # The keys themselves never appear in a message (it may end up in a log).
            raise InvalidInputError(
                f"VIEWFINDER_API_KEYS: key number {short[0]} is shorter than "
                f"{MIN_ENV_KEY_LENGTH} characters and could be guessed; use "
                "`viewfinder keys create` or a random string such as "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        self.store = store
        self.session_lifetime_s = settings.session_lifetime_s
        self.wall_clock = wall_clock
        self.requests = RateLimiter(settings.rate_limit_per_minute, clock)
        # Failed authentications per client address: bounds the database lookups of made-up keys.
        self.failures = RateLimiter(settings.rate_limit_per_minute, clock)
        self._env: dict[str, Principal] = {}  # hash -> principal
        for number, key in enumerate(settings.api_keys, start=1):
            digest = hash_key(key)
            self._env[digest] = Principal(
                f"env-{digest[:16]}", f"VIEWFINDER_API_KEYS #{number}", False
            )
        self._env_by_ref = {p.ref: p for p in self._env.values()}
        self._cache = _TtlCache(settings.api_key_cache_s, clock)
        self._secret: bytes | None = None
        self._secret_lock = threading.Lock()

    # --- are keys required? ------------------------------------------------------------------

    def cached_keys_required(self) -> bool | None:
        """True/False when known without a query, else None."""
        if self._env:
            return True
        if self.store is None:
            return False
        cached = self._cache.get("keys-required")
        return None if cached is MISSING else bool(cached)

    def keys_required(self) -> bool:
        """Once any key exists (revoked ones too), every request but a few public ones needs one."""
        known = self.cached_keys_required()
        if known is not None:
            return known
        assert self.store is not None
        required = self.store.any_key()
        self._cache.put("keys-required", required)
        return required

    # --- keys ----------------------------------------------------------------------------------

    def _env_principal(self, digest: str) -> Principal | None:
        found = None
        for known, principal in self._env.items():  # every one compared, in constant time
            if secrets.compare_digest(known, digest):
                found = principal
        return found

    def cached_key(self, key: str) -> Principal | _Missing | None:
        digest = hash_key(key)
        env = self._env_principal(digest)
        if env is not None or self.store is None:
            return env
        cached = self._cache.get(f"key:{digest}")
        return cached if cached is MISSING or cached is None else _as_principal(cached)

    def key(self, key: str) -> Principal | None:
        """The principal of an API key; None for an unknown or revoked one."""
        cached = self.cached_key(key)
        if not isinstance(cached, _Missing):
            return cached
        assert self.store is not None
        principal = self.store.lookup(key)
        self._cache.put(f"key:{hash_key(key)}", principal)
        return principal

    def cached_ref(self, ref: str) -> Principal | _Missing | None:
        if ref.startswith("env-"):
            return self._env_by_ref.get(ref)
        if self.store is None:
            return None
        cached = self._cache.get(f"ref:{ref}")
        return cached if cached is MISSING or cached is None else _as_principal(cached)

    def ref(self, ref: str) -> Principal | None:
        """The principal a session names, if its key still exists and is not revoked."""
        cached = self.cached_ref(ref)
        if not isinstance(cached, _Missing):
            return cached
        assert self.store is not None
        principal = self.store.principal_by_id(int(ref.removeprefix("db-")))
        self._cache.put(f"ref:{ref}", principal)
        return principal

    # --- web sessions --------------------------------------------------------------------------

    def _session_secret(self) -> bytes:
        with self._secret_lock:
            if self._secret is None:
                # In the database, so every replica accepts the cookies the others issued; a
                # process without one (tests, analysis only) signs with a secret of its own.
                self._secret = (
                    self.store.shared_secret(SIGNING_KEY_NAME)
                    if self.store is not None
                    else secrets.token_bytes(32)
                )
            return self._secret

    def open_session(self, principal: Principal) -> OpenedSession:
        max_age = int(self.session_lifetime_s)
        expires_at = int(self.wall_clock()) + max_age
        token = tokens.sign(self._session_secret(), principal.ref, expires_at)
        return OpenedSession(token, principal, expires_at, max_age)

    def session_ref(self, token: str) -> str | None:
        """The key reference of a valid session token (signature and expiry checked)."""
        return tokens.verify(self._session_secret(), token, self.wall_clock())

    def session_ready(self) -> bool:
        """Whether ``session_ref`` can run without a query."""
        return self._secret is not None


def _as_principal(value: object) -> Principal:
    assert isinstance(value, Principal)
    return value
