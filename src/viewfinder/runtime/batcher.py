"""A micro-batcher: one thread per loaded model gathers items from concurrent callers into
batches (up to ``max_batch_size``, waiting at most ``max_wait_s`` after the first item), so the
device sees real batches while each caller still waits only for its own result."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from viewfinder.errors import ModelUnavailableError, OverloadedError

log = logging.getLogger(__name__)

ForwardFn = Callable[[Sequence[Any]], Sequence[Any]]


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int = 16
    max_wait_s: float = 0.005
    queue_limit: int = 256


class MicroBatcher:
    """Runs ``forward`` on batches of submitted items on a dedicated thread."""

    def __init__(self, name: str, forward: ForwardFn, policy: BatchPolicy) -> None:
        self.name = name
        self._forward = forward
        self._policy = policy
        self._queue: queue.Queue[tuple[Any, Future[Any]] | None] = queue.Queue(policy.queue_limit)
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        # Held from the open check to the enqueue, and by close() to mark the batcher closed:
        # an item is then either queued before the stop marker (and run) or refused.
        self._submit_lock = threading.Lock()
        self._closed = False
        self.batches_run = 0
        self.items_run = 0
        self._thread.start()

    @property
    def max_batch_size(self) -> int:
        return self._policy.max_batch_size

    @property
    def queue_limit(self) -> int:
        return self._policy.queue_limit

    def submit(self, item: Any) -> Future[Any]:
        """Queue one item; its future resolves to the raw output. Full queue: OverloadedError;
        closed (the model was unloaded): ModelUnavailableError."""
        future: Future[Any] = Future()
        with self._submit_lock:
            if self._closed:
                raise ModelUnavailableError(
                    f"model {self.name!r} was unloaded (the server may be stopping); retry"
                )
            try:
                self._queue.put_nowait((item, future))
            except queue.Full:
                raise OverloadedError(
                    f"model {self.name!r} has {self._policy.queue_limit} items queued; "
                    "retry shortly",
                    retry_after_s=1.0,
                ) from None
        return future

    def close(self) -> None:
        """Finish the items already queued, refuse later ones, then stop the thread."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)  # behind every item queued so far; nothing can follow it
        self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = self._gather(batch)
            self._run(batch)
            if stop:
                return

    def _gather(self, batch: list[tuple[Any, Future[Any]]]) -> bool:
        """Fill ``batch`` until it is full or the wait is over; True when close() was seen."""
        deadline = time.monotonic() + self._policy.max_wait_s
        while len(batch) < self._policy.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                entry = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                return False
            if entry is None:
                return True
            batch.append(entry)
        return False

    def _run(self, batch: list[tuple[Any, Future[Any]]]) -> None:
        live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outputs = self._forward([item for item, _ in live])
            if len(outputs) != len(live):
                raise RuntimeError(
                    f"{self.name}: forward returned {len(outputs)} outputs for {len(live)} items"
                )
        except BaseException as exc:  # every caller must hear about the failure
            log.exception("forward of %s failed on a batch of %d", self.name, len(live))
            for _, fut in live:
                fut.set_exception(exc)
            return
        self.batches_run += 1
        self.items_run += len(live)
        for (_, fut), out in zip(live, outputs, strict=True):
            fut.set_result(out)
