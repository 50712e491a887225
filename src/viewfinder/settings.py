"""The one settings object, built once in the entry point and passed down.

Every field reads ``VIEWFINDER_<NAME>``; fields that a seed system configured under another name
also accept that name (``IMAGE_EMBED_DEVICE``, ``CLIP_MODEL_NAME``, ...) so its users keep their
configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from viewfinder.imaging.allowlist import Allowlist

DEFAULT_YOLOX_URL = (
    "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_s.onnx"
)
# The objects task's COCO detector: YOLOX-nano (416 px), ~20-30 ms an image on a CPU, where
# YOLOX-s (the person detector's default) costs about 25 times the compute.
DEFAULT_OBJECT_DETECTOR_URL = (
    "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
)
DEFAULT_YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
    "face_detection_yunet_2023mar.onnx"
)
DEFAULT_MTCNN_URL = "https://github.com/timesler/facenet-pytorch/raw/master/data/"
DEFAULT_SFACE_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_recognition_sface/"
    "face_recognition_sface_2021dec.onnx"
)

# A folder inside an installed package (see runtime.sources): the rapidocr wheel's models.
DEFAULT_OCR_MODELS = "package:rapidocr/models"


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _env(name: str, *aliases: str) -> AliasChoices:
    return AliasChoices(f"VIEWFINDER_{name}", *aliases)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Configuration of one Viewfinder process. See the README's configuration table."""

    # A .env file in the working directory is read as the seeds' services read theirs; the
    # process environment wins over it, and its unknown keys (APP_NAME...) are ignored.
    model_config = SettingsConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        env_file=".env",
        env_file_encoding="utf-8",
    )

    # --- where things live -------------------------------------------------------------------
    data_dir: Path = Field(Path("./viewfinder-data"), validation_alias=_env("DATA_DIR"))
    models_dir: Path | None = Field(None, validation_alias=_env("MODELS_DIR"))
    classifiers_dir: Path | None = Field(None, validation_alias=_env("CLASSIFIERS_DIR"))
    storage_root: Path | None = Field(None, validation_alias=_env("STORAGE_ROOT", "STORAGE_ROOT"))
    database_url: str | None = Field(None, validation_alias=_env("DATABASE_URL", "DATABASE_URL"))
    # Image files in an S3-compatible bucket instead of storage_root (needs the [s3] extra);
    # credentials come from boto3's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ...).
    s3_bucket: str | None = Field(None, validation_alias=_env("S3_BUCKET"))
    s3_prefix: str = Field("", validation_alias=_env("S3_PREFIX"))
    s3_endpoint_url: str | None = Field(None, validation_alias=_env("S3_ENDPOINT_URL"))
    s3_region: str | None = Field(None, validation_alias=_env("S3_REGION", "AWS_REGION"))

    # --- HTTP server ---------------------------------------------------------------------------
    host: str = Field("127.0.0.1", validation_alias=_env("HOST"))
    port: int = Field(8000, validation_alias=_env("PORT"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL", "LOG_LEVEL"))
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("CORS_ORIGINS")
    )  # browser origins allowed to call the API (a separate frontend, e.g. seed 003's); "*": any

    # --- access control (docs/security.md) ---------------------------------------------------
    # Full-access keys from the environment, beside those `viewfinder keys create` stores.
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("API_KEYS"), repr=False
    )
    allow_anonymous: bool = Field(
        False, validation_alias=_env("ALLOW_ANONYMOUS")
    )  # `serve` on a non-loopback address without any key: only when this says it is intended
    rate_limit_per_minute: int = Field(
        600, ge=0, validation_alias=_env("RATE_LIMIT_PER_MINUTE")
    )  # requests per key (and failed authentications per client address); 0: no limit
    api_key_cache_s: float = Field(
        5.0, ge=0, le=60, validation_alias=_env("API_KEY_CACHE_S")
    )  # how long a key lookup is reused: a revoked key stops working within this time
    session_lifetime_s: float = Field(
        7 * 24 * 3600.0, gt=0, validation_alias=_env("SESSION_LIFETIME_S")
    )  # how long the web UI's session cookie stays valid

    # --- model sources: a Hugging Face repo id, an https URL of one file, or a local path ------
    clip_model: str = Field(
        "openai/clip-vit-base-patch32", validation_alias=_env("CLIP_MODEL", "CLIP_MODEL_NAME")
    )
    dinov2_model: str = Field("facebook/dinov2-base", validation_alias=_env("DINOV2_MODEL"))
    dinov3_model: str = Field(
        "facebook/dinov3-vitl16-pretrain-lvd1689m", validation_alias=_env("DINOV3_MODEL")
    )
    caption_model: str = Field(
        "Salesforce/blip-image-captioning-large", validation_alias=_env("CAPTION_MODEL")
    )
    person_detector_model: str = Field(
        DEFAULT_YOLOX_URL, validation_alias=_env("PERSON_DETECTOR_MODEL")
    )
    face_detector: Literal["yunet", "mtcnn"] = Field(
        "yunet", validation_alias=_env("FACE_DETECTOR")
    )
    # The COCO detector of the ``objects`` task (any YOLOX ONNX export with raw head output).
    object_detector_model: str = Field(
        DEFAULT_OBJECT_DETECTOR_URL, validation_alias=_env("OBJECT_DETECTOR_MODEL")
    )
    yunet_model: str = Field(DEFAULT_YUNET_URL, validation_alias=_env("YUNET_MODEL"))
    mtcnn_model: str = Field(DEFAULT_MTCNN_URL, validation_alias=_env("MTCNN_MODEL"))
    face_recognizer_model: str = Field(
        DEFAULT_SFACE_URL, validation_alias=_env("FACE_RECOGNIZER_MODEL")
    )  # an ArcFace-family ONNX recogniser; "sface" in the file name selects SFace's pixels
    # More CLIP image models an embedding task may name in ``params.model``: "name=source"
    # pairs, comma-separated (e.g. "vit-l-14=openai/clip-vit-large-patch14"); the library and
    # its search keep using clip_model, which tasks call "default".
    clip_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("CLIP_MODELS")
    )
    # The OCR detector and recogniser: a folder with one *det*.onnx and one *rec*.onnx (PP-OCR
    # exports); the default is the PP-OCRv6 pair the rapidocr wheel ships (a dependency).
    ocr_model: str = Field(DEFAULT_OCR_MODELS, validation_alias=_env("OCR_MODEL"))
    offline: bool = Field(
        False, validation_alias=_env("OFFLINE", "HF_HUB_OFFLINE")
    )  # never download: use only local paths and the model cache

    # --- model runtime -------------------------------------------------------------------------
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", validation_alias=_env("DEVICE", "IMAGE_EMBED_DEVICE", "CLIP_DEVICE")
    )
    require_gpu: bool = Field(
        False, validation_alias=_env("REQUIRE_GPU", "IMAGE_EMBED_REQUIRE_GPU")
    )
    cpu_bf16: bool = Field(
        False, validation_alias=_env("CPU_BF16")
    )  # bf16 autocast for the transformers models on CPUs with AVX512-BF16/AMX
    cpu_int8: bool = Field(
        False, validation_alias=_env("CPU_INT8")
    )  # CLIP towers in ONNX Runtime with int8 weights on the CPU (needs the [int8] extra)
    preload: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("PRELOAD")
    )
    model_idle_ttl_s: float = Field(900.0, validation_alias=_env("MODEL_IDLE_TTL_S"))
    batch_max_size: int = Field(16, ge=1, validation_alias=_env("BATCH_MAX_SIZE"))
    batch_max_wait_ms: float = Field(5.0, ge=0, validation_alias=_env("BATCH_MAX_WAIT_MS"))
    batch_queue_limit: int = Field(256, ge=1, validation_alias=_env("BATCH_QUEUE_LIMIT"))
    torch_threads: int | None = Field(None, ge=1, validation_alias=_env("TORCH_THREADS"))

    # --- detection thresholds ------------------------------------------------------------------
    person_min_score: float = Field(0.4, ge=0, le=1, validation_alias=_env("PERSON_MIN_SCORE"))
    face_min_score: float = Field(0.6, ge=0, le=1, validation_alias=_env("FACE_MIN_SCORE"))
    # An object is stored (and found by the ``objects`` search filter) from this score on; 0.4
    # gave no wrong label on coco8 with YOLOX-nano, where 0.3 stored 3 wrong ones for the same
    # recall (benchmarks/objects.py).
    object_min_score: float = Field(0.4, ge=0, le=1, validation_alias=_env("OBJECT_MIN_SCORE"))

    # --- the image library ---------------------------------------------------------------------
    import_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias=_env("IMPORT_ROOTS")
    )  # server folders the API may ingest from (the CLI may ingest any folder)
    import_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("IMPORT_BUCKETS")
    )  # S3 buckets the API may index (s3://bucket/prefix); the CLI may index any bucket
    worker_threads: int = Field(1, ge=0, validation_alias=_env("WORKER_THREADS"))
    worker_batch_size: int = Field(32, ge=1, validation_alias=_env("WORKER_BATCH_SIZE"))
    # A worker batch also stops at this many decoded pixels (32 scans of 49 MP are not one batch).
    worker_batch_pixels: int = Field(64_000_000, ge=1, validation_alias=_env("WORKER_BATCH_PIXELS"))
    task_max_attempts: int = Field(3, ge=1, validation_alias=_env("TASK_MAX_ATTEMPTS"))
    caption_assets: bool = Field(False, validation_alias=_env("CAPTION_ASSETS"))
    # Read the text in every image (OCR) into assets.text, where search finds it. Off by default:
    # it costs ~147 ms per 1024-pixel photo on 2 CPUs (benchmarks/ocr.py), over the ~100 ms an
    # always-on background task may cost.
    ocr_enabled: bool = Field(False, validation_alias=_env("OCR"))
    # The OCR detector sees images at most this large (longer side): 640 costs ~20 % less and
    # misses more small print, 960 reads more of it at ~1.8x the cost (benchmarks/ocr.py).
    ocr_detect_side: int = Field(736, ge=320, le=2048, validation_alias=_env("OCR_DETECT_SIDE"))
    # Detect the COCO objects (dog, cat, car...) in every image into asset_objects, where the
    # search filter ``objects`` finds them.
    objects_enabled: bool = Field(True, validation_alias=_env("OBJECTS"))
    worker_lease_s: float = Field(600.0, gt=0, validation_alias=_env("WORKER_LEASE_S"))
    # Where image vectors are searched: the embedded FAISS index in this process (the default),
    # or a store every process shares: pgvector in the metadata PostgreSQL, or a Qdrant server
    # (implied when seed 001's QDRANT_URL is set).
    vector_store: Literal["embedded", "pgvector", "qdrant"] | None = Field(
        None, validation_alias=_env("VECTOR_STORE")
    )
    qdrant_url: str | None = Field(None, validation_alias=_env("QDRANT_URL", "QDRANT_URL"))
    qdrant_api_key: str | None = Field(
        None, validation_alias=_env("QDRANT_API_KEY", "QDRANT_API_KEY")
    )
    qdrant_collection_prefix: str = Field(
        "viewfinder", validation_alias=_env("QDRANT_COLLECTION_PREFIX")
    )
    # pgvector: index vectors as halfvec (half the index memory; exact float32 re-rank of the
    # candidates), and below how many matching images a filtered search scans exactly.
    pgvector_halfvec: bool = Field(False, validation_alias=_env("PGVECTOR_HALFVEC"))
    pgvector_exact_below: int = Field(5_000, ge=0, validation_alias=_env("PGVECTOR_EXACT_BELOW"))
    # Which background work this process's worker threads (or `viewfinder worker`) do.
    worker_kinds: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("WORKER_KINDS")
    )  # empty: every kind this library processes, and long jobs
    index_kind: Literal["hnsw", "exact"] = Field("hnsw", validation_alias=_env("INDEX_KIND"))
    index_save_interval_s: float = Field(30.0, ge=0, validation_alias=_env("INDEX_SAVE_INTERVAL_S"))
    kmeans_clusters: int = Field(
        8, ge=1, validation_alias=_env("KMEANS_CLUSTERS", "KMEANS_CLUSTERS")
    )
    kmeans_batch_size: int = Field(
        64, ge=1, validation_alias=_env("KMEANS_BATCH_SIZE", "KMEANS_BATCH_SIZE")
    )
    duplicate_min_score: float = Field(
        0.95, ge=0, le=1, validation_alias=_env("DUPLICATE_MIN_SCORE")
    )

    # --- hostile input -------------------------------------------------------------------------
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, validation_alias=_env("MAX_UPLOAD_BYTES"))
    max_request_bytes: int = Field(
        200 * 1024 * 1024, ge=1, validation_alias=_env("MAX_REQUEST_BYTES")
    )  # the whole body of a many-file upload (POST /api/v1/assets); each file: max_upload_bytes
    max_download_bytes: int = Field(
        20 * 1024 * 1024, ge=1, validation_alias=_env("MAX_DOWNLOAD_BYTES")
    )
    max_image_pixels: int = Field(50_000_000, ge=1, validation_alias=_env("MAX_IMAGE_PIXELS"))
    # Decoded pixels in flight in this process, all requests and workers together (memory is a
    # small multiple: ~4 bytes per pixel in Pillow, plus copies); a bigger image goes alone.
    decode_pixel_budget: int = Field(64_000_000, ge=1, validation_alias=_env("DECODE_PIXEL_BUDGET"))
    fetch_timeout_s: float = Field(10.0, gt=0, validation_alias=_env("FETCH_TIMEOUT_S"))
    fetch_max_redirects: int = Field(5, ge=0, validation_alias=_env("FETCH_MAX_REDIRECTS"))
    fetch_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("FETCH_ALLOW_HOSTS")
    )
    # POST /analyze_images/: the most URLs in one request (413 past it), and how many of its
    # images are downloaded at once.
    analyze_batch_max_urls: int = Field(
        32, ge=1, le=1000, validation_alias=_env("ANALYZE_BATCH_MAX_URLS")
    )
    analyze_batch_fetch_concurrency: int = Field(
        8, ge=1, le=64, validation_alias=_env("ANALYZE_BATCH_FETCH_CONCURRENCY")
    )
    # How many POST /analyze_images/ run at once in this process (429 past it): each may hold
    # (fetch concurrency + batch size) downloaded files, so this bounds the process's total.
    analyze_batch_requests: int = Field(
        2, ge=1, le=64, validation_alias=_env("ANALYZE_BATCH_REQUESTS")
    )

    # --- image analyzer (seed 003) -------------------------------------------------------------
    # Ollama is reached at a host the operator configures (never one a request names); the
    # seed's own variable names OLLAMA_HOST / OLLAMA_MODEL are accepted.
    ollama_host: str = Field(
        "http://localhost:11434", validation_alias=_env("OLLAMA_HOST", "OLLAMA_HOST")
    )
    ollama_model: str = Field(
        "mistral:latest", validation_alias=_env("OLLAMA_MODEL", "OLLAMA_MODEL")
    )
    ollama_connect_timeout_s: float = Field(
        2.0, gt=0, validation_alias=_env("OLLAMA_CONNECT_TIMEOUT_S")
    )  # short: an absent Ollama should cost the user a fallback prompt, not a long wait
    ollama_read_timeout_s: float = Field(
        120.0, gt=0, validation_alias=_env("OLLAMA_READ_TIMEOUT_S")
    )
    analyzer_labels: Path | None = Field(
        None, validation_alias=_env("ANALYZER_LABELS")
    )  # a JSON file of zero-shot categories replacing the shipped defaults
    analyzer_top_k: int = Field(3, ge=1, validation_alias=_env("ANALYZER_TOP_K"))

    # --- faces of library assets (seed 001) ------------------------------------------------------
    faces_enabled: bool = Field(True, validation_alias=_env("FACES"))
    face_min_size_px: float = Field(32.0, ge=0, validation_alias=_env("FACE_MIN_SIZE_PX"))
    face_min_quality: float = Field(0.4, ge=0, le=1, validation_alias=_env("FACE_MIN_QUALITY"))
    # Detections between face_min_score and this are stored but not clustered: YuNet fires at
    # 0.6-0.7 on textured backgrounds, while every real face of ../shared scored above 0.9.
    face_cluster_min_score: float = Field(
        0.8, ge=0, le=1, validation_alias=_env("FACE_CLUSTER_MIN_SCORE")
    )
    face_person_match_threshold: float = Field(
        0.7,
        ge=-1,
        le=1,
        validation_alias=_env("FACE_PERSON_MATCH_THRESHOLD", "FACE_PERSON_MATCH_THRESHOLD"),
    )
    face_unknown_clustering_method: Literal["hdbscan", "dbscan", "agglomerative"] = Field(
        "hdbscan",
        validation_alias=_env("FACE_UNKNOWN_CLUSTERING_METHOD", "FACE_UNKNOWN_CLUSTERING_METHOD"),
    )
    face_unknown_min_cluster_size: int = Field(
        3,
        ge=2,
        validation_alias=_env("FACE_UNKNOWN_MIN_CLUSTER_SIZE", "FACE_UNKNOWN_MIN_CLUSTER_SIZE"),
    )
    # Faces organise themselves: after new faces are stored, or a user names, moves, merges or
    # rejects one, a debounced ``faces_organize`` job matches and clusters them (0: only on
    # request). The job runs once the work has been quiet for the delay.
    face_auto_organize: bool = Field(True, validation_alias=_env("FACE_AUTO_ORGANIZE"))
    face_organize_delay_s: float = Field(
        3.0, ge=0, le=3600, validation_alias=_env("FACE_ORGANIZE_DELAY_S")
    )
    # Up to this many unknown faces every organise run re-clusters them all; above it, faces
    # already in a cluster stay put and only the new ones are attached or grouped.
    face_organize_full_limit: int = Field(
        5000, ge=2, validation_alias=_env("FACE_ORGANIZE_FULL_LIMIT")
    )
    face_triplet_margin: float = Field(
        0.2, gt=0, validation_alias=_env("FACE_TRIPLET_MARGIN", "FACE_TRIPLET_MARGIN")
    )
    face_training_epochs: int = Field(
        20, ge=1, validation_alias=_env("FACE_TRAINING_EPOCHS", "FACE_TRAINING_EPOCHS")
    )

    @field_validator(
        "preload",
        "fetch_allow_hosts",
        "import_roots",
        "import_buckets",
        "cors_origins",
        "worker_kinds",
        "api_keys",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("clip_models", mode="before")
    @classmethod
    def _named_models(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        models: dict[str, str] = {}
        for part in value.split(","):
            if not part.strip():
                continue
            name, sep, source = part.partition("=")
            if not sep:
                raise ValueError(f"{part.strip()!r} is not name=source")
            models[name.strip()] = source.strip()
        return models

    @field_validator("clip_models")
    @classmethod
    def _valid_model_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not _MODEL_NAME.fullmatch(name) or name == "default":
                raise ValueError(
                    f"model name {name!r}: use letters, digits, '.', '_' or '-' (not 'default', "
                    "the name of VIEWFINDER_CLIP_MODEL)"
                )
            if not source:
                raise ValueError(f"model {name!r} has no source (a repo id or a local path)")
        return value

    @field_validator("fetch_allow_hosts")
    @classmethod
    def _readable_allow_list(cls, value: list[str]) -> list[str]:
        Allowlist.parse(value)  # a malformed entry stops start-up with a message naming it
        return value

    @field_validator(
        "s3_bucket", "s3_endpoint_url", "s3_region", "qdrant_url", "qdrant_api_key", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def vector_store_kind(self) -> Literal["embedded", "pgvector", "qdrant"]:
        """The configured store; a QDRANT_URL alone (seed 001's configuration) means Qdrant."""
        if self.vector_store is not None:
            return self.vector_store
        return "qdrant" if self.qdrant_url else "embedded"

    @property
    def model_cache_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def classifier_dir(self) -> Path:
        return self.classifiers_dir or self.data_dir / "classifiers"

    @property
    def blob_root(self) -> Path:
        return self.storage_root or self.data_dir / "files"

    @property
    def index_path(self) -> Path:
        return self.data_dir / "index" / "clip.vfindex"
