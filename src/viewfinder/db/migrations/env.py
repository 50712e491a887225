"""Alembic environment, configured in code (no alembic.ini).

Online runs use the connection that ``viewfinder.db.migrate`` opened and locked, handed over in
``config.attributes["connection"]``; offline runs (``--sql`` scripts) use ``sqlalchemy.url``."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from viewfinder.db.models import Base, UtcDateTime


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Revision scripts must not import application types, or editing a model would break them.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: later migrations copy-and-move tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline(url: str) -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        url = context.config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("offline migrations need the sqlalchemy.url option")
        run_offline(url)
        return
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run migrations through viewfinder.db.migrate (it opens the connection)")
    run_online(connection)


main()
