"""The contract every vector index implements, and the pieces the implementations share.

An index maps the caller's int64 ids to L2-normalised float32 vectors and answers "which ids are
nearest to this query" by cosine similarity. The database holds every embedding, so an index is
a cache: ``save``/``load`` avoid rebuilding at every start, ``state`` tells the caller whether a
file on disk still matches the database, and any ``IndexLoadError`` means "rebuild from the DB".

Threading model (both implementations): searches hold a shared lock and run concurrently with
each other (FAISS releases the GIL while it searches); ``add``, ``remove`` and compaction hold the
lock exclusively, and a waiting writer keeps new searches out so writes are never starved.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from viewfinder.errors import ViewfinderError


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: higher ``score`` (cosine similarity) is nearer."""

    id: int
    score: float


@dataclass(frozen=True, slots=True)
class IndexState:
    """What the caller compares with the database to decide whether a saved index is current.

    ``count`` and ``id_digest`` (see ``digest_ids``) describe the set of live ids and can be
    recomputed from the database; ``generation`` counts the mutating calls (add/remove) over the
    index's lifetime, so an upsert that changes a vector but not the id set still moves it.
    """

    count: int
    id_digest: int
    generation: int


class IndexLoadError(ViewfinderError):
    """A saved index cannot be used; the caller should rebuild it from the database."""


class IndexMissingError(IndexLoadError):
    """There is no saved index at the path."""


class IndexCorruptError(IndexLoadError):
    """The file is truncated, damaged, not an index, or internally inconsistent."""


class IndexMismatchError(IndexLoadError):
    """The file is a valid index of another kind or dimension than the caller asked for."""


class VectorIndex(Protocol):
    """Cosine-similarity search over the caller's int64 ids.

    Vectors are normalised on the way in, so callers may pass raw embeddings. Results are sorted
    by score descending, then id ascending, so equal scores (duplicate photos) come back in a
    deterministic order. ``allowed`` restricts the search to those ids inside the search itself:
    with a filter the caller still gets ``min(k, allowed ids present)`` hits.
    """

    @property
    def dim(self) -> int: ...

    @property
    def state(self) -> IndexState: ...

    def __len__(self) -> int: ...

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        """Insert or replace: re-adding an id replaces its vector (within a call, the last wins)."""
        ...

    def remove(self, ids: ArrayLike) -> int:
        """Delete these ids; unknown ids are ignored. Returns how many were removed."""
        ...

    def contains(self, id: int) -> bool: ...

    def ids(self) -> NDArray[np.int64]:
        """The live ids, ascending."""
        ...

    def search(self, query: ArrayLike, k: int, allowed: ArrayLike | None = None) -> list[Hit]: ...

    def search_many(
        self, queries: ArrayLike, k: int, allowed: ArrayLike | None = None
    ) -> list[list[Hit]]: ...

    def save(self, path: Path) -> None:
        """Write atomically: after a crash the path holds the old or the new index, whole."""
        ...

    @classmethod
    def load(cls, path: Path, dim: int) -> Self:
        """Raises ``IndexLoadError`` (missing, corrupt, other kind or dim): rebuild from the DB."""
        ...


def digest_ids(ids: ArrayLike) -> int:
    """An order-independent 64-bit digest of a set of ids, for ``IndexState.id_digest``.

    XOR of a SplitMix64 hash of each id: the caller can compute it over the database's ids and
    the index updates it incrementally (XOR an id in on add, out on remove).
    """
    x = np.asarray(ids, dtype=np.int64).view(np.uint64).ravel()
    if x.size == 0:
        return 0
    # Array arithmetic on uint64 wraps modulo 2**64 silently, which is what SplitMix64 wants.
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return int(np.bitwise_xor.reduce(x))


def as_ids(ids: ArrayLike) -> NDArray[np.int64]:
    """Ids as a 1-d int64 array; rejects floats that would silently truncate."""
    array = np.asarray(ids)
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64).ravel()


def as_unit_vectors(vectors: ArrayLike, dim: int) -> NDArray[np.float32]:
    """Rows as contiguous float32 of unit length; zero, NaN or infinite rows are rejected."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {np.shape(vectors)}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("vectors must be finite and non-zero")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def as_upsert_batch(
    ids: ArrayLike, vectors: ArrayLike, dim: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Validated ids and unit rows for ``add``, one row per distinct id (the last occurrence)."""
    id_array = as_ids(ids)
    if id_array.size == 0 and np.size(vectors) == 0:
        return id_array, np.empty((0, dim), dtype=np.float32)
    rows = as_unit_vectors(vectors, dim)
    if rows.shape[0] != id_array.size:
        raise ValueError(f"{id_array.size} ids for {rows.shape[0]} vectors")
    reversed_first = np.unique(id_array[::-1], return_index=True)[1]
    last = np.sort(id_array.size - 1 - reversed_first)
    if last.size == id_array.size:
        return id_array, rows
    return id_array[last], np.ascontiguousarray(rows[last])


def check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def as_query(query: ArrayLike, dim: int) -> NDArray[np.float32]:
    """One query vector of unit length, shape (dim,)."""
    if np.ndim(query) != 1:
        raise ValueError(f"expected one query of shape ({dim},), got {np.shape(query)}")
    return as_unit_vectors(query, dim).reshape(dim)


def rank_hits(ids: NDArray[np.int64], scores: NDArray[np.float32], k: int) -> list[Hit]:
    """The ``k`` best (score descending, id ascending) among candidate ids and their scores.

    Every candidate tied with the k-th score is kept before the final sort, so which of several
    equal-scoring ids make the cut is decided by id, never by partition order.
    """
    if k <= 0 or ids.size == 0:
        return []
    if ids.size > k:
        kth = np.partition(scores, ids.size - k)[ids.size - k]
        keep = np.flatnonzero(scores >= kth)
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return [Hit(int(i), float(s)) for i, s in zip(ids[order], scores[order], strict=True)]


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers. Not reentrant."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class IdSlots:
    """Maps caller ids to slots (rows or FAISS labels), vectorised so a 100k-id filter costs ~1 ms.

    Slots are handed out in order and never reused; a released slot stays dead until the owner
    compacts. While every id is small and non-negative (database autoincrement ids) the id -> slot
    map is a dense table indexed by id; the first id outside that range switches it, for good, to
    sorted arrays searched with ``np.searchsorted`` (a few ms per 100k ids). Not thread-safe on its
    own: the owning index serialises mutations.
    """

    _DENSE_MIN = 1 << 20
    _DENSE_FACTOR = 4

    def __init__(self) -> None:
        # Buffers grow geometrically so adding one id is not a copy of every slot.
        self._slot_ids = np.empty(0, dtype=np.int64)  # slot -> id (meaningless where dead)
        self._alive = np.empty(0, dtype=bool)
        self._n_slots = 0
        self._table: NDArray[np.int64] | None = np.empty(0, dtype=np.int64)
        self._sorted_ids = np.empty(0, dtype=np.int64)
        self._sorted_slots = np.empty(0, dtype=np.int64)
        self.live = 0

    @property
    def n_slots(self) -> int:
        return self._n_slots

    @property
    def slot_ids(self) -> NDArray[np.int64]:
        """Slot -> id (a view; entries of dead slots are stale)."""
        return self._slot_ids[: self._n_slots]

    @property
    def alive(self) -> NDArray[np.bool_]:
        """Slot -> live (a view)."""
        return self._alive[: self._n_slots]

    def lookup(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """The live slot of each id, or -1 where the id is absent."""
        if self._table is not None:
            out = np.full(ids.size, -1, dtype=np.int64)
            inside = (ids >= 0) & (ids < self._table.size)
            out[inside] = self._table[ids[inside]]
            return out
        if self._sorted_ids.size == 0:
            return np.full(ids.size, -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted_ids, ids), self._sorted_ids.size - 1)
        return np.where(self._sorted_ids[at] == ids, self._sorted_slots[at], -1)

    def append(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Give each (distinct, currently absent) id a new slot; returns the slots."""
        start, stop = self._n_slots, self._n_slots + ids.size
        if stop > self._slot_ids.size:
            capacity = max(stop, 2 * self._slot_ids.size, 1024)
            self._slot_ids = np.concatenate([self.slot_ids, np.empty(capacity - start, np.int64)])
            self._alive = np.concatenate([self.alive, np.zeros(capacity - start, dtype=bool)])
        self._slot_ids[start:stop] = ids
        self._alive[start:stop] = True
        self._n_slots = stop
        slots = np.arange(start, stop, dtype=np.int64)
        self._map(ids, slots)
        self.live += int(ids.size)
        return slots

    def release(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Forget these (distinct) ids; returns the slots they held (absent ids are skipped)."""
        slots = self.lookup(ids)
        present = slots >= 0
        ids, slots = ids[present], slots[present]
        self.alive[slots] = False
        self.live -= int(ids.size)
        if self._table is not None:
            self._table[ids] = -1
        elif ids.size:
            at = np.searchsorted(self._sorted_ids, ids)
            self._sorted_ids = np.delete(self._sorted_ids, at)
            self._sorted_slots = np.delete(self._sorted_slots, at)
        return slots

    def move(self, ids: NDArray[np.int64], slots: NDArray[np.int64]) -> None:
        """Point live ids at other slots (used when rows are moved to fill holes)."""
        self.slot_ids[slots] = ids
        self.alive[slots] = True
        if self._table is not None:
            self._table[ids] = slots
        else:
            at = np.searchsorted(self._sorted_ids, ids)
            self._sorted_slots[at] = slots

    @classmethod
    def restore(cls, slot_ids: NDArray[np.int64], alive: NDArray[np.bool_]) -> IdSlots:
        """Rebuild from saved slot ids and liveness; raises ``ValueError`` on duplicate live ids."""
        slots = cls()
        live = np.flatnonzero(alive).astype(np.int64)
        if np.unique(slot_ids[live]).size != live.size:
            raise ValueError("duplicate live ids")
        slots._slot_ids, slots._alive = slot_ids.copy(), alive.copy()
        slots._n_slots = int(slot_ids.size)
        slots._map(slot_ids[live], live)
        slots.live = int(live.size)
        return slots

    def truncate(self, n_slots: int) -> None:
        """Drop trailing slots, which must already be dead."""
        self._n_slots = n_slots

    def live_slots(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.alive).astype(np.int64)

    def _map(self, ids: NDArray[np.int64], slots: NDArray[np.int64]) -> None:
        if self._table is not None and ids.size:
            limit = max(self._DENSE_MIN, self._DENSE_FACTOR * (self.live + ids.size))
            if int(ids.min()) < 0 or int(ids.max()) >= limit:
                self._to_sorted()
            elif int(ids.max()) >= self._table.size:
                grown = np.full(
                    min(limit, max(2 * self._table.size, int(ids.max()) + 1)), -1, dtype=np.int64
                )
                grown[: self._table.size] = self._table
                self._table = grown
        if self._table is not None:
            self._table[ids] = slots
            return
        merged_ids = np.concatenate([self._sorted_ids, ids])
        merged_slots = np.concatenate([self._sorted_slots, slots])
        # A stable sort of "long sorted run + short new run" is a linear merge, not n log n.
        order = np.argsort(merged_ids, kind="stable")
        self._sorted_ids, self._sorted_slots = merged_ids[order], merged_slots[order]

    def _to_sorted(self) -> None:
        assert self._table is not None
        ids = np.flatnonzero(self._table >= 0).astype(np.int64)
        self._sorted_ids, self._sorted_slots = ids, self._table[ids]
        self._table = None


# --- The file format -------------------------------------------------------------------------
#
# One file per index, so there is nothing to keep consistent between files:
#
#     MAGIC | section bytes ... | footer JSON | u64 footer length | u32 CRC-32 | END
#
# The footer names the kind, the metadata and each section's offset and length; the CRC covers
# every byte before it and is checked in full before anything is parsed, so a truncated or
# damaged file fails as ``IndexCorruptError`` instead of reaching FAISS's reader. (CRC-32, not a
# cryptographic hash: it guards against accidents, and runs at ~5 GB/s where SHA-256 runs at 1.)
# Saves go to a temporary file in the same directory, are fsynced, then ``os.replace``d over the
# old file and the directory is fsynced: a crash at any point leaves the old or the new file.

_MAGIC = b"VFINDEX1"
_END = b"VFEND001"
_TAIL = struct.Struct("<QI8s")
_FORMAT_VERSION = 1
_CHUNK = 8 << 20

Write = Callable[[bytes | memoryview], None]
SectionWriter = Callable[[Write], None]


def array_section(array: NDArray[Any]) -> SectionWriter:
    """A section holding an array's raw bytes (native little-endian, C order)."""
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return lambda write: write(raw.data)


def write_index_file(
    path: Path, kind: str, meta: dict[str, Any], sections: Sequence[tuple[str, SectionWriter]]
) -> None:
    """Write an index file atomically (see the format notes above)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    temp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with temp.open("wb") as handle:
            crc = 0
            offset = 0

            def write(data: bytes | memoryview) -> None:
                nonlocal crc, offset
                view = memoryview(data)
                handle.write(view)
                crc = zlib.crc32(view, crc)
                offset += view.nbytes

            write(_MAGIC)
            table = []
            for name, write_section in sections:
                start = offset
                write_section(write)
                table.append({"name": name, "offset": start, "length": offset - start})
            footer = {"format": _FORMAT_VERSION, "kind": kind, "sections": table, **meta}
            footer_bytes = json.dumps(footer, sort_keys=True).encode()
            write(footer_bytes)
            handle.write(_TAIL.pack(len(footer_bytes), crc, _END))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


class IndexFile:
    """A verified index file, read through one open descriptor: a save that replaces the path
    meanwhile cannot mix two versions."""

    def __init__(self, handle: io.BufferedReader, meta: dict[str, Any], path: Path) -> None:
        self._handle = handle
        self.meta = meta
        self.path = path
        self._sections = {s["name"]: (int(s["offset"]), int(s["length"])) for s in meta["sections"]}

    def integer(self, key: str) -> int:
        value = self.meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise IndexCorruptError(f"{self.path}: metadata field {key!r} is missing or invalid")
        return value

    def read_array(self, name: str, dtype: type[np.generic], count: int) -> NDArray[Any]:
        offset, length = self._section(name)
        array = np.empty(count, dtype=dtype)
        if array.nbytes != length:
            raise IndexCorruptError(f"{self.path}: section {name!r} has the wrong length")
        self._handle.seek(offset)
        if self._handle.readinto(array.view(np.uint8).data) != length:
            raise IndexCorruptError(f"{self.path}: section {name!r} is truncated")
        return array

    def reader(self, name: str) -> Callable[[int], bytes]:
        """A ``read(n)`` callable confined to one section (for FAISS's callback reader)."""
        offset, length = self._section(name)
        self._handle.seek(offset)
        remaining = length

        def read(n: int) -> bytes:
            nonlocal remaining
            data = self._handle.read(min(n, remaining))
            remaining -= len(data)
            return data

        return read

    def _section(self, name: str) -> tuple[int, int]:
        if name not in self._sections:
            raise IndexCorruptError(f"{self.path}: section {name!r} is missing")
        return self._sections[name]


@contextmanager
def open_index_file(path: Path, kind: str, dim: int) -> Iterator[IndexFile]:
    """Open, verify and describe an index file, or raise the matching ``IndexLoadError``."""
    try:
        handle = path.open("rb")
    except FileNotFoundError as err:
        raise IndexMissingError(f"no saved index at {path}") from err
    except OSError as err:
        raise IndexLoadError(f"cannot open the index at {path}: {err}") from err
    with handle:
        meta = _verify(handle, path)
        if meta.get("kind") != kind:
            raise IndexMismatchError(f"{path} holds a {meta.get('kind')!r} index, not {kind!r}")
        if meta.get("dim") != dim:
            raise IndexMismatchError(f"{path} holds {meta.get('dim')}-d vectors, not {dim}-d")
        yield IndexFile(handle, meta, path)


def read_index_kind(path: Path) -> str:
    """The kind recorded in a saved index (after verifying the whole file)."""
    try:
        with path.open("rb") as handle:
            return str(_verify(handle, path).get("kind"))
    except FileNotFoundError as err:
        raise IndexMissingError(f"no saved index at {path}") from err


def _verify(handle: io.BufferedReader, path: Path) -> dict[str, Any]:
    size = os.fstat(handle.fileno()).st_size
    if size < len(_MAGIC) + _TAIL.size or handle.read(len(_MAGIC)) != _MAGIC:
        raise IndexCorruptError(f"{path} is not a viewfinder index (or is truncated)")
    handle.seek(size - _TAIL.size)
    footer_length, expected_crc, end = _TAIL.unpack(handle.read(_TAIL.size))
    body = size - _TAIL.size
    if end != _END or footer_length > body - len(_MAGIC):
        raise IndexCorruptError(f"{path} is truncated or damaged (bad trailer)")
    handle.seek(0)
    crc = 0
    remaining = body
    while remaining:
        chunk = handle.read(min(_CHUNK, remaining))
        if not chunk:
            raise IndexCorruptError(f"{path} is truncated")
        crc = zlib.crc32(chunk, crc)
        remaining -= len(chunk)
    if crc != expected_crc:
        raise IndexCorruptError(f"{path} is damaged (checksum mismatch)")
    handle.seek(body - footer_length)
    try:
        meta = json.loads(handle.read(footer_length))
    except ValueError as err:
        raise IndexCorruptError(f"{path} has an unreadable footer") from err
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT_VERSION:
        raise IndexCorruptError(f"{path} has an unknown format version")
    sections = meta.get("sections")
    if not isinstance(sections, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("offset"), int)
        and isinstance(s.get("length"), int)
        and 0 <= s["offset"] <= s["offset"] + s["length"] <= body - footer_length
        for s in sections
    ):
        raise IndexCorruptError(f"{path} has an invalid section table")
    return meta


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open directories)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files left by saves whose process died (a kill mid-save)."""
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        pid_text = temp.name[len(path.name) + 2 :].split(".", 1)[0]
        if (
            pid_text.isdigit()
            and int(pid_text) != os.getpid()
            and not _process_alive(int(pid_text))
        ):
            temp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
