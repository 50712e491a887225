"""Vector stores: where the library's image vectors are searched (see ``base.VectorStore``).

``embedded`` (FAISS in this process, the default), ``pgvector`` (the metadata PostgreSQL) and
``qdrant`` (a Qdrant server) behave the same through ``VectorStore``; ``open_vector_store``
picks one from the settings. Each implementation is imported on demand, so a process loads
only the client it uses."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.library.stores.base import StoreKind, SyncReport, VectorStore
from viewfinder.settings import Settings

__all__ = ["StoreKind", "SyncReport", "VectorStore", "open_vector_store"]


def open_vector_store(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session], model: str
) -> VectorStore:
    """The store the settings choose, for ``model``'s embeddings (nothing is opened yet)."""
    kind = settings.vector_store_kind
    if kind == "pgvector":
        from viewfinder.library.stores.pgvector import PgvectorStore

        return PgvectorStore.from_settings(settings, engine, sessions, model)
    if kind == "qdrant":
        from viewfinder.library.stores.qdrant import QdrantStore

        return QdrantStore.from_settings(settings, sessions, model)
    from viewfinder.library.stores.embedded import EmbeddedStore
    from viewfinder.library.vectors import LibraryIndex

    index = LibraryIndex(
        settings.index_path,
        model,
        sessions,
        kind=settings.index_kind,
        save_interval_s=settings.index_save_interval_s,
    )
    return EmbeddedStore(index, sessions)
