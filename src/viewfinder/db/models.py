"""The metadata schema. The database is the source of truth: assets, their processing state and
their embeddings live here; the vector index and the blob store's derived files can always be
rebuilt from it."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Without AUTOINCREMENT SQLite hands a deleted newest row's id to the next row, and everything
# that names an id (a cached ``/file`` URL served immutable, a classifier file, a face group)
# would then name another thing. PostgreSQL's identity sequences never go back.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


# Named constraints let later (SQLite batch) migrations drop or alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on every backend.

    SQLite has no timezone type: a plain ``DateTime(timezone=True)`` drops the offset on write
    (so 12:00+02:00 would be stored as 12:00) and reads back naive values, which then cannot be
    compared with the aware ones PostgreSQL returns. Naive inputs are taken to be UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON}


class TaskState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Asset(Base):
    """One stored image, identified by the SHA-256 of its bytes (the same bytes are one asset)."""

    __tablename__ = "assets"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    original_filename: Mapped[str] = mapped_column(String(512))
    # Path of the file's directory relative to the ingested root ("" for the root), "/"-separated.
    folder: Mapped[str] = mapped_column(String(1024), default="", index=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    captured_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    source_url: Mapped[str | None] = mapped_column(Text)
    # Set when the original is read where it already was (``s3://bucket/key``) instead of
    # copied into the blob store; None: the original is the blob ``original_key(sha256)``.
    original_uri: Mapped[str | None] = mapped_column(Text, index=True)
    caption: Mapped[str | None] = mapped_column(Text)
    # The text read in the image (OCR), lines joined by newlines; None: not read (yet).
    text: Mapped[str | None] = mapped_column(Text)
    # The same text as its lower-case words between single spaces, with a space at each end
    # (" harbour 1987 "), so "has every one of these words" is ``LIKE '% word %'`` per word on
    # every database, matching whole words only.
    text_words: Mapped[str | None] = mapped_column(Text)
    # The objects detected in it, best first, loaded with every asset query (one more SELECT
    # per query, by ``asset_objects.asset_id``), so every asset JSON has them. Read-only: rows
    # are written by ``db.objects`` and go with the asset (ON DELETE CASCADE).
    objects: Mapped[list[AssetObject]] = relationship(
        lazy="selectin",
        viewonly=True,
        order_by="(AssetObject.score.desc(), AssetObject.id)",
    )


# The timeline order (``db.assets.taken_at``, then id): pages of ``sort=newest`` / ``oldest`` walk
# this index instead of sorting every asset (migration 0008).
Index("ix_assets_taken", func.coalesce(Asset.captured_at, Asset.created_at), Asset.id)


class AssetObject(Base):
    """One object the COCO detector found in an asset (dog, cat, car, person...), above the
    detection threshold: its label, score and box in the original image's pixels."""

    __tablename__ = "asset_objects"
    __table_args__ = (Index("ix_asset_objects_label_asset", "label", "asset_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(32))
    score: Mapped[float]
    x1: Mapped[float]
    y1: Mapped[float]
    x2: Mapped[float]
    y2: Mapped[float]


class AssetTask(Base):
    """The processing state of one asset for one kind of work (``embed``, later ``faces``...).

    Workers claim pending rows, do the work, and write its result and ``done`` in one transaction,
    so an interrupted run resumes without losing or repeating work."""

    __tablename__ = "asset_tasks"
    __table_args__ = (Index("ix_asset_tasks_kind_state", "kind", "state", "asset_id"),)

    asset_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=TaskState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Embedding(Base):
    """One model's embedding of one asset: float32 little-endian bytes, L2-normalised."""

    __tablename__ = "embeddings"

    asset_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A bulk background job (ingest a folder, cluster faces, train...) with its progress."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), default=TaskState.PENDING, index=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    # Claims that ended without a result (the worker died, or the job raised); the job fails
    # once they reach the limit instead of killing worker after worker.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Renewed by the running worker; a running job whose heartbeat is older than the lease
    # belongs to a dead process and goes back to the queue.
    heartbeat_at: Mapped[datetime | None]
    # Not claimed before this time (None: at once): a debounced job waits for a quiet moment.
    run_after: Mapped[datetime | None]
    # At most one job holds a key at a time (NULLs never clash): a scheduled, debounced job
    # such as ``faces_organize`` keeps its key while pending; claiming it clears the key, so
    # the next burst of work schedules a new job while this one runs.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Person(Base):
    """A named person. Names are unique regardless of case (labelling "alice" reuses "Alice")."""

    __tablename__ = "persons"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), unique=True)  # casefolded name
    hidden: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Face(Base):
    """One detected face: where it is, how good it is, its recognition embedding, and who it is.

    ``person_source`` records how ``person_id`` was set: ``manual`` (a user assigned it or labelled
    its cluster) is never changed by automatic runs; ``auto`` (matched by dual-mode clustering)
    is recomputed by them. ``cluster_id`` is the id of its unknown-faces cluster, stable across
    runs."""

    __tablename__ = "faces"
    __table_args__ = (Index("ix_faces_person_id", "person_id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    x1: Mapped[float]
    y1: Mapped[float]
    x2: Mapped[float]
    y2: Mapped[float]
    landmarks: Mapped[list[list[float]]] = mapped_column(JSON)
    detection_score: Mapped[float]
    quality: Mapped[float]
    clusterable: Mapped[bool] = mapped_column(default=True)
    dim: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary)  # JPEG of the aligned face
    person_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("persons.id", ondelete="SET NULL")
    )
    person_source: Mapped[str | None] = mapped_column(String(16))
    match_score: Mapped[float | None]
    cluster_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FaceRejection(Base):
    """A user's "not this": the face is never again given ``person_id`` by automatic runs, or
    put in the unknown cluster ``cluster_id`` (exactly one of the two is set)."""

    __tablename__ = "face_rejections"
    __table_args__ = (
        Index("ix_face_rejections_face_person", "face_id", "person_id", unique=True),
        Index("ix_face_rejections_face_cluster", "face_id", "cluster_id", unique=True),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    face_id: Mapped[int] = mapped_column(BigId, ForeignKey("faces.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("persons.id", ondelete="CASCADE"), index=True
    )
    cluster_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FaceHead(Base):
    """A trained face-matching projection head (weights as safetensors bytes, never pickle)."""

    __tablename__ = "face_heads"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=False)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Collection(Base):
    """A named set of assets; its members are the positives of its classifier."""

    __tablename__ = "collections"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CollectionMember(Base):
    __tablename__ = "collection_members"

    collection_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A key that may call the API. Only the SHA-256 of the key is stored; ``prefix`` (its first
    characters) tells keys apart in listings. Revoking sets ``revoked_at`` and keeps the row, so
    the id is never reused: web sessions name the key they were opened with."""

    __tablename__ = "api_keys"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    read_only: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ServerSecret(Base):
    """A secret all processes of one deployment share (the web session signing key...)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessingPause(Base):
    """A worker that cannot do one kind of per-asset work (its model is not available). Written
    by the worker when it pauses, refreshed on each failed retry, deleted when it works again or
    stops; read by every process (the API's status and readiness), so a pause in a worker on
    another machine is visible. A row not refreshed for a while belongs to a dead worker."""

    __tablename__ = "processing_pauses"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    worker: Mapped[str] = mapped_column(String(128), primary_key=True)  # host:pid
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
