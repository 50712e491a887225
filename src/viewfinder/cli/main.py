"""``viewfinder``: serve the API, manage models, analyse one image from the shell."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from viewfinder.analysis.results import Task
from viewfinder.atomic import write_atomically
from viewfinder.cli.common import fail, load_settings
from viewfinder.cli.keys import keys_app
from viewfinder.cli.scale import vectors_app, worker
from viewfinder.errors import InvalidInputError, ViewfinderError

if TYPE_CHECKING:
    from viewfinder.container import Services
    from viewfinder.library.ingest import FolderReport
    from viewfinder.library.library import Library

app = typer.Typer(no_args_is_help=True, help="Viewfinder: self-hosted image intelligence.")
models_app = typer.Typer(no_args_is_help=True, help="List and fetch the configured models.")
app.add_typer(models_app, name="models")
app.command()(worker)
app.add_typer(vectors_app, name="vectors")
app.add_typer(keys_app, name="keys")


_settings = load_settings
_fail = fail


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (VIEWFINDER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (VIEWFINDER_PORT).")] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from viewfinder.access.exposure import anonymous_exposure
    from viewfinder.api.app import create_app
    from viewfinder.library.topology import shared_store_warning
    from viewfinder.logging_setup import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    refusal = anonymous_exposure(settings, host or settings.host)
    if refusal:
        typer.echo(f"error: {refusal}", err=True)
        raise typer.Exit(2)
    warning = shared_store_warning(settings)
    if warning:
        logging.getLogger("viewfinder.serve").warning(warning)
    try:
        api = create_app(settings)
    except ViewfinderError as exc:
        raise _fail(exc) from None
    uvicorn.run(
        api,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


@models_app.command("list")
def models_list() -> None:
    """Each model: its setting, its source, and whether a local copy is available."""
    from viewfinder.model_registry import model_entries

    settings = _settings()
    offline = settings.model_copy(update={"offline": True})
    for name, entry in model_entries(settings, "cpu").items():
        try:
            where = str(entry.resolve(offline))
            state = "available"
        except ViewfinderError:
            where, state = "-", "missing (run `viewfinder models pull`)"
        typer.echo(f"{name:16} {entry.source.env_var}={entry.source.spec}")
        typer.echo(f"{'':16} {state}: {where}")


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to fetch (default: all).")
    ] = None,
) -> None:
    """Download the configured models into the model cache, ahead of time."""
    from viewfinder.model_registry import model_entries

    settings = _settings()
    entries = model_entries(settings, "cpu")
    unknown = sorted(set(names or []) - set(entries))
    if unknown:
        typer.echo(f"unknown models {unknown}; known: {sorted(entries)}", err=True)
        raise typer.Exit(2)
    failed = 0
    for name in names or list(entries):
        try:
            typer.echo(f"{name}: {entries[name].resolve(settings)}")
        except ViewfinderError as exc:
            failed += 1
            typer.echo(f"{name}: FAILED: {exc}", err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def analyze(
    image: Annotated[str, typer.Argument(help="A local image path or an http(s) URL.")],
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            "-t",
            help="An operation, optionally with a target: TYPE[:TARGET]. Repeatable.",
        ),
    ] = None,
    tasks_json: Annotated[
        str | None, typer.Option(help="The tasks array as JSON, as the API takes it.")
    ] = None,
) -> None:
    """Analyse one image and print the same JSON as POST /analyze_image/."""
    from viewfinder.analysis.results import response_payload
    from viewfinder.container import Services

    settings = _settings()
    try:
        tasks = _cli_tasks(task or [], tasks_json)
        services = Services.build(settings)
        try:
            if image.startswith(("http://", "https://")):
                picture = services.analysis.image_from_url(image)
            else:
                picture = services.analysis.image_from_bytes(_read_file(Path(image)))
            report = services.analysis.analyze(picture, tasks)
        finally:
            services.close()
    except ViewfinderError as exc:
        raise _fail(exc) from None
    json.dump(response_payload(image, report), sys.stdout)
    sys.stdout.write("\n")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None


def _cli_tasks(specs: list[str], tasks_json: str | None) -> list[Task]:
    from viewfinder.analysis.tasks import parse_tasks_json

    tasks = parse_tasks_json(tasks_json) if tasks_json else []
    for spec in specs:
        kind, _, target = spec.partition(":")
        params = {"target": target} if target else {}
        tasks.append(Task(spec.replace(":", "_"), kind, params))
    if not tasks:
        raise InvalidInputError("give at least one --task TYPE[:TARGET] or --tasks-json")
    return tasks


db_app = typer.Typer(no_args_is_help=True, help="The metadata database.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database (VIEWFINDER_DATABASE_URL / DATABASE_URL, or the embedded SQLite)."""
    from viewfinder.db.engine import make_engine, normalize_url, sqlite_url_for
    from viewfinder.db.migrate import current_revision, upgrade

    settings = _settings()
    engine = make_engine(normalize_url(settings.database_url or sqlite_url_for(settings.data_dir)))
    upgrade(engine)
    typer.echo(f"database at revision {current_revision(engine)}")
    engine.dispose()


@app.command()
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
        bool, typer.Option(help="Embed and index the new images before returning.")
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
    """Ingest every image under PATH into the library (folder = path relative to PATH). An
    s3://bucket/prefix is indexed in place (folder = the key's directory, as seed 002 laid its
    bucket out); objects indexed before are skipped without being downloaded."""
    from viewfinder.container import Services
    from viewfinder.library.ingest import iter_image_files
    from viewfinder.storage.s3_source import is_s3_url, parse_s3_url

    path = Path(source)
    try:
        location = parse_s3_url(source) if is_s3_url(source) else None
    except ViewfinderError as exc:
        raise _fail(exc) from None
    if location is None and not path.is_dir():
        raise _fail(InvalidInputError(f"{path} is not a folder"))
    settings = _settings().model_copy(update={"worker_threads": 0})
    services = Services.build(settings, with_library=True)
    library = services.require_library()
    try:
        library.index.open()
        if location is not None:
            report = library.buckets.ingest(
                location, folder_prefix, copy=copy_originals, progress=_bucket_progress()
            )
        else:
            total = sum(1 for _ in iter_image_files(path))
            with typer.progressbar(length=total, label="ingest", file=sys.stderr) as bar:
                state = {"seen": 0}

                def advance(report: object) -> None:
                    seen = getattr(report, "seen", 0)
                    bar.update(seen - state["seen"])
                    state["seen"] = seen

                report = library.ingest.ingest_folder(path, folder_prefix, advance)
        for relative, reason in report.skipped:
            typer.echo(f"skipped {relative}: {reason}", err=True)
        typer.echo(
            f"{report.created} new, {report.existing} already stored, {len(report.skipped)} skipped"
        )
        if wait:
            library.worker.drain(timeout_s=float("inf"))
            typer.echo(f"{library.index.count()} images indexed")
    except ViewfinderError as exc:
        raise _fail(exc) from None
    finally:
        services.close()


def _bucket_progress(every_s: float = 2.0) -> Callable[[FolderReport], None]:
    """A bucket's size is unknown until it is listed: a status line every few seconds."""
    last = [time.monotonic()]

    def show(report: FolderReport) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            typer.echo(
                f"{report.seen} objects: {report.created} new, {report.existing} known, "
                f"{len(report.skipped)} skipped",
                err=True,
            )

    return show


@app.command("train-classifiers")
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
    from viewfinder.container import Services

    settings = _settings().model_copy(update={"worker_threads": 0})
    services = Services.build(settings, with_library=True)
    library = services.require_library()
    try:
        sets = (
            library.trainer.seed_sets(source)
            if source
            else library.trainer.library_sets(collection)
        )
        reports = library.trainer.train(sets)
    except ViewfinderError as exc:
        raise _fail(exc) from None
    finally:
        services.close()
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


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}


@app.command("caption-folder")
def caption_folder(
    path: Annotated[Path, typer.Argument(help="A folder of images.")],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite existing .txt files.")
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(help="Caption through a running server (e.g. http://localhost:8000)."),
    ] = None,
    max_length: Annotated[int, typer.Option(help="Longest caption, in tokens.")] = 50,
) -> None:
    """Write NAME.txt with a caption beside every image NAME.ext in PATH."""
    if not path.is_dir():
        raise _fail(InvalidInputError(f"{path} is not a folder"))
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    todo = [p for p in images if force or not p.with_suffix(".txt").exists()]
    typer.echo(f"{len(images)} images, {len(images) - len(todo)} already captioned", err=True)
    captioner = _remote_captioner(server, max_length) if server else _local_captioner(max_length)
    failures = 0
    with typer.progressbar(todo, label="caption", file=sys.stderr) as bar:
        for image_path in bar:
            try:
                caption = captioner(image_path.read_bytes(), image_path.name)
            except (ViewfinderError, OSError) as exc:
                failures += 1
                typer.echo(f"\nskipped {image_path.name}: {exc}", err=True)
                continue
            write_atomically(image_path.with_suffix(".txt"), (caption + "\n").encode())
    typer.echo(f"{len(todo) - failures} captioned, {failures} skipped")


def _local_captioner(max_length: int) -> Callable[[bytes, str], str]:
    from viewfinder.container import Services
    from viewfinder.models.caption import CaptionRequest

    services = Services.build(_settings())

    def caption(data: bytes, _name: str) -> str:
        image = services.analysis.image_from_bytes(data)
        text: str = services.pool.run("caption", CaptionRequest(image, max_length))
        return text

    return caption


def _remote_captioner(server: str, max_length: int) -> Callable[[bytes, str], str]:
    import httpx

    tasks = json.dumps(
        [
            {
                "operation_id": "caption",
                "type": "describe_image",
                "params": {"max_length": max_length},
            }
        ]
    )

    def caption(data: bytes, name: str) -> str:
        try:
            response = httpx.post(
                f"{server.rstrip('/')}/analyze_image_upload/",
                files={"image_file": (name, data)},
                data={"tasks_json": tasks},
                timeout=300,
            )
        except httpx.HTTPError as exc:
            raise InvalidInputError(f"server unreachable: {exc}") from None
        if response.status_code != 200:
            raise InvalidInputError(
                f"server answered {response.status_code}: {response.text[:200]}"
            )
        result = response.json()["results"]["caption"]
        if result["status"] != "success":
            raise InvalidInputError(result["error_message"] or result["status"])
        return str(result["data"])

    return caption


faces_app = typer.Typer(no_args_is_help=True, help="Faces of the library's images.")
app.add_typer(faces_app, name="faces")


@faces_app.command("backfill")
def faces_backfill(
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many assets without faces (default: all)."),
    ] = None,
) -> None:
    """Find the faces of assets stored before face indexing (or while it was off), here."""
    from viewfinder.container import Services
    from viewfinder.db.engine import is_sqlite
    from viewfinder.faces.indexing import (
        FACES_TASK,
        enqueue_backfill,
        run_backfill,
        unsettled_faces_tasks,
    )

    settings = _settings().model_copy(update={"worker_threads": 0})
    if not settings.faces_enabled:
        raise _fail(InvalidInputError("face indexing is off (VIEWFINDER_FACES=false)"))
    services = Services.build(settings, with_library=True)
    library = services.require_library()
    worker = library.worker_for(FACES_TASK)
    try:
        if worker is None:  # cannot happen with faces_enabled; says so if that ever changes
            raise InvalidInputError("this library has no faces worker")
        # Tasks left running by a dead process would otherwise be waited for forever.
        worker.recover(0.0 if is_sqlite(library.engine) else settings.worker_lease_s)
        enqueued = enqueue_backfill(library.sessions, limit)
        todo = unsettled_faces_tasks(library.sessions)
        typer.echo(f"{enqueued} assets queued for faces, {todo} to process", err=True)
        with typer.progressbar(length=todo, label="faces", file=sys.stderr) as bar:
            report = run_backfill(worker, library.sessions, bar.update)
    except ViewfinderError as exc:
        raise _fail(exc) from None
    finally:
        services.close()
    typer.echo(
        f"{enqueued} assets queued, {report.processed} processed, {report.failed} failed; "
        f"{report.faces} faces in the library"
    )


def _people_library() -> tuple[Services, Library]:
    from viewfinder.container import Services

    services = Services.build(
        _settings().model_copy(update={"worker_threads": 0}), with_library=True
    )
    return services, services.require_library()


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
    services, library = _people_library()
    settings = library.settings
    method = unknown_method or settings.face_unknown_clustering_method
    if method not in ("hdbscan", "dbscan", "agglomerative"):
        raise _fail(InvalidInputError(f"unknown clustering method {method!r}"))
    try:
        report = library.people.cluster_dual(
            person_threshold
            if person_threshold is not None
            else settings.face_person_match_threshold,
            method,  # type: ignore[arg-type]
            min_cluster_size or settings.face_unknown_min_cluster_size,
            max_faces,
        )
    except ViewfinderError as exc:
        raise _fail(exc) from None
    finally:
        services.close()
    for key, value in asdict(report).items():
        typer.echo(f"{key:18} {value}")


@faces_app.command("assign")
def faces_assign(
    person_threshold: Annotated[float | None, typer.Option()] = None,
    max_faces: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Incremental assignment: match unnamed faces to known people, without re-clustering."""
    services, library = _people_library()
    settings = library.settings
    try:
        report = library.people.cluster_dual(
            person_threshold
            if person_threshold is not None
            else settings.face_person_match_threshold,
            settings.face_unknown_clustering_method,
            settings.face_unknown_min_cluster_size,
            max_faces,
            cluster_unknown=False,
        )
    finally:
        services.close()
    typer.echo(f"assigned {report.assigned} faces to {report.known_people} known people")


@faces_app.command("train")
def faces_train(
    epochs: Annotated[int | None, typer.Option(min=1, help="FACE_TRAINING_EPOCHS")] = None,
    margin: Annotated[float | None, typer.Option(help="FACE_TRIPLET_MARGIN")] = None,
) -> None:
    """Train the face-matching head on named faces; keep it only if it helps."""
    services, library = _people_library()
    settings = library.settings
    try:
        report = library.people.train(
            epochs or settings.face_training_epochs, margin or settings.face_triplet_margin
        )
    except ViewfinderError as exc:
        raise _fail(exc) from None
    finally:
        services.close()
    for key, value in asdict(report).items():
        typer.echo(f"{key:15} {value}")


@faces_app.command("stats")
def faces_stats() -> None:
    """Faces, clusters, people and the active head."""
    services, library = _people_library()
    try:
        for key, value in library.people.stats().items():
            typer.echo(f"{key:26} {value}")
    finally:
        services.close()
