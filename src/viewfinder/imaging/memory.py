"""Giving freed memory back to the operating system.

glibc's malloc keeps freed memory for reuse: big blocks (Pillow allocates images in 16 MB
blocks) land in per-thread heaps once glibc's adaptive mmap threshold has grown past them, and a
heap only shrinks from its top. A server that decoded a few 49-megapixel images then holds
their peak for good. ``malloc_trim(0)`` releases every free page of every heap; elsewhere (musl,
macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def give_back_free_memory() -> bool:
    """Release the process's free heap memory to the OS; False where that is not possible."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
