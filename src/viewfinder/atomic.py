"""Files replaced whole: after a crash at any point the path holds the old bytes or the new ones.

The new content goes to a temporary file in the target's directory (same filesystem, so the
rename is atomic), is fsynced, renamed over the target, and the directory is fsynced so the
rename itself survives a power cut. Temporary names carry the writer's pid: a later write to the
same target removes those of processes that died mid-write (a large index or model file would
otherwise be left behind by every kill). They keep the target's suffix, for writers (ONNX
export) that look at it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path for the block to fill (for writers that want a file name); renamed over
    ``target`` when the block succeeds, removed when it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    temp = target.with_name(
        f".{target.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{target.suffix}"
    )
    try:
        yield temp
        _fsync(temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


@contextmanager
def atomic_writer(target: Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``target`` when the block succeeds."""
    with atomic_path(target) as temp, temp.open("wb") as handle:
        yield handle


def write_atomically(target: Path, data: bytes) -> None:
    with atomic_writer(target) as out:
        out.write(data)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open directories)."""
    if os.name == "posix":
        _fsync(directory)


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary files of ``target`` left by writers whose process died."""
    for temp in target.parent.glob(f".{target.stem}.*.tmp{target.suffix}"):
        pid_text = temp.name[len(target.stem) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            temp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
