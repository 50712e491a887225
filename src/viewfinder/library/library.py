"""The image library assembled from its parts, opened once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from viewfinder.classifiers.service import ClassifierTrainer
from viewfinder.classifiers.store import ClassifierStore
from viewfinder.db.engine import (
    is_sqlite,
    make_engine,
    make_session_factory,
    normalize_url,
    sqlite_url_for,
)
from viewfinder.db.migrate import upgrade
from viewfinder.errors import InvalidInputError
from viewfinder.faces.indexing import FaceProcessor, FaceThresholds
from viewfinder.faces.organize import OrganizePolicy
from viewfinder.faces.people import PeopleService
from viewfinder.imaging.fetch import FetchPolicy
from viewfinder.library.assets import AssetService
from viewfinder.library.bucket_import import BucketImporter
from viewfinder.library.clusters import ClusterService
from viewfinder.library.collections import CollectionService
from viewfinder.library.deletion import delete_asset
from viewfinder.library.duplicates import DuplicateFinder
from viewfinder.library.ingest import IngestService
from viewfinder.library.job_kinds import JOB_KINDS
from viewfinder.library.jobs import JOBS_KIND, JobRunner
from viewfinder.library.objects import OBJECTS_TASK, ObjectProcessor, ObjectService
from viewfinder.library.ocr import OCR_TASK, OcrProcessor
from viewfinder.library.processing import (
    CLIP_MODEL,
    CaptionProcessor,
    EmbeddingProcessor,
    TaskProcessor,
    TaskWorker,
    enqueue_missing,
)
from viewfinder.library.search import SearchService
from viewfinder.library.status import StatusService
from viewfinder.library.stores import VectorStore, open_vector_store
from viewfinder.runtime.pool import ModelPool
from viewfinder.settings import Settings
from viewfinder.storage.blobs import BlobStore, LocalBlobStore
from viewfinder.storage.originals import Originals
from viewfinder.storage.s3_source import S3Objects

log = logging.getLogger(__name__)


def open_blob_store(settings: Settings) -> BlobStore:
    """The S3 bucket when ``VIEWFINDER_S3_BUCKET`` is set (checked once, now), else local files."""
    if settings.s3_bucket is None:
        return LocalBlobStore(settings.blob_root)
    from viewfinder.storage.s3 import S3BlobStore

    store = S3BlobStore(
        settings.s3_bucket,
        settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
    )
    store.check()
    log.info("image files are stored in s3://%s/%s", store.bucket, store.prefix)
    return store


@dataclass
class Library:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    index: VectorStore  # the image vectors search reads (embedded, pgvector or Qdrant)
    worker: TaskWorker  # embeddings: what search and clusters wait for
    workers: list[TaskWorker]  # every kind this library processes
    ingest: IngestService
    search: SearchService
    clusters: ClusterService
    duplicates: DuplicateFinder
    jobs: JobRunner[Library] = field(init=False)  # long jobs, built from the fields above
    trainer: ClassifierTrainer
    people: PeopleService
    originals: Originals  # where each original is read: the blob store, or a bucket in place
    buckets: BucketImporter  # indexing s3://bucket/prefix in place
    collections: CollectionService
    assets: AssetService
    status: StatusService  # what the background work is doing, for every process
    objects: ObjectService  # the object labels found in the library

    @classmethod
    def open(cls, settings: Settings, pool: ModelPool, classifiers: ClassifierStore) -> Library:
        """Connect, migrate the schema to head, and wire the services (nothing runs yet)."""
        blobs = open_blob_store(settings)  # first: a bucket that cannot be used stops start-up
        url = normalize_url(settings.database_url or sqlite_url_for(settings.data_dir))
        engine = make_engine(url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        # Buckets indexed in place are read with the blob store's S3 settings, on first use.
        objects = S3Objects(settings.s3_endpoint_url, settings.s3_region)
        originals = Originals(blobs, objects, settings.max_download_bytes)
        index = open_vector_store(settings, engine, sessions, CLIP_MODEL)
        processors: list[TaskProcessor] = [EmbeddingProcessor(pool, index)]
        if settings.caption_assets:
            processors.append(CaptionProcessor(pool))
        if settings.ocr_enabled:
            processors.append(OcrProcessor(pool))
        if settings.objects_enabled:
            processors.append(ObjectProcessor(pool))
        if settings.faces_enabled:
            processors.append(
                FaceProcessor(
                    pool,
                    FaceThresholds.from_settings(settings),
                    OrganizePolicy.from_settings(settings),
                )
            )
        workers = [
            TaskWorker(
                processor,
                sessions,
                blobs,
                batch_size=settings.worker_batch_size,
                batch_pixels=settings.worker_batch_pixels,
                max_attempts=settings.task_max_attempts,
                max_image_pixels=settings.max_image_pixels,
                originals=originals,
                lease_s=settings.worker_lease_s,
            )
            for processor in processors
        ]

        def wake_all() -> None:
            for worker in workers:
                worker.wake()

        ingest = IngestService(
            sessions,
            blobs,
            FetchPolicy.from_settings(settings),
            settings.max_image_pixels,
            task_kinds=tuple(w.kind for w in workers),
            on_new_assets=wake_all,
        )
        return cls(
            settings,
            engine,
            sessions,
            blobs,
            index,
            workers[0],
            workers,
            ingest,
            SearchService(
                sessions,
                pool,
                index,
                settings.max_image_pixels,
                tuple(w.kind for w in workers),
            ),
            ClusterService(sessions, settings.kmeans_clusters, settings.kmeans_batch_size),
            DuplicateFinder(sessions, index),
            ClassifierTrainer(sessions, classifiers, FetchPolicy.from_settings(settings)),
            PeopleService(sessions, settings),
            originals,
            BucketImporter(sessions, ingest, objects, settings.max_download_bytes),
            CollectionService(sessions, classifiers),
            AssetService(sessions, blobs, originals),
            StatusService(sessions, index, [w.kind for w in workers]),
            ObjectService(sessions),
        )

    def __post_init__(self) -> None:
        self.jobs = JobRunner(
            self.sessions,
            JOB_KINDS,
            self,
            lease_s=self.settings.worker_lease_s,
            max_attempts=self.settings.task_max_attempts,
        )

    def delete_asset(self, asset_id: int) -> None:
        """Delete an asset, its vector, and its files unless the same bytes were uploaded again
        meanwhile (NotFoundError when there is no such asset)."""
        delete_asset(self.sessions, self.index, self.blobs, asset_id)

    def worker_for(self, kind: str) -> TaskWorker | None:
        """The worker of one task kind; None when this library does not process that kind."""
        return next((w for w in self.workers if w.kind == kind), None)

    @property
    def work_kinds(self) -> list[str]:
        """Every kind of background work this library has: its task kinds, and long jobs."""
        return [w.kind for w in self.workers] + [JOBS_KIND]

    def chosen_kinds(self) -> list[str]:
        """The kinds this process works on (``VIEWFINDER_WORKER_KINDS``; empty: all)."""
        wanted = self.settings.worker_kinds or self.work_kinds
        unknown = sorted(set(wanted) - set(self.work_kinds))
        if unknown:
            raise InvalidInputError(
                f"unknown worker kinds {unknown}; this library has {self.work_kinds} "
                "(captions need VIEWFINDER_CAPTION_ASSETS=1, faces VIEWFINDER_FACES=1, "
                "ocr VIEWFINDER_OCR=1, objects VIEWFINDER_OBJECTS=1)"
            )
        return [kind for kind in self.work_kinds if kind in wanted]

    def start(self) -> None:
        """Bring the vector store in step with the database, then start the chosen workers."""
        kinds = self.chosen_kinds()
        self.index.open()
        for kind in (OCR_TASK, OBJECTS_TASK):  # images stored before the kind was switched on
            if kind in kinds:
                queued = enqueue_missing(self.sessions, kind)
                if queued:
                    log.info("queued %d earlier images for %s", queued, kind)
        if not self.settings.worker_threads:
            return
        # The embedded SQLite default has one process, so every running task at start is an
        # orphan; a shared PostgreSQL has other live workers, whose claims have a lease.
        lease = 0.0 if is_sqlite(self.engine) else self.settings.worker_lease_s
        for worker in self.workers:
            if worker.kind in kinds:
                worker.start(self.settings.worker_threads, lease)
        if JOBS_KIND in kinds:
            self.jobs.start(self.settings.worker_threads, orphan_lease_s=lease)

    def close(self) -> None:
        self.jobs.stop()  # running jobs: finished within a short grace, else handed back
        for worker in self.workers:
            worker.stop()
        self.index.close()
        self.engine.dispose()
