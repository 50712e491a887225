"""Schema migrations: Alembic driven from code, with the revision scripts shipped in the package.

``upgrade`` runs at service start and from ``viewfinder db upgrade``. Several processes may call
it at once (a server and its workers starting together): one migrates while the others wait on a
lock, then find the schema at head and do nothing."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from viewfinder.db.engine import make_engine, normalize_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any fixed signed 64-bit number works; this one is the first 8 bytes of
# sha256("viewfinder.db.migrate"), so it will not collide with another application's lock.
_PG_MIGRATION_LOCK_KEY = -0x14C9_ED79_BE1D_2B92
# Alembic's ``context`` and ``op`` are module-global proxies: two threads of one process must not
# run migrations at the same time, whatever the database lock does.
_PROCESS_LOCK = threading.Lock()


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; no alembic.ini involved."""
    config = Config(output_buffer=io.StringIO())
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser treats "%" as interpolation: escape it (URL-encoded passwords have it).
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision the packaged scripts define."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; ``None`` for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the newest); a no-op when already there."""
    with _PROCESS_LOCK, _engine(engine_or_url) as engine, engine.connect() as connection:
        with _migration_lock(connection):
            command.upgrade(alembic_config(connection), revision)
            reached = MigrationContext.configure(connection).get_current_revision()
        log.info("database schema at revision %s", reached)


def upgrade_sql(url: str, revision: str = "head") -> str:
    """The SQL that ``upgrade`` would run on an empty database of ``url``'s kind, for DBAs."""
    config = alembic_config(url=url)
    with _PROCESS_LOCK:
        command.upgrade(config, revision, sql=True)
    buffer = config.output_buffer
    assert isinstance(buffer, io.StringIO)
    return buffer.getvalue()


@contextmanager
def _engine(engine_or_url: Engine | str) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Serialize migrations across processes and commit them as one transaction."""
    if connection.dialect.name == "postgresql":
        # Transaction-scoped: released by the commit that publishes the new schema.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
        )
        yield
        connection.commit()
        return
    if connection.dialect.name != "sqlite":
        yield
        connection.commit()
        return
    # SQLite: a batch migration recreates tables, and dropping a table with enforced foreign keys
    # would cascade-delete its children, so they are switched off for the migration (they cannot
    # be switched inside a transaction) and checked before commit, as the SQLite docs prescribe.
    # BEGIN IMMEDIATE takes the write lock up front: a concurrent migrator waits (busy timeout)
    # and then sees the committed revision.
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise RuntimeError(f"migration left foreign key violations: {violations[:5]}")
        connection.commit()
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
