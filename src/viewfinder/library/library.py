"""The image library assembled from its parts, opened once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
from viewfinder.faces.indexing import FaceProcessor, FaceThresholds
from viewfinder.faces.people import PeopleService
from viewfinder.imaging.fetch import FetchPolicy
from viewfinder.library.clusters import ClusterService
from viewfinder.library.duplicates import DuplicateFinder
from viewfinder.library.ingest import IngestService
from viewfinder.library.jobs import JobRunner
from viewfinder.library.processing import (
    CLIP_MODEL,
    CaptionProcessor,
    EmbeddingProcessor,
    TaskProcessor,
    TaskWorker,
)
from viewfinder.library.search import SearchService
from viewfinder.library.vectors import LibraryIndex
from viewfinder.runtime.pool import ModelPool
from viewfinder.settings import Settings
from viewfinder.storage.blobs import BlobStore, LocalBlobStore

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
    index: LibraryIndex
    worker: TaskWorker  # embeddings: what search and clusters wait for
    workers: list[TaskWorker]  # every kind this library processes
    ingest: IngestService
    search: SearchService
    clusters: ClusterService
    duplicates: DuplicateFinder
    jobs: JobRunner
    trainer: ClassifierTrainer
    people: PeopleService

    @classmethod
    def open(cls, settings: Settings, pool: ModelPool, classifiers: ClassifierStore) -> Library:
        """Connect, migrate the schema to head, and wire the services (nothing runs yet)."""
        blobs = open_blob_store(settings)  # first: a bucket that cannot be used stops start-up
        url = normalize_url(settings.database_url or sqlite_url_for(settings.data_dir))
        engine = make_engine(url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        index = LibraryIndex(
            settings.index_path,
            CLIP_MODEL,
            sessions,
            kind=settings.index_kind,
            save_interval_s=settings.index_save_interval_s,
        )
        processors: list[TaskProcessor] = [EmbeddingProcessor(pool, index)]
        if settings.caption_assets:
            processors.append(CaptionProcessor(pool))
        if settings.faces_enabled:
            processors.append(FaceProcessor(pool, FaceThresholds.from_settings(settings)))
        workers = [
            TaskWorker(
                processor,
                sessions,
                blobs,
                batch_size=settings.worker_batch_size,
                max_attempts=settings.task_max_attempts,
                max_image_pixels=settings.max_image_pixels,
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
            SearchService(sessions, pool, index),
            ClusterService(sessions, settings.kmeans_clusters, settings.kmeans_batch_size),
            DuplicateFinder(sessions, index),
            JobRunner(sessions),
            ClassifierTrainer(sessions, classifiers, FetchPolicy.from_settings(settings)),
            PeopleService(sessions),
        )

    def worker_for(self, kind: str) -> TaskWorker | None:
        """The worker of one task kind; None when this library does not process that kind."""
        return next((w for w in self.workers if w.kind == kind), None)

    def start(self) -> None:
        """Bring the vector index in step with the database, then start the workers."""
        self.index.open()
        if self.settings.worker_threads:
            # The embedded SQLite default has one process, so every running task at start is an
            # orphan; a shared PostgreSQL has other live workers, whose claims get a lease.
            lease = 0.0 if is_sqlite(self.engine) else self.settings.worker_lease_s
            for worker in self.workers:
                worker.start(self.settings.worker_threads, lease)

    def close(self) -> None:
        self.jobs.close()
        for worker in self.workers:
            worker.stop()
        self.index.save()
        self.engine.dispose()
