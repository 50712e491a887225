"""``viewfinder analyze`` and ``viewfinder caption-folder``: seed 000's analysis from the shell."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from viewfinder.analysis.results import Task
from viewfinder.atomic import write_atomically
from viewfinder.cli.common import fail, load_settings
from viewfinder.cli.progress import Progress
from viewfinder.errors import InvalidInputError, ViewfinderError
from viewfinder.imaging.decode import EMBED_MIN_SIDE
from viewfinder.imaging.sniff import IMAGE_SUFFIXES

Captioner = Callable[[bytes, str], str]


def _list_operations(value: bool) -> None:
    """``--list-operations``: seed 000's operations, as GET /available_operations/ has them."""
    if not value:
        return
    from viewfinder.analysis.operations import FACE_CONTEXTS, OPERATIONS

    for op, spec in OPERATIONS.items():
        targets = ", ".join(
            f"{t.value} (default)" if t is spec.default_target else t.value
            for t in spec.allowed_targets
        )
        typer.echo(op.value)
        typer.echo(f"    {spec.description}")
        typer.echo(f"    targets: {targets}")
        for name, what in spec.params:
            typer.echo(f"    {name}: {what}")
    contexts = " or ".join(t.value for t in FACE_CONTEXTS)
    typer.echo(
        f"\nWith target prominent_face, face_context ({contexts}) says where the face is looked "
        "for.\nUse: viewfinder analyze IMAGE -t TYPE[:TARGET] ..., or --tasks-json for params."
    )
    raise typer.Exit()


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
        str | None,
        typer.Option(
            help='The tasks array as JSON, as the API takes it: [{"operation_id": ..., '
            '"type": ..., "params": {...}}].'
        ),
    ] = None,
    list_operations: Annotated[
        bool,
        typer.Option(
            "--list-operations",
            callback=_list_operations,
            is_eager=True,
            help="List the operations (what each does, its targets and parameters) and exit; "
            "no IMAGE needed.",
        ),
    ] = False,
) -> None:
    """Analyse one image and print the same JSON as POST /analyze_image/
    (`--list-operations` shows what it can do)."""
    from viewfinder.analysis.results import response_payload
    from viewfinder.container import Services

    settings = load_settings()
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
        raise fail(exc) from None
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
        raise fail(InvalidInputError(f"{path} is not a folder"))
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    todo = [p for p in images if force or not p.with_suffix(".txt").exists()]
    typer.echo(f"{len(images)} images, {len(images) - len(todo)} already captioned", err=True)
    failures = 0
    with (
        (
            _remote_captioner(server, max_length) if server else _local_captioner(max_length)
        ) as captioner,
        Progress("caption", len(todo), unit="images") as bar,
    ):
        for image_path in todo:
            try:
                caption = captioner(image_path.read_bytes(), image_path.name)
            except (ViewfinderError, OSError) as exc:
                failures += 1
                bar.echo(f"skipped {image_path.name}: {exc}")
                continue
            finally:
                bar.advance()
            write_atomically(image_path.with_suffix(".txt"), (caption + "\n").encode())
    typer.echo(f"{len(todo) - failures} captioned, {failures} skipped")


@contextmanager
def _local_captioner(max_length: int) -> Iterator[Captioner]:
    from viewfinder.container import Services
    from viewfinder.models.caption import CaptionRequest

    services = Services.build(load_settings())

    def caption(data: bytes, _name: str) -> str:
        image = services.analysis.image_from_bytes(data, EMBED_MIN_SIDE)
        text: str = services.pool.run("caption", CaptionRequest(image, max_length))
        return text

    try:
        yield caption
    finally:
        services.close()


@contextmanager
def _remote_captioner(server: str, max_length: int) -> Iterator[Captioner]:
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

    yield caption
