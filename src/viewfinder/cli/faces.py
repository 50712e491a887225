"""``viewfinder faces``: seed 001's face pipelines (backfill, dual-mode clustering, incremental
assignment, head training, statistics) on the library."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from viewfinder.cli.common import command_library, fail, load_settings
from viewfinder.cli.progress import Progress
from viewfinder.errors import InvalidInputError, ViewfinderError
from viewfinder.settings import Settings

if TYPE_CHECKING:
    from viewfinder.faces.indexing import BackfillReport
    from viewfinder.library.library import Library

faces_app = typer.Typer(no_args_is_help=True, help="Faces of the library's images.")

FACE_MODELS = ("face_detector", "face_recognizer")


def faces_unavailable(settings: Settings) -> str | None:
    """Why this configuration cannot find faces, in words; None when it can (or may: a model
    that is not downloaded yet is fetched on first use unless VIEWFINDER_OFFLINE is set)."""
    if not settings.faces_enabled:
        return "face indexing is off (VIEWFINDER_FACES=false)"
    from viewfinder.model_registry import model_entries
    from viewfinder.runtime.sources import looks_like_path

    entries = model_entries(settings, "cpu")
    offline = settings.model_copy(update={"offline": True})
    missing: list[str] = []
    for name in FACE_MODELS:
        entry = entries[name]
        setting = f"{entry.source.env_var}={entry.source.spec}"
        try:
            entry.resolve(offline)
        except ViewfinderError:
            if looks_like_path(entry.source.spec):
                missing.append(f"{name} ({setting} does not exist)")
            elif settings.offline:
                missing.append(
                    f"{name} ({setting} is not downloaded and VIEWFINDER_OFFLINE is set; "
                    f"`viewfinder models pull {name}` fetches it)"
                )
    if missing:
        return f"no face models: {'; '.join(missing)}"
    return None


def detect_faces(library: Library, limit: int | None = None) -> tuple[int, BackfillReport]:
    """Give every asset without one a faces task, and run them all here with a progress bar;
    returns how many were queued, and the backfill's report."""
    from viewfinder.db.engine import is_sqlite
    from viewfinder.faces.indexing import (
        FACES_TASK,
        enqueue_backfill,
        run_backfill,
        unsettled_faces_tasks,
    )

    worker = library.worker_for(FACES_TASK)
    if worker is None:  # cannot happen with faces enabled; says so if that ever changes
        raise InvalidInputError("this library has no faces worker")
    # Tasks left running by a dead process would otherwise be waited for forever.
    worker.recover(0.0 if is_sqlite(library.engine) else library.settings.worker_lease_s)
    enqueued = enqueue_backfill(library.sessions, limit)
    with Progress("faces", unsettled_faces_tasks(library.sessions), unit="images") as bar:
        report = run_backfill(worker, library.sessions, bar.advance)
    return enqueued, report


def organize_faces(library: Library) -> str:
    """Match the faces to named people and group the rest, as the server does after new faces;
    returns the outcome in words."""
    report = library.people.organize()
    return (
        f"organised {report.faces} faces: {report.assigned} matched to "
        f"{report.known_people} named people, {report.unknown_clusters} unnamed groups"
    )


def index_faces(library: Library) -> None:
    """``viewfinder index``'s last step: find the new images' faces and organise them, or say
    in one line why not."""
    why_not = faces_unavailable(library.settings)
    if why_not is not None:
        typer.echo(f"faces not processed: {why_not}", err=True)
        return
    try:
        _, report = detect_faces(library)
    except ViewfinderError as exc:  # a model that cannot be fetched or loaded
        typer.echo(f"faces not processed: {exc}", err=True)
        return
    if report.processed:
        typer.echo(organize_faces(library))


@faces_app.command("backfill")
def faces_backfill(
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many assets without faces (default: all)."),
    ] = None,
) -> None:
    """Find the faces of assets stored before face indexing (or while it was off), here."""
    if not load_settings().faces_enabled:
        raise fail(InvalidInputError("face indexing is off (VIEWFINDER_FACES=false)"))
    with command_library() as library:
        enqueued, report = detect_faces(library, limit)
    typer.echo(
        f"{enqueued} assets queued, {report.processed} processed, {report.failed} failed; "
        f"{report.faces} faces in the library"
    )


@faces_app.command("cluster-dual")
def faces_cluster_dual(
    person_threshold: Annotated[
        float | None,
        typer.Option(
            help="Similarity a face needs to join a named person (default: "
            "VIEWFINDER_FACE_PERSON_MATCH_THRESHOLD)."
        ),
    ] = None,
    unknown_method: Annotated[
        str | None,
        typer.Option(
            help="How unnamed faces are grouped: hdbscan, dbscan or agglomerative (default: "
            "VIEWFINDER_FACE_UNKNOWN_CLUSTERING_METHOD)."
        ),
    ] = None,
    min_cluster_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Fewest faces that make an unnamed group (default: "
            "VIEWFINDER_FACE_UNKNOWN_MIN_CLUSTER_SIZE).",
        ),
    ] = None,
    max_faces: Annotated[
        int | None, typer.Option(min=1, help="At most this many faces (default: all).")
    ] = None,
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
    person_threshold: Annotated[
        float | None,
        typer.Option(
            help="Similarity a face needs to join a named person (default: "
            "VIEWFINDER_FACE_PERSON_MATCH_THRESHOLD)."
        ),
    ] = None,
    max_faces: Annotated[
        int | None, typer.Option(min=1, help="At most this many faces (default: all).")
    ] = None,
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
