"""The contract the runtime runs every model by: one batcher and one pool run them all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

ItemT = TypeVar("ItemT")
PreparedT = TypeVar("PreparedT")
OutputT_co = TypeVar("OutputT_co", covariant=True)


class BatchModel(Protocol[ItemT, PreparedT, OutputT_co]):
    """A loaded model split into the three steps the runtime schedules separately.

    ``preprocess`` runs on the caller's thread (CPU work parallelises across requests),
    ``forward`` runs on the batcher's thread with items gathered from concurrent callers,
    ``postprocess`` runs back on the caller's thread.
    """

    def preprocess(self, item: ItemT) -> PreparedT: ...

    def forward(self, batch: Sequence[PreparedT]) -> Sequence[Any]:
        """One raw output per prepared item, in order."""
        ...

    def postprocess(self, raw: Any, prepared: PreparedT) -> OutputT_co: ...

    def warmup_item(self) -> ItemT:
        """A representative input used once after loading to warm kernels and caches."""
        ...
