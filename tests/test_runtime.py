"""The micro-batcher and the model pool, with a recording model (no weights needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from viewfinder.errors import ModelUnavailableError, OverloadedError
from viewfinder.runtime.batcher import BatchPolicy, MicroBatcher
from viewfinder.runtime.pool import ModelPool


class RecordingModel:
    """Doubles numbers; remembers the size of every batch it was given."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        self.batch_sizes: list[int] = []
        self.delay_s = delay_s
        self.fail_on = fail_on

    def preprocess(self, item: int) -> int:
        return item

    def forward(self, batch: Sequence[int]) -> list[int]:
        self.batch_sizes.append(len(batch))
        if self.fail_on is not None and self.fail_on in batch:
            raise ValueError(f"cannot process {self.fail_on}")
        time.sleep(self.delay_s)
        return [2 * x for x in batch]

    def postprocess(self, raw: int, prepared: int) -> int:
        return raw + 0 * prepared

    def warmup_item(self) -> int:
        return 0


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    model = RecordingModel(delay_s=0.02)
    batcher = MicroBatcher("m", model.forward, BatchPolicy(max_batch_size=8, max_wait_s=0.05))
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda x: batcher.submit(x).result(), range(32)))
    finally:
        batcher.close()
    assert results == [2 * x for x in range(32)]
    assert sum(model.batch_sizes) == 32
    assert max(model.batch_sizes) == 8
    assert len(model.batch_sizes) < 32  # items really travelled together


def test_batch_never_exceeds_max_size_and_single_item_does_not_wait_forever() -> None:
    model = RecordingModel()
    batcher = MicroBatcher("m", model.forward, BatchPolicy(max_batch_size=3, max_wait_s=0.01))
    try:
        futures = [batcher.submit(i) for i in range(10)]
        assert [f.result(timeout=5) for f in futures] == [2 * i for i in range(10)]
        started = time.monotonic()
        assert batcher.submit(5).result(timeout=5) == 10
        assert time.monotonic() - started < 1.0
    finally:
        batcher.close()
    assert max(model.batch_sizes) <= 3


def test_full_queue_is_refused_with_overloaded() -> None:
    gate = threading.Event()
    in_forward = threading.Event()

    def blocked_forward(batch: Sequence[int]) -> list[int]:
        in_forward.set()
        gate.wait(5)
        return list(batch)

    batcher = MicroBatcher(
        "slow", blocked_forward, BatchPolicy(max_batch_size=1, max_wait_s=0, queue_limit=2)
    )
    try:
        first = batcher.submit(1)
        # The batcher thread has taken item 1 off the queue and blocks in forward.
        assert in_forward.wait(5)
        batcher.submit(2)
        batcher.submit(3)
        with pytest.raises(OverloadedError, match="retry") as info:
            batcher.submit(4)
        assert info.value.retry_after_s > 0
    finally:
        gate.set()
        batcher.close()
    assert first.result() == 1


def test_forward_failure_reaches_every_caller_of_that_batch_only() -> None:
    model = RecordingModel(fail_on=3)
    batcher = MicroBatcher("m", model.forward, BatchPolicy(max_batch_size=1, max_wait_s=0))
    try:
        with pytest.raises(ValueError, match="cannot process 3"):
            batcher.submit(3).result()
        assert batcher.submit(4).result() == 8
    finally:
        batcher.close()


def test_pool_loads_lazily_once_under_concurrency_and_warms_up() -> None:
    built: list[RecordingModel] = []
    lock = threading.Lock()

    def factory() -> RecordingModel:
        time.sleep(0.05)
        with lock:
            built.append(RecordingModel())
        return built[-1]

    pool = ModelPool({"m": factory}, BatchPolicy(), idle_ttl_s=60)
    try:
        assert pool.loaded() == []
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(lambda x: pool.run("m", x), range(8)))
        assert results == [2 * x for x in range(8)]
        assert len(built) == 1
        assert built[0].batch_sizes[0] == 1  # the warm-up pass ran first
        assert pool.loaded() == ["m"]
    finally:
        pool.close()


def test_pool_unloads_idle_models_and_reloads_on_demand() -> None:
    count = {"n": 0}

    def factory() -> RecordingModel:
        count["n"] += 1
        return RecordingModel()

    pool = ModelPool({"m": factory}, BatchPolicy(), idle_ttl_s=10)
    try:
        pool.run("m", 1)
        assert pool.unload_idle(now=time.monotonic() + 5) == []
        assert pool.unload_idle(now=time.monotonic() + 11) == ["m"]
        assert pool.loaded() == []
        assert pool.run("m", 2) == 4
        assert count["n"] == 2
    finally:
        pool.close()


def test_pool_remembers_a_failed_load_instead_of_retrying_each_call() -> None:
    attempts = {"n": 0}

    def factory() -> RecordingModel:
        attempts["n"] += 1
        raise ModelUnavailableError("no weights here")

    pool = ModelPool({"m": factory}, BatchPolicy(), idle_ttl_s=60)
    for _ in range(3):
        with pytest.raises(ModelUnavailableError, match="no weights"):
            pool.run("m", 1)
    assert attempts["n"] == 1


def test_pool_turns_unexpected_load_errors_into_model_unavailable() -> None:
    def factory() -> RecordingModel:
        raise OSError("corrupt file")

    pool = ModelPool({"m": factory}, BatchPolicy(), idle_ttl_s=60)
    with pytest.raises(ModelUnavailableError, match="corrupt file"):
        pool.get("m")
    with pytest.raises(KeyError, match="unknown model"):
        pool.get("nope")


def test_preload_loads_at_start() -> None:
    pool = ModelPool({"a": RecordingModel, "b": RecordingModel}, BatchPolicy(), idle_ttl_s=60)
    try:
        pool.preload(["b"])
        assert pool.loaded() == ["b"]
    finally:
        pool.close()


def test_different_models_load_safely_from_concurrent_threads(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    """transformers' loading uses process-global state: concurrent loads must not corrupt it."""
    from tests.conftest import make_settings
    from viewfinder.container import Services

    services = Services.build(make_settings(tmp_path, tiny_models))
    names = ["clip_image", "caption", "dinov2", "dinov3", "clip_text"]
    try:
        with ThreadPoolExecutor(len(names)) as ex:
            loaded = list(ex.map(services.pool.get, names))
        assert [m.name for m in loaded] == names
    finally:
        services.close()


class _ObservedLock:
    """A lock that reports each thread about to take it, so a test knows when a thread waits."""

    def __init__(self, on_acquire: threading.Event, watched: list[threading.Thread]) -> None:
        self._lock = threading.Lock()
        self._on_acquire = on_acquire
        self._watched = watched

    def __enter__(self) -> None:
        if threading.current_thread() in self._watched:
            self._on_acquire.set()
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_submit_racing_close_is_run_or_refused_never_left_pending() -> None:
    """submit() checked that the batcher was open, then queued: a close() in between put its stop
    marker first, so the item was never run and its ``.result()`` waited forever."""
    model = RecordingModel()
    batcher = MicroBatcher("m", model.forward, BatchPolicy(max_batch_size=1, max_wait_s=0))
    in_submit = threading.Event()
    closer_moved = threading.Event()  # close() has finished, or waits for submit() to end
    closer_box: list[threading.Thread] = []
    batcher._submit_lock = _ObservedLock(closer_moved, closer_box)  # type: ignore[assignment]
    put_now = batcher._queue.put_nowait

    def put_once_close_has_moved(entry: Any) -> None:
        in_submit.set()
        assert closer_moved.wait(5), "close() neither finished nor waited for submit()"
        put_now(entry)

    batcher._queue.put_nowait = put_once_close_has_moved  # type: ignore[method-assign,assignment]

    def close() -> None:
        try:
            batcher.close()
        finally:
            closer_moved.set()

    submitted: list[Future[Any]] = []
    submitter = threading.Thread(target=lambda: submitted.append(batcher.submit(21)))
    submitter.start()
    assert in_submit.wait(5)
    closer = threading.Thread(target=close)
    closer_box.append(closer)
    closer.start()
    submitter.join(5)
    closer.join(5)
    assert not closer.is_alive()
    assert submitted, "submit() did not return"
    assert submitted[0].result(timeout=2) == 42


def test_submit_after_close_is_refused_with_model_unavailable() -> None:
    batcher = MicroBatcher("m", RecordingModel().forward, BatchPolicy())
    queued = batcher.submit(1)
    batcher.close()
    assert queued.result(timeout=5) == 2  # queued before the stop: still run
    with pytest.raises(ModelUnavailableError, match="unloaded"):
        batcher.submit(2)


class GatedModel(RecordingModel):
    """Pauses in ``preprocess`` (on the caller's thread, the model in use) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.in_use = threading.Event()
        self.release = threading.Event()

    def preprocess(self, item: int) -> int:
        if item != 0:  # not the warm-up item
            self.in_use.set()
            assert self.release.wait(5), "the test never released the model"
        return item


def test_a_model_in_use_is_not_unloaded_and_its_idle_time_counts_from_release() -> None:
    """The idle reaper unloaded a model whose last use had *started* more than the TTL ago, even
    while a request was still using it: that request's submit then found the batcher closed."""
    model = GatedModel()
    pool = ModelPool({"m": lambda: model}, BatchPolicy(), idle_ttl_s=10)
    try:
        pool.get("m")
        results: list[int] = []
        user = threading.Thread(target=lambda: results.append(pool.run("m", 4)))
        user.start()
        assert model.in_use.wait(5)
        assert pool.unload_idle(now=time.monotonic() + 60) == []
        assert pool.loaded() == ["m"]
        model.release.set()
        user.join(5)
        assert results == [8]
        released = time.monotonic()
        assert pool.unload_idle(now=released + 5) == []
        assert pool.unload_idle(now=released + 11) == ["m"]
    finally:
        model.release.set()
        pool.close()


def test_a_lease_keeps_a_model_loaded_across_several_runs() -> None:
    pool = ModelPool({"m": RecordingModel}, BatchPolicy(), idle_ttl_s=10)
    try:
        with pool.lease("m") as model:
            assert pool.unload_idle(now=time.monotonic() + 60) == []
            assert model.run_many([1, 2]) == [2, 4]
        assert pool.unload_idle(now=time.monotonic() + 60) == ["m"]
    finally:
        pool.close()
