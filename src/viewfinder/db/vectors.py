"""How vectors are stored in the database: little-endian float32 bytes, whatever the machine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

VECTOR_DTYPE = np.dtype("<f4")


def encode_vector(vector: NDArray[np.float32]) -> bytes:
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"a stored vector is non-empty and 1-D, got shape {vector.shape}")
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def decode_vectors(blobs: Sequence[bytes], dim: int) -> NDArray[np.float32]:
    """(len(blobs), dim) float32; a writable copy, so callers may normalise or project in place."""
    buffer = bytearray(b"".join(blobs))
    if len(buffer) != len(blobs) * dim * VECTOR_DTYPE.itemsize:
        raise ValueError(f"stored vectors do not match their recorded dimension {dim}")
    flat = np.frombuffer(buffer, dtype=VECTOR_DTYPE).astype(np.float32, copy=False)
    return flat.reshape(len(blobs), dim)
