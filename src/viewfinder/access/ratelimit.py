"""Token buckets per client, in this process's memory.

Each client may make ``per_minute`` requests at once, then one more every ``60 / per_minute``
seconds. Several processes each count their own requests (the limit is per process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A bound on the clients remembered, so a flood of distinct clients cannot grow memory forever.
MAX_CLIENTS = 100_000


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate)

    def wait_s(self, client: str) -> float:
        """Seconds until ``client`` may make a request (0: now), without using one."""
        if not self.enabled:
            return 0.0
        with self._lock:
            tokens = self._tokens(client, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, client: str) -> float:
        """Use one request of ``client``: 0 when allowed, else the seconds to wait (and none
        is used)."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self.clock()
            tokens = self._tokens(client, now)
            if tokens < 1:
                return (1 - tokens) / self.rate
            if client not in self._buckets and len(self._buckets) >= self.max_clients:
                self._forget_idle(now)
            self._buckets[client] = (tokens - 1, now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        # A client whose bucket has refilled is indistinguishable from a new one: drop those,
        # and if every client is busy, start over (a brief leniency, never a refusal).
        full = [c for c in self._buckets if self._tokens(c, now) >= self.capacity]
        for client in full:
            del self._buckets[client]
        if len(self._buckets) >= self.max_clients:
            self._buckets.clear()
