"""Commands of the scale-out deployment: ``viewfinder worker`` and ``viewfinder vectors``."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from viewfinder.cli.common import command_library, fail, load_settings
from viewfinder.errors import ViewfinderError
from viewfinder.settings import Settings

log = logging.getLogger("viewfinder.worker")

vectors_app = typer.Typer(no_args_is_help=True, help="The vector store image search reads.")


def worker(
    kinds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated work this process does: embed, faces, caption, objects, "
            "ocr, jobs "
            "(default: VIEWFINDER_WORKER_KINDS, else every kind)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Threads per kind (default: VIEWFINDER_WORKER_THREADS, >= 1)."),
    ] = None,
) -> None:
    """Run background work (embeddings, faces, captions, long jobs) from the shared database,
    with no HTTP server. Run any number, on any machines; SIGTERM finishes the batch in hand,
    hands back any other claim, and exits."""
    from viewfinder.container import Services
    from viewfinder.library.topology import check_worker_database, check_worker_kinds
    from viewfinder.logging_setup import configure_logging

    settings = _worker_settings(load_settings(), kinds, threads)
    configure_logging(settings.log_level)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        check_worker_database(settings)
        services = Services.build(settings, with_library=True)
    except ViewfinderError as exc:
        raise fail(exc) from None
    try:
        library = services.require_library()
        chosen = library.chosen_kinds()
        check_worker_kinds(settings, chosen)
        services.start()
        log.info(
            "worker %s: %s, %d thread(s) each, vectors in %s",
            library.worker.name,
            ",".join(chosen),
            settings.worker_threads,
            library.index.kind,
        )
        stop.wait()
        log.info("stopping: finishing the batches in hand")
    except ViewfinderError as exc:
        raise fail(exc) from None
    finally:
        services.close()


def _worker_settings(settings: Settings, kinds: str | None, threads: int | None) -> Settings:
    updates: dict[str, object] = {"worker_threads": threads or max(1, settings.worker_threads)}
    if kinds is not None:
        updates["worker_kinds"] = [k.strip() for k in kinds.split(",") if k.strip()]
    return settings.model_copy(update=updates)


@vectors_app.command("sync")
def vectors_sync() -> None:
    """Fill or repair the configured vector store from the embeddings in the database (after
    moving a library to pgvector or Qdrant, or after a crash between a commit and a write)."""
    with command_library() as library:
        report = library.index.sync()
    typer.echo(
        f"{library.index.kind}: {report.added} added, {report.removed} removed, "
        f"{report.total} vectors in the store"
    )


@vectors_app.command("status")
def vectors_status() -> None:
    """How many vectors the store holds beside how many embeddings the database has."""
    from viewfinder.db import embeddings as embeddings_repo
    from viewfinder.library.processing import CLIP_MODEL

    with command_library() as library:
        with library.sessions() as session:
            stored = embeddings_repo.count_embeddings(session, CLIP_MODEL)
        held = library.index.count() if library.index.shared else None  # no index loaded
    where = f"{held} vectors" if held is not None else "loaded by each server at start"
    typer.echo(f"{library.index.kind}: {where}; {stored} embeddings in the database")
