"""A real S3 server on 127.0.0.1 for the tests that need one (moto's standalone server, started
as a subprocess once per test module), with an environment in which boto3 talks only to it.
Registered as a pytest plugin by conftest.py; modules that use it mark themselves
``pytestmark = requires_s3`` so they are skipped when boto3 or ``moto[server]`` is missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from viewfinder.testing.server import free_port

_MISSING = [m for m in ("boto3", "moto", "flask", "flask_cors") if not importlib.util.find_spec(m)]
requires_s3 = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"S3 tests need boto3 and moto[server] (missing: {', '.join(_MISSING)}): "
    "pip install -e '.[dev]'",
)

REGION = "us-east-1"


def _moto_server() -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script)]
    found = shutil.which("moto_server")
    if found is None:
        pytest.skip("the moto_server command of moto[server] is not installed")
    return [found]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server on 127.0.0.1, and an environment in which boto3 talks only to it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask instance metadata
        env.setenv("AWS_CONFIG_FILE", str(log_path.parent / "no-config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(log_path.parent / "no-credentials"))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
            env.delenv(name, raising=False)
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [*_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    exited = server.poll() is not None
                    if exited or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"moto_server did not start: {log_path.read_text()}"
                        ) from None
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture
def s3(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"vf-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def bucket_keys(s3: Any, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


class Recording:
    """A boto3 client that records which S3 operations were asked of it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return method(**kwargs)

        return call
