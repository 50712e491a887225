"""A process-wide budget of decoded pixels in flight.

A decoded image costs memory by its pixel count, not its file size: a 6 KB PNG can decode to
196 MB. Every decode (and every caller that keeps a full-resolution image while it works on it)
holds its pixels from one ``PixelBudget``, so concurrent requests and workers wait for each
other instead of adding up. The budget is counted in pixels (Pillow keeps 4 bytes per RGB
pixel, and the numpy copies the detectors make add a few more), so its memory is a small
multiple of it: ``VIEWFINDER_DECODE_PIXEL_BUDGET``.

Two rules keep it from deadlocking:

* a hold larger than the whole budget proceeds alone (it waits until nothing else is held),
  rather than never;
* a thread that already holds never waits again: its outer hold covers what it decodes inside
  (a worker holds its whole batch, then decodes the images one by one), so the inner holds are
  free. Waiting there could wait on itself.

Holds are served in arrival order, so a big image is not starved by a stream of small ones.

When a large hold ends, free memory goes back to the operating system (glibc's
``malloc_trim``). Without it the process keeps what its peak needed: Pillow allocates a big
image in 16 MB blocks, under glibc's mmap threshold once that has adapted, so they come from
per-thread heaps that only shrink from the top; measured with ``benchmarks/memory.py``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from viewfinder.imaging.memory import give_back_free_memory

# 64 megapixels: one image at the default VIEWFINDER_MAX_IMAGE_PIXELS (50 MP) with room for
# small ones beside it; about 0.3 GB of Pillow pixels, under 1 GB with the copies made on the
# way (decoder output, conversion, the detectors' arrays).
DEFAULT_DECODE_PIXEL_BUDGET: Final = 64_000_000
# Holds this large (about 16 MB of Pillow pixels) give free memory back when they end; the
# trim costs about a millisecond, nothing beside decoding a 4-megapixel image.
TRIM_AFTER_PIXELS: Final = 4_000_000


class PixelBudget:
    """A semaphore weighted by pixels (see the module docstring for its rules)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a pixel budget needs at least one pixel, got {capacity}")
        self.capacity = capacity
        self._in_flight = 0
        self._changed = threading.Condition()
        self._queue: deque[object] = deque()
        self._holders = threading.local()

    def resize(self, capacity: int) -> None:
        """A new capacity; holds already granted stay, waiting ones are checked against it."""
        if capacity < 1:
            raise ValueError(f"a pixel budget needs at least one pixel, got {capacity}")
        with self._changed:
            self.capacity = capacity
            self._changed.notify_all()

    @property
    def in_flight(self) -> int:
        """Pixels held right now."""
        with self._changed:
            return self._in_flight

    @property
    def waiting(self) -> int:
        """Holds waiting for their turn right now."""
        with self._changed:
            return len(self._queue)

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` while the block runs, waiting (in arrival order) until they fit."""
        if getattr(self._holders, "depth", 0):
            # Covered by this thread's outer hold; waiting here could wait on ourselves.
            self._holders.depth += 1
            try:
                yield
            finally:
                self._holders.depth -= 1
            return
        weight = self._acquire(pixels)
        self._holders.depth = 1
        try:
            yield
        finally:
            self._holders.depth = 0
            self._release(weight)

    def _acquire(self, pixels: int) -> int:
        """Wait for ``pixels`` (a bigger hold than the budget counts as all of it, so it
        proceeds alone); returns the weight held."""
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._in_flight + self._weight(pixels) > (
                    self.capacity
                ):
                    self._changed.wait()
            except BaseException:
                self._queue.remove(ticket)
                self._changed.notify_all()
                raise
            self._queue.popleft()
            weight = self._weight(pixels)
            self._in_flight += weight
            self._changed.notify_all()  # the next in line may fit as well
        return weight

    def _weight(self, pixels: int) -> int:
        return max(0, min(pixels, self.capacity))

    def _release(self, weight: int) -> None:
        with self._changed:
            self._in_flight -= weight
            self._changed.notify_all()
        if weight >= TRIM_AFTER_PIXELS:
            give_back_free_memory()


_process_budget = PixelBudget(DEFAULT_DECODE_PIXEL_BUDGET)


def decode_budget() -> PixelBudget:
    """The budget every decode in this process holds from."""
    return _process_budget


def set_decode_budget(pixels: int) -> None:
    """Size the process's budget (at start-up, from ``VIEWFINDER_DECODE_PIXEL_BUDGET``)."""
    _process_budget.resize(pixels)
