"""``viewfinder serve`` processes that a test or a benchmark starts, and waiting for them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Self

import httpx
from pydantic import AliasChoices

from viewfinder.settings import Settings


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


def _env_name(field: str) -> str:
    """The variable a setting is read from: its alias's first choice where the name differs
    (``ocr_enabled`` is ``VIEWFINDER_OCR``), else ``VIEWFINDER_<FIELD>``."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return alias if isinstance(alias, str) else f"VIEWFINDER_{field.upper()}"


def settings_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``settings`` as ``VIEWFINDER_*`` variables (lists
    comma-separated), so a child process builds the same settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None or isinstance(value, dict):
            continue
        shown = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        env[_env_name(name)] = shown
    env.update(extra or {})
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``viewfinder serve`` in its own process on a loopback port (so a benchmark's clients do
    not share the server's interpreter, as with real clients); a context manager."""

    def __init__(
        self, settings: Settings, extra_env: dict[str, str] | None = None, start_s: float = 300
    ) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = settings_env(settings, extra_env)
        self._start_s = start_s
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "viewfinder", "serve", "--port", str(self.port)],
            env=self._env,
            stdout=subprocess.DEVNULL,
        )
        wait_until_serving(f"{self.url}/health", self._proc, self._start_s)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(timeout=60)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid
