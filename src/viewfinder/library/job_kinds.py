"""Every kind of long job, by name: what a worker runs for a job row of that kind.

A handler gets the library, the job's params (JSON, as stored in the row) and a progress
callback, and returns the job's result (JSON). A job may run more than once (its worker died, or
it was handed back at a stop), so every handler is safe to run again: see each one."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viewfinder.db import assets as assets_repo
from viewfinder.db import tasks as tasks_repo
from viewfinder.faces.dual_mode import DualOptions
from viewfinder.faces.organize import FACES_ORGANIZE_JOB
from viewfinder.library.ingest import FolderReport
from viewfinder.library.jobs import JobHandler, Progress
from viewfinder.library.processing import EMBED_TASK
from viewfinder.storage.s3_source import is_s3_url, parse_s3_url

if TYPE_CHECKING:
    from viewfinder.library.library import Library

MAX_SKIPPED_REPORTED = 1000
REINDEX_CHUNK = 10_000


def import_folder(lib: Library, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Ingest every image under ``path`` (the API checked it against VIEWFINDER_IMPORT_ROOTS)
    into ``folder_prefix``; an ``s3://bucket/prefix`` path (checked against
    VIEWFINDER_IMPORT_BUCKETS) is indexed in place unless ``copy``. Run again, it resumes: files
    stored by an earlier run are recognised by their content hash (bucket objects by their key,
    before any download) and counted as ``existing``, not stored twice."""
    path = params["path"]

    def report_progress(r: FolderReport) -> None:
        progress(r.created + r.existing, len(r.skipped), r.seen)

    if is_s3_url(path):
        copy = bool(params.get("copy", False))
        location = parse_s3_url(path)
        report = lib.buckets.ingest(
            location, params["folder_prefix"], copy=copy, progress=report_progress
        )
    else:
        report = lib.ingest.ingest_folder(Path(path), params["folder_prefix"], report_progress)
    skipped = report.skipped[:MAX_SKIPPED_REPORTED]
    return {
        "created": report.created,
        "existing": report.existing,
        "skipped": [{"path": path, "reason": why} for path, why in skipped],
    }


def train_classifiers(lib: Library, params: dict[str, Any], _: Progress) -> dict[str, Any]:
    """Train the classifiers of ``collection_ids`` (None: every collection), or from seed 000
    training data at ``source``. Run again, it trains again (one more version in the bake-off)."""
    reports = lib.trainer.train_from(params.get("source"), params.get("collection_ids"))
    return {"collections": [asdict(r) for r in reports]}


def faces_cluster_dual(lib: Library, params: dict[str, Any], _: Progress) -> dict[str, Any]:
    """Match faces to known people and cluster the rest; params are a ``DualOptions``. Run
    again, it recomputes the assignment from the stored faces (which it writes in one
    transaction at its end)."""
    return asdict(lib.people.cluster_dual(DualOptions(**params)))


def faces_organize(lib: Library, _params: dict[str, Any], _: Progress) -> dict[str, Any]:
    """Organise faces (``PeopleService.organize``), scheduled, debounced, after new faces or a
    user's correction. Run again, it recomputes from the stored faces: harmless."""
    return asdict(lib.people.organize())


def faces_train(lib: Library, params: dict[str, Any], _: Progress) -> dict[str, Any]:
    """Train the face-matching head (``epochs``, ``margin``). Run again, it trains again."""
    return asdict(lib.people.train(params["epochs"], params["margin"]))


def reindex(lib: Library, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """``reembed``: queue every image to be embedded again (after a change of CLIP model), in
    chunks the workers start on at once; else bring the vector store in step with the stored
    embeddings (``viewfinder vectors sync``). Run again, it queues (or syncs) again: harmless."""
    if not params.get("reembed", False):
        report = lib.index.sync()
        return {"added": report.added, "removed": report.removed, "total": report.total}
    with lib.sessions() as session:
        ids = assets_repo.asset_ids_matching(session)
    for start in range(0, len(ids), REINDEX_CHUNK):
        with lib.sessions.begin() as session:
            tasks_repo.enqueue_tasks(
                session, ids[start : start + REINDEX_CHUNK].tolist(), EMBED_TASK
            )
        lib.worker.wake()
        progress(min(start + REINDEX_CHUNK, len(ids)), 0, len(ids))
    return {"queued": len(ids)}


JOB_KINDS: dict[str, JobHandler[Library]] = {
    "reindex": reindex,
    "import_folder": import_folder,
    "train_classifiers": train_classifiers,
    "faces_cluster_dual": faces_cluster_dual,
    "faces_train": faces_train,
    FACES_ORGANIZE_JOB: faces_organize,
}
