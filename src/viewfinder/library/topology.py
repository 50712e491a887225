"""Which processes may share a library, decided from the settings before anything starts.

The embedded default is one process: SQLite, and a vector index in that process's memory. More
processes (API replicas, ``viewfinder worker``) need what they share to live outside any one of
them: PostgreSQL for metadata and the queue, and pgvector or Qdrant for vectors. Otherwise a
worker's embeddings would land in an index no server searches (two servers on one PostgreSQL with
the embedded index once found 1 and 19 of 20 uploads: each kept its own)."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from viewfinder.db.engine import normalize_url
from viewfinder.errors import InvalidInputError
from viewfinder.library.processing import EMBED_TASK
from viewfinder.settings import Settings


def database_backend(settings: Settings) -> str:
    """``sqlite`` or ``postgresql``: the embedded SQLite unless a URL says otherwise."""
    if settings.database_url is None:
        return "sqlite"
    return make_url(normalize_url(settings.database_url)).get_backend_name()


def check_worker_database(settings: Settings) -> None:
    """Refuse, with what to change, a worker process on the single-process embedded database
    (checked before anything is opened)."""
    if database_backend(settings) == "sqlite":
        raise InvalidInputError(
            "viewfinder worker needs a database every process shares: SQLite is the embedded "
            "single-process default, where `viewfinder serve`'s own worker threads do the "
            "background work (VIEWFINDER_WORKER_THREADS). Set VIEWFINDER_DATABASE_URL to a "
            "PostgreSQL database to run separate workers"
        )


def check_worker_kinds(settings: Settings, kinds: list[str]) -> None:
    """Refuse a worker whose results no server would see."""
    if EMBED_TASK in kinds and settings.vector_store_kind == "embedded":
        raise InvalidInputError(
            "a worker that embeds images needs a vector store every process shares: the "
            "embedded index lives in one process's memory, and no server would see this "
            "worker's vectors. Set VIEWFINDER_VECTOR_STORE=pgvector (or qdrant with "
            "QDRANT_URL), or leave embedding to the server (--kinds without embed)"
        )


def shared_store_warning(settings: Settings) -> str | None:
    """Why several servers on this configuration would disagree, or None."""
    if database_backend(settings) != "sqlite" and settings.vector_store_kind == "embedded":
        return (
            "PostgreSQL with the embedded vector index: this server searches its own in-memory "
            "index, so run exactly one server and no `viewfinder worker` that embeds, or set "
            "VIEWFINDER_VECTOR_STORE=pgvector (or qdrant) to share vectors between processes"
        )
    return None
