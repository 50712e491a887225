"""Waiting for a ``viewfinder serve`` process that a test or a benchmark started."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_until_serving(
    url: str,
    proc: subprocess.Popen[Any],
    timeout_s: float,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``url`` until it answers 200. Raise ``RuntimeError`` (with ``output()``, e.g. the
    server's log) when the process exits first, or when ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited during start-up: {output()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer {url} within {timeout_s:g} s")
        time.sleep(0.1)
