"""Engines and sessions: SQLite (WAL) for one machine, PostgreSQL (psycopg 3) by URL.

Everything here runs synchronously: the seeds' async driver URLs are accepted and mapped to the
sync driver of the same database, so a user's existing ``DATABASE_URL`` keeps working."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

SQLITE_BUSY_TIMEOUT_S = 30
DATABASE_FILENAME = "viewfinder.db"

_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
_SQLITE_SCHEMES = frozenset({"sqlite"})


def normalize_url(url: str) -> str:
    """Map any PostgreSQL or SQLite URL spelling onto the driver this package uses.

    ``postgres://``, ``postgresql://``, ``postgresql+asyncpg://``... -> ``postgresql+psycopg://``;
    ``sqlite+aiosqlite:///x`` -> ``sqlite:///x``. Other URLs pass through unchanged."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in _POSTGRES_SCHEMES:
        parsed = _libpq_query(parsed.set(drivername="postgresql+psycopg"))
    elif backend in _SQLITE_SCHEMES:
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


def _libpq_query(url: URL) -> URL:
    # asyncpg spells TLS as ``ssl=require``; libpq (psycopg) only knows ``sslmode``.
    ssl = url.query.get("ssl")
    if ssl is None:
        return url
    query = {k: v for k, v in url.query.items() if k != "ssl"}
    query.setdefault("sslmode", ssl)
    return url.set(query=query)


def sqlite_url_for(data_dir: Path | str) -> str:
    """The default embedded database inside a data directory."""
    return f"sqlite:///{Path(data_dir).resolve() / DATABASE_FILENAME}"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (normalized first), tuned for its backend.

    SQLite gets WAL (readers never block the writer), enforced foreign keys (cascading deletes),
    ``synchronous=NORMAL`` (durable at checkpoints, safe against corruption in WAL mode) and a
    busy timeout so concurrent writers wait instead of failing. Extra ``kwargs`` go to
    ``create_engine``."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _make_sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}
    connect_args.update(kwargs.pop("connect_args", {}))
    if in_memory:
        # Every connection to ":memory:" is a separate empty database: share a single one.
        kwargs.setdefault("poolclass", StaticPool)
    elif url.database is not None and not url.query.get("uri"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas_listener(use_wal=not in_memory))
    return engine


def _sqlite_pragmas_listener(*, use_wal: bool) -> Callable[[Any, ConnectionPoolEntry], None]:
    def set_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if use_wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        finally:
            cursor.close()

    return set_pragmas


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose loaded objects stay readable after commit (they outlive the request)."""
    return sessionmaker(engine, expire_on_commit=False)
