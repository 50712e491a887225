"""``viewfinder faces``: seed 001's face pipelines (backfill, dual-mode clustering, incremental
assignment, head training, statistics) on the library."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated

import typer

from viewfinder.cli.common import command_library, fail, load_settings
from viewfinder.errors import InvalidInputError

faces_app = typer.Typer(no_args_is_help=True, help="Faces of the library's images.")


@faces_app.command("backfill")
def faces_backfill(
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many assets without faces (default: all)."),
    ] = None,
) -> None:
    """Find the faces of assets stored before face indexing (or while it was off), here."""
    from viewfinder.db.engine import is_sqlite
    from viewfinder.faces.indexing import (
        FACES_TASK,
        enqueue_backfill,
        run_backfill,
        unsettled_faces_tasks,
    )

    if not load_settings().faces_enabled:
        raise fail(InvalidInputError("face indexing is off (VIEWFINDER_FACES=false)"))
    with command_library() as library:
        worker = library.worker_for(FACES_TASK)
        if worker is None:  # cannot happen with faces enabled; says so if that ever changes
            raise InvalidInputError("this library has no faces worker")
        # Tasks left running by a dead process would otherwise be waited for forever.
        worker.recover(0.0 if is_sqlite(library.engine) else library.settings.worker_lease_s)
        enqueued = enqueue_backfill(library.sessions, limit)
        todo = unsettled_faces_tasks(library.sessions)
        typer.echo(f"{enqueued} assets queued for faces, {todo} to process", err=True)
        with typer.progressbar(length=todo, label="faces", file=sys.stderr) as bar:
            report = run_backfill(worker, library.sessions, bar.update)
    typer.echo(
        f"{enqueued} assets queued, {report.processed} processed, {report.failed} failed; "
        f"{report.faces} faces in the library"
    )


@faces_app.command("cluster-dual")
def faces_cluster_dual(
    person_threshold: Annotated[
        float | None, typer.Option(help="FACE_PERSON_MATCH_THRESHOLD for this run.")
    ] = None,
    unknown_method: Annotated[
        str | None, typer.Option(help="hdbscan, dbscan or agglomerative.")
    ] = None,
    min_cluster_size: Annotated[int | None, typer.Option(min=1)] = None,
    max_faces: Annotated[int | None, typer.Option(min=1, help="At most this many faces.")] = None,
) -> None:
    """Assign faces to known people, cluster the rest into unknown clusters."""
    from viewfinder.faces.dual_mode import DualOptions

    with command_library() as library:
        options = DualOptions.from_settings(
            library.settings, person_threshold, unknown_method, min_cluster_size, max_faces
        )
        report = library.people.cluster_dual(options)
    for key, value in asdict(report).items():
        typer.echo(f"{key:18} {value}")


@faces_app.command("assign")
def faces_assign(
    person_threshold: Annotated[float | None, typer.Option()] = None,
    max_faces: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Incremental assignment: match unnamed faces to known people, without re-clustering."""
    from viewfinder.faces.dual_mode import DualOptions

    with command_library() as library:
        options = DualOptions.from_settings(
            library.settings, person_threshold, max_faces=max_faces, cluster_unknown=False
        )
        report = library.people.cluster_dual(options)
    typer.echo(f"assigned {report.assigned} faces to {report.known_people} known people")


@faces_app.command("train")
def faces_train(
    epochs: Annotated[int | None, typer.Option(min=1, help="FACE_TRAINING_EPOCHS")] = None,
    margin: Annotated[float | None, typer.Option(help="FACE_TRIPLET_MARGIN")] = None,
) -> None:
    """Train the face-matching head on named faces; keep it only if it helps."""
    with command_library() as library:
        settings = library.settings
        report = library.people.train(
            epochs or settings.face_training_epochs, margin or settings.face_triplet_margin
        )
    for key, value in asdict(report).items():
        typer.echo(f"{key:15} {value}")


@faces_app.command("stats")
def faces_stats() -> None:
    """Faces, clusters, people and the active head."""
    with command_library() as library:
        stats = library.people.stats()
    for key, value in stats.items():
        typer.echo(f"{key:26} {value}")
