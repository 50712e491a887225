"""``viewfinder index``, ``train-classifiers`` and ``db upgrade``: the library from the shell."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from viewfinder.cli.common import command_library, fail, load_settings
from viewfinder.cli.progress import Progress
from viewfinder.errors import InvalidInputError, ModelUnavailableError, ViewfinderError

if TYPE_CHECKING:
    from viewfinder.library.ingest import FolderReport

db_app = typer.Typer(no_args_is_help=True, help="The metadata database.")


@db_app.command("upgrade")
def db_upgrade(
    sql: Annotated[
        bool,
        typer.Option(
            "--sql", help="Print the SQL instead of running it, for a DBA (PostgreSQL only)."
        ),
    ] = False,
) -> None:
    """Migrate the database (VIEWFINDER_DATABASE_URL / DATABASE_URL, or the embedded SQLite)."""
    from sqlalchemy.engine import make_url

    from viewfinder.db.engine import make_engine, normalize_url, sqlite_url_for
    from viewfinder.db.migrate import current_revision, upgrade, upgrade_sql

    settings = load_settings()
    url = normalize_url(settings.database_url or sqlite_url_for(settings.data_dir))
    if sql:
        if make_url(url).get_backend_name() == "sqlite":
            raise fail(
                InvalidInputError(
                    "--sql prints PostgreSQL migrations; SQLite is migrated in place "
                    "(its table rebuilds need the live database)"
                )
            )
        typer.echo(upgrade_sql(url))
        return
    engine = make_engine(url)
    try:
        upgrade(engine)
        typer.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


def index(
    source: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A folder of images (searched recursively), or s3://bucket/prefix.",
        ),
    ],
    folder_prefix: Annotated[
        str, typer.Option(help="Prefix for the stored folder labels of these files.")
    ] = "",
    wait: Annotated[
        bool,
        typer.Option(
            help="Embed and index the new images (and find their faces) before returning; "
            "--no-wait leaves that to a running server or `viewfinder worker`."
        ),
    ] = True,
    faces: Annotated[
        bool,
        typer.Option(
            help="After embedding, find the faces of the images and organise them into people "
            "(--no-faces: leave them to a running server or `viewfinder faces backfill`)."
        ),
    ] = True,
    copy_originals: Annotated[
        bool,
        typer.Option(
            "--copy",
            help="s3:// only: copy the originals into storage instead of reading them "
            "from the bucket.",
        ),
    ] = False,
) -> None:
    """Ingest every image under PATH into the library (folder = path relative to PATH), embed
    the new ones, then find and organise their faces. Files that are not images (a README, a
    CSV) are skipped quietly and counted. An s3://bucket/prefix is indexed in place (folder = the
    key's directory, as seed 002 laid its bucket out); objects indexed before are skipped
    without being downloaded."""
    from viewfinder.cli.faces import index_faces
    from viewfinder.faces.indexing import FACES_TASK
    from viewfinder.library.ingest import iter_image_files
    from viewfinder.storage.s3_source import is_s3_url, parse_s3_url

    path = Path(source)
    try:
        location = parse_s3_url(source) if is_s3_url(source) else None
    except ViewfinderError as exc:
        raise fail(exc) from None
    if location is None and not path.is_dir():
        raise fail(InvalidInputError(f"{path} is not a folder"))
    with command_library() as library:
        library.index.open()
        if location is not None:
            report = library.buckets.ingest(
                location, folder_prefix, copy=copy_originals, progress=_bucket_progress()
            )
        else:
            total = sum(1 for _ in iter_image_files(path))
            with Progress("copy in", total, unit="files") as bar:
                report = library.ingest.ingest_folder(
                    path, folder_prefix, lambda r: bar.update(r.seen)
                )
        for relative, reason in report.problems:
            typer.echo(f"skipped {relative}: {reason}", err=True)
        typer.echo(
            f"{report.created} new, {report.existing} already stored, "
            f"{len(report.problems)} skipped"
        )
        if wait:
            for worker in library.workers:
                if worker.kind == FACES_TASK:
                    continue  # below, with its own message when it cannot run
                try:
                    with Progress(worker.kind, unit="images") as bar:
                        worker.drain(timeout_s=float("inf"), on_remaining=bar.remaining)
                except ModelUnavailableError as exc:
                    if worker is library.worker:
                        raise  # no embeddings, no search: the command failed
                    # Objects, OCR, captions: the images are searchable without them, and a
                    # running server or `viewfinder worker` does them once the model is there.
                    typer.echo(f"{worker.kind} not processed: {exc}", err=True)
            typer.echo(f"{library.index.count()} images indexed")
            if faces:
                index_faces(library)
        if report.not_images:
            typer.echo(_not_images_line(report.not_images))


def _not_images_line(paths: list[str], named: int = 3) -> str:
    """``skipped 3 files that are not images (README, data.csv, notes.txt)``."""
    shown = ", ".join(paths[:named]) + (", ..." if len(paths) > named else "")
    noun = "file that is not an image" if len(paths) == 1 else "files that are not images"
    return f"skipped {len(paths)} {noun} ({shown})"


def _bucket_progress(every_s: float = 2.0) -> Callable[[FolderReport], None]:
    """A bucket's size is unknown until it is listed: a status line every few seconds."""
    last = [time.monotonic()]

    def show(report: FolderReport) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            typer.echo(
                f"{report.seen} objects: {report.created} new, {report.existing} known, "
                f"{len(report.problems)} skipped, {len(report.not_images)} not images",
                err=True,
            )

    return show


def train_classifiers(
    collection: Annotated[
        list[int] | None, typer.Option("--collection", "-c", help="Only these collection ids.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Import seed 000 training data from this folder or URL instead."),
    ] = None,
) -> None:
    """Train each collection's classifier, run the bake-off, promote the best, keep the top 10."""
    with command_library() as library:
        sets = (
            library.trainer.seed_sets(source)
            if source
            else library.trainer.library_sets(collection)
        )
        reports = library.trainer.train(sets)
    typer.echo(
        f"{'collection':>10} {'name':20} {'size':>6} {'precision':>9} {'recall':>7}  version"
    )
    for r in reports:
        if r.skipped:
            typer.echo(
                f"{r.collection_id:>10} {r.name[:20]:20} {r.positives:>6}  skipped: {r.skipped}"
            )
            continue
        typer.echo(
            f"{r.collection_id:>10} {r.name[:20]:20} {r.positives:>6} {r.precision:>9.3f} "
            f"{r.recall:>7.3f}  {r.chosen_version} ({r.versions_kept} kept)"
        )
