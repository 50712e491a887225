"""The model pool: lazy loading behind a per-model lock, a preload list, a warm-up pass, one
micro-batcher per loaded model, and unloading after an idle TTL. A model is used under a lease
(``lease``, or ``run`` for one item): the reaper never unloads a leased model, and its idle time
counts from the last lease's release."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from viewfinder.errors import ModelUnavailableError, ViewfinderError
from viewfinder.runtime.batch_model import BatchModel
from viewfinder.runtime.batcher import BatchPolicy, MicroBatcher

log = logging.getLogger(__name__)

ModelFactory = Callable[[], BatchModel[Any, Any, Any]]

# A model that failed to load is not retried on every request (a gated or missing model would
# otherwise cost a hub round-trip per task); the error is remembered this long.
FAILURE_MEMORY_S = 60.0

# transformers builds models under process-global init contexts (meta-device weights), so two
# threads loading different models at once corrupt each other ("Cannot copy out of meta
# tensor"). Loads are rare: one at a time per process.
_LOAD_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    name: str
    model: BatchModel[Any, Any, Any]
    batcher: MicroBatcher
    load_seconds: float
    last_used: float = field(default_factory=time.monotonic)
    leases: int = 0  # callers using the model now (changed under the pool's guard)

    def run(self, item: Any) -> Any:
        """preprocess here, forward in a batch on the batcher's thread, postprocess here."""
        self.last_used = time.monotonic()
        prepared = self.model.preprocess(item)
        raw = self.batcher.submit(prepared).result()
        return self.model.postprocess(raw, prepared)

    def run_many(self, items: Sequence[Any]) -> list[Any]:
        """Like ``run`` for several items at once: all are queued before waiting, so a bulk
        caller (a background worker) hands the device whole batches."""
        self.last_used = time.monotonic()
        prepared = [self.model.preprocess(item) for item in items]
        futures = [self.batcher.submit(p) for p in prepared]
        return [
            self.model.postprocess(f.result(), p) for f, p in zip(futures, prepared, strict=True)
        ]

    def run_each(self, items: Sequence[Any]) -> list[Any]:
        """Like ``run_many``, but each item's failure is its own: the list holds each item's
        output, or the exception its preprocessing, forward or postprocessing raised. Items
        are prepared a batch at a time and queued together, so the batcher sees whole batches
        (one forward for up to ``max_batch_size`` of them) while the next batch is prepared; at
        most two batches (and never more than the queue's limit) wait at once. A full queue
        (``OverloadedError``) still fails the call."""
        self.last_used = time.monotonic()
        size = self.batcher.max_batch_size
        window = max(1, min(2 * size, self.batcher.queue_limit))
        out: list[Any] = [None] * len(items)
        pending: deque[tuple[int, Any, Future[Any]]] = deque()

        def collect(until: int) -> None:
            while len(pending) > until:
                index, prepared, future = pending.popleft()
                try:
                    out[index] = self.model.postprocess(future.result(), prepared)
                except Exception as exc:  # noqa: BLE001 - handed to the caller, item by item
                    out[index] = exc

        for start in range(0, len(items), size):
            chunk: list[tuple[int, Any]] = []
            for index in range(start, min(start + size, len(items))):
                try:
                    chunk.append((index, self.model.preprocess(items[index])))
                except Exception as exc:  # noqa: BLE001 - handed to the caller, item by item
                    out[index] = exc
            collect(max(0, window - len(chunk)))
            for index, prepared in chunk:
                pending.append((index, prepared, self.batcher.submit(prepared)))
        collect(0)
        return out


class ModelPool:
    """Owns every loaded model of the process. Thread-safe."""

    def __init__(
        self,
        factories: Mapping[str, ModelFactory],
        policy: BatchPolicy,
        idle_ttl_s: float,
        policies: Mapping[str, BatchPolicy] | None = None,
    ) -> None:
        self._factories = dict(factories)
        self._policy = policy
        self._policies = dict(policies or {})
        self._idle_ttl_s = idle_ttl_s
        self._loaded: dict[str, LoadedModel] = {}
        self._failures: dict[str, tuple[float, ViewfinderError]] = {}
        self._locks = {name: threading.Lock() for name in self._factories}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def register(self, name: str, factory: ModelFactory) -> None:
        """Add a model, or replace one that is not loaded (custom models, fakes in tests)."""
        with self._guard:
            if name in self._loaded:
                raise RuntimeError(f"model {name!r} is loaded; unload it before replacing it")
            self._factories[name] = factory
            self._locks.setdefault(name, threading.Lock())
            self._failures.pop(name, None)

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def loaded(self) -> list[str]:
        with self._guard:
            return sorted(self._loaded)

    def peek(self, name: str) -> LoadedModel | None:
        """The loaded model, or None; never loads. For looking at it, not running it."""
        with self._guard:
            return self._loaded.get(name)

    def failure(self, name: str) -> str | None:
        """Why the model last failed to load, while that failure is remembered (see
        ``FAILURE_MEMORY_S``); None when it did not fail lately."""
        with self._guard:
            failure = self._failures.get(name)
        if failure is None or time.monotonic() - failure[0] >= FAILURE_MEMORY_S:
            return None
        return str(failure[1])

    def run(self, name: str, item: Any) -> Any:
        with self.lease(name) as model:
            return model.run(item)

    @contextmanager
    def lease(self, name: str) -> Iterator[LoadedModel]:
        """The model (loading it if needed), kept loaded until the block ends."""
        loaded = self._checkout(name, lease=True)
        try:
            yield loaded
        finally:
            with self._guard:
                loaded.leases -= 1
                loaded.last_used = time.monotonic()

    def get(self, name: str) -> LoadedModel:
        """The model, loading it if needed, without a lease: the idle reaper may unload it once
        it has been idle for the TTL. Run models under ``lease``."""
        return self._checkout(name, lease=False)

    def _checkout(self, name: str, lease: bool) -> LoadedModel:
        if name not in self._factories:
            raise KeyError(f"unknown model {name!r}; known: {', '.join(self.names)}")
        with self._guard:
            loaded = self._loaded.get(name)
            if loaded is not None:
                return self._touch(loaded, lease)
        with self._locks[name]:  # one loader per model; others wait for it
            with self._guard:
                loaded = self._loaded.get(name)
                failure = self._failures.get(name)
                if loaded is not None:
                    return self._touch(loaded, lease)
            if failure is not None and time.monotonic() - failure[0] < FAILURE_MEMORY_S:
                raise failure[1]
            loaded = self._load(name)
            with self._guard:
                self._loaded[name] = loaded
                self._failures.pop(name, None)
                return self._touch(loaded, lease)

    @staticmethod
    def _touch(loaded: LoadedModel, lease: bool) -> LoadedModel:
        """Mark a model just used (and leased); called under the guard, so the reaper sees
        either the model before this call or the lease."""
        loaded.last_used = time.monotonic()
        if lease:
            loaded.leases += 1
        return loaded

    def _load(self, name: str) -> LoadedModel:
        started = time.monotonic()
        try:
            with _LOAD_LOCK:
                model = self._factories[name]()
        except ViewfinderError as exc:
            with self._guard:
                self._failures[name] = (time.monotonic(), exc)
            raise
        except Exception as exc:  # a broken file must not surface as a 500 per request
            error = ModelUnavailableError(f"model {name!r} failed to load: {exc}")
            with self._guard:
                self._failures[name] = (time.monotonic(), error)
            raise error from exc
        policy = self._policies.get(name, self._policy)
        batcher = MicroBatcher(name, model.forward, policy)
        loaded = LoadedModel(name, model, batcher, 0.0)
        try:
            loaded.run(model.warmup_item())
        except Exception:
            batcher.close()
            raise
        loaded.load_seconds = time.monotonic() - started
        log.info("loaded model %s in %.2fs (warm-up included)", name, loaded.load_seconds)
        return loaded

    def preload(self, names: Iterable[str]) -> None:
        for name in names:
            self.get(name)

    def unload(self, name: str) -> bool:
        with self._locks[name], self._guard:
            loaded = self._loaded.pop(name, None)
        if loaded is None:
            return False
        loaded.batcher.close()
        log.info("unloaded model %s", name)
        return True

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload the models without a lease whose last use ended more than the TTL ago."""
        now = time.monotonic() if now is None else now
        with self._guard:  # checked and removed at once: no lease can be taken in between
            idle = [
                self._loaded.pop(name)
                for name, m in list(self._loaded.items())
                if m.leases == 0 and now - m.last_used > self._idle_ttl_s
            ]
        for loaded in idle:
            loaded.batcher.close()
            log.info("unloaded idle model %s", loaded.name)
        return [loaded.name for loaded in idle]

    def start_reaper(self, interval_s: float | None = None) -> None:
        """Unload idle models in the background (checks every ``interval_s``)."""
        if self._reaper is not None or self._idle_ttl_s <= 0:
            return
        interval = interval_s if interval_s is not None else max(1.0, self._idle_ttl_s / 4)

        def loop() -> None:
            while not self._stop.wait(interval):
                self.unload_idle()

        self._reaper = threading.Thread(target=loop, name="model-reaper", daemon=True)
        self._reaper.start()

    def close(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join()
        for name in self.loaded():
            self.unload(name)
