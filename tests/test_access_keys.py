"""API keys in the database (SQLite and PostgreSQL), the caches and limits in front of them,
session tokens, ``viewfinder keys`` and the refusal of ``serve`` to expose an open server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from viewfinder.access import tokens
from viewfinder.access.control import AccessControl
from viewfinder.access.exposure import anonymous_exposure, is_loopback
from viewfinder.access.keys import KeyStore, hash_key, key_store_for
from viewfinder.access.ratelimit import RateLimiter
from viewfinder.cli.main import app
from viewfinder.db import api_keys as db
from viewfinder.errors import ConflictError, InvalidInputError, NotFoundError
from viewfinder.settings import Settings

KEY_PATTERN = re.compile(r"^vf_[A-Za-z0-9_-]{43}$")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the key store, on both backends -----------------------------------------------------------


def test_keys_are_stored_hashed_and_looked_up(sessions: sessionmaker[Session]) -> None:
    store = KeyStore(sessions)
    assert not store.any_key()
    info, key = store.create("laptop")
    assert KEY_PATTERN.match(key)
    assert info.prefix == key[:11]
    with sessions() as s:
        row = db.get_key(s, info.id)
        assert row is not None
        assert row.key_hash == hash_key(key)
        assert key not in (row.key_hash, row.prefix, row.name)
    principal = store.lookup(key)
    assert principal is not None
    assert (principal.ref, principal.name, principal.read_only) == (
        f"db-{info.id}",
        "laptop",
        False,
    )
    assert store.lookup(key + "x") is None
    assert store.list()[0].last_used_at is not None  # the lookup was recorded
    assert store.any_key()


def test_revoking_by_id_or_prefix(sessions: sessionmaker[Session]) -> None:
    store = KeyStore(sessions)
    first, first_key = store.create("one")
    second, _ = store.create("two", read_only=True)
    with pytest.raises(InvalidInputError, match="several keys"):
        store.revoke("vf_")
    with pytest.raises(NotFoundError):
        store.revoke("vf_nothing-like-this")
    revoked = store.revoke(first.prefix)
    assert revoked.id == first.id
    assert revoked.revoked_at is not None
    assert store.lookup(first_key) is None
    assert store.principal_by_id(first.id) is None
    with pytest.raises(ConflictError, match="already revoked"):
        store.revoke(str(first.id))
    assert store.revoke(str(second.id)).read_only is True
    # Revoked keys still count: revoking every key never opens the API to anyone.
    assert store.any_key()
    assert [k.revoked_at is not None for k in store.list()] == [True, True]


def test_every_process_gets_the_same_secret(sessions: sessionmaker[Session]) -> None:
    first = KeyStore(sessions).shared_secret("session-signing-key")
    assert len(first) == 32
    assert KeyStore(sessions).shared_secret("session-signing-key") == first
    assert KeyStore(sessions).shared_secret("another") != first


# --- caches, tokens, limits --------------------------------------------------------------------


def test_lookups_are_cached_for_a_few_seconds(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store = KeyStore(sessions)
    clock = Clock()
    settings = Settings(data_dir=tmp_path, api_key_cache_s=5)
    access = AccessControl(settings, store, clock=clock)
    assert access.keys_required() is False
    info, key = store.create("k")
    assert access.cached_keys_required() is False  # still the cached answer
    clock.now += 5
    assert access.keys_required() is True
    principal = access.key(key)
    assert principal is not None
    session = access.session_ref(access.open_session(principal).token)
    assert session == principal.ref
    assert access.ref(session) == principal
    store.revoke(str(info.id))
    assert access.cached_key(key) == principal  # at most the cache time more...
    assert access.ref(session) == principal
    clock.now += 5.01
    assert access.key(key) is None  # ...then refused, and so is its session
    assert access.ref(session) is None


def test_session_tokens_are_signed_and_expire() -> None:
    secret = b"s" * 32
    token = tokens.sign(secret, "db-12", 2_000)
    assert tokens.verify(secret, token, now=1_999) == "db-12"
    assert tokens.verify(secret, token, now=2_000) is None  # expired
    assert tokens.verify(b"t" * 32, token, now=0) is None  # another deployment's
    assert tokens.verify(secret, token.replace("db-12", "db-13"), now=0) is None
    assert tokens.verify(secret, "garbage", now=0) is None
    with pytest.raises(ValueError, match="not a key reference"):
        tokens.sign(secret, "db-1.2", 10)


def test_rate_limiter_refills_per_client() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=2, clock=clock)
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(30.0)  # one request per 30 s at 2/min
    assert limiter.take("b") == 0.0
    clock.now += 30
    assert limiter.wait_s("a") == 0.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert RateLimiter(per_minute=0, clock=clock).take("a") == 0.0  # 0: no limit


def test_short_environment_keys_are_refused_without_being_shown(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_keys=["a-long-enough-key-for-this", "short1"])
    with pytest.raises(InvalidInputError, match="key number 2") as refused:
        AccessControl(settings, None)
    assert "short1" not in str(refused.value)


# --- serving on an exposed address -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("photos.example.com", False),
        ("", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serving_exposed_needs_a_key_or_a_stated_intent(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    for host in ("127.0.0.1", "::1", "localhost"):
        assert anonymous_exposure(settings, host) is None
    refusal = anonymous_exposure(settings, "0.0.0.0")
    assert refusal is not None
    for hint in ("VIEWFINDER_ALLOW_ANONYMOUS=1", "viewfinder keys create", "VIEWFINDER_API_KEYS"):
        assert hint in refusal
    allowed = settings.model_copy(update={"allow_anonymous": True})
    assert anonymous_exposure(allowed, "0.0.0.0") is None
    with_env_key = settings.model_copy(update={"api_keys": ["a-long-enough-key-for-this"]})
    assert anonymous_exposure(with_env_key, "0.0.0.0") is None
    with key_store_for(settings) as store:
        store.create("server")
    assert anonymous_exposure(settings, "0.0.0.0") is None


def test_serve_refuses_before_binding(tmp_path: Path) -> None:
    env = {"VIEWFINDER_DATA_DIR": str(tmp_path / "data"), "VIEWFINDER_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"], env=env)
    assert result.exit_code == 2, result.output
    assert "refusing to serve on 0.0.0.0" in result.stderr
    assert "VIEWFINDER_ALLOW_ANONYMOUS=1" in result.stderr


# --- viewfinder keys ---------------------------------------------------------------------------


def test_keys_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"VIEWFINDER_DATA_DIR": str(tmp_path / "data"), "VIEWFINDER_LOG_LEVEL": "WARNING"}

    def keys(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["keys", *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = keys("list")
    assert code == 0
    assert "no keys" in out
    code, full, err = keys("create", "--name", "laptop")
    assert code == 0
    assert KEY_PATTERN.match(full.strip()), full  # stdout is the key alone: KEY=$(...) works
    assert "not shown again" in err
    code, viewer, _ = keys("create", "--name", "viewer", "--read-only")
    assert code == 0

    code, listing, _ = keys("list")
    assert code == 0
    lines = listing.splitlines()
    assert len(lines) == 3
    assert full.strip()[:11] in lines[1]
    assert "laptop" in lines[1]
    assert "full" in lines[1]
    assert "read-only" in lines[2]
    assert full.strip() not in listing
    assert viewer.strip() not in listing

    code, _, err = keys("revoke", "vf_")
    assert code == 1
    assert "several keys" in err
    code, out, _ = keys("revoke", full.strip()[:11])
    assert code == 0
    assert "revoked key 1" in out
    code, _, err = keys("revoke", "1")
    assert code == 1
    assert "already revoked" in err
    code, listing, _ = keys("list")
    assert "revoked" in listing.splitlines()[1]
    assert "active" in listing.splitlines()[2]

    settings = Settings(data_dir=tmp_path / "data")
    with key_store_for(settings) as store:
        assert store.lookup(full.strip()) is None
        principal = store.lookup(viewer.strip())
        assert principal is not None
        assert principal.read_only
