"""Turning a model setting into files on disk.

A model source is a Hugging Face repo id (``openai/clip-vit-base-patch32``), an https URL of one
file (``https://.../yolox_s.onnx``), an https URL of a folder ending in ``/`` together with the
file names wanted from it (MTCNN's three nets), a folder inside an installed Python package
(``package:rapidocr/models``: weights a wheel ships), or a local path. The same code serves all
of them; downloads happen only when the settings allow network access, and every failure says
which setting to change and that ``viewfinder models pull`` fetches models ahead of time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from viewfinder.atomic import atomic_writer
from viewfinder.errors import ModelUnavailableError
from viewfinder.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """One configured model: its user-facing name, the setting that names it, and its value."""

    name: str
    setting: str
    spec: str

    @property
    def env_var(self) -> str:
        return f"VIEWFINDER_{self.setting.upper()}"


def is_url(spec: str) -> bool:
    return spec.startswith(("https://", "http://"))


PACKAGE_PREFIX = "package:"


def is_package(spec: str) -> bool:
    return spec.startswith(PACKAGE_PREFIX)


def looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or Path(spec).expanduser().exists()


def resolve(source: ModelSource, settings: Settings, files: Sequence[str] = ()) -> Path:
    """Local path of the model: a directory for repos and folders, the file for a file URL.

    ``files`` names the files needed from a folder source (local or URL).
    """
    spec = source.spec
    if is_package(spec):
        return _local(source, _package_folder(source), files)
    if looks_like_path(spec):
        return _local(source, Path(spec).expanduser(), files)
    if is_url(spec):
        if spec.endswith("/"):
            folder = _url_cache_dir(settings, spec)
            for name in files:
                _fetch_url(source, spec + name, folder / name, settings)
            return folder
        target = _url_cache_dir(settings, spec) / spec.rstrip("/").rsplit("/", 1)[-1]
        _fetch_url(source, spec, target, settings)
        return target
    return _hub_snapshot(source, settings)


def _local(source: ModelSource, path: Path, files: Sequence[str]) -> Path:
    if not path.exists():
        raise ModelUnavailableError(
            f"model {source.name!r}: {source.env_var}={source.spec!r} is a path that does not exist"
        )
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise ModelUnavailableError(
            f"model {source.name!r}: {source.env_var}={source.spec!r} lacks {', '.join(missing)}"
        )
    return path


def _package_folder(source: ModelSource) -> Path:
    """``package:NAME/sub/dir`` -> that folder of the installed package NAME, found without
    importing it (a package shipping weights may import more than its weights need)."""
    from importlib.util import find_spec

    package, _, folder = source.spec.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        spec = find_spec(package) if package.isidentifier() else None
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelUnavailableError(
            f"model {source.name!r}: {source.env_var}={source.spec!r} names the Python package "
            f"{package!r}, which is not installed: install it (`pip install {package}`) or point "
            f"{source.env_var} at a local copy"
        )
    return Path(locations[0]) / folder


def _url_cache_dir(settings: Settings, url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return settings.model_cache_dir / "urls" / digest


def _unavailable(source: ModelSource, reason: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"model {source.name!r} ({source.env_var}={source.spec!r}) is not available: {reason}. "
        f"Run `viewfinder models pull` on a machine with network access, or point "
        f"{source.env_var} at a local copy."
    )


def _fetch_url(source: ModelSource, url: str, target: Path, settings: Settings) -> None:
    if target.is_file():
        return
    if settings.offline:
        raise _unavailable(source, f"{url} is not in the model cache and downloads are off")
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s for model %s", url, source.name)
    try:
        with (
            atomic_writer(target) as out,
            httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
    except (httpx.HTTPError, OSError) as exc:
        raise _unavailable(source, f"downloading {url} failed ({exc})") from exc


def _hub_snapshot(source: ModelSource, settings: Settings) -> Path:
    # Imported here: huggingface_hub is heavy and only needed for repo-id sources.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError

    cache = settings.model_cache_dir / "hub"
    try:
        return Path(snapshot_download(source.spec, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        if settings.offline:
            raise _unavailable(
                source, "it is not in the model cache and downloads are off (offline mode)"
            ) from None
    try:
        return Path(snapshot_download(source.spec, cache_dir=cache))
    except GatedRepoError as exc:
        raise _unavailable(
            source,
            "the repository is gated on the Hugging Face hub: accept its licence there and set "
            f"HF_TOKEN ({exc.__class__.__name__})",
        ) from exc
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise _unavailable(source, f"download from the Hugging Face hub failed ({exc})") from exc
