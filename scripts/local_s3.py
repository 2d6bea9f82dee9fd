"""The one fake S3 of this repository (moto), for `make run`, the tests and the benchmarks.

- `MotoServer`: moto's server in a process of its own (its memory and GIL are not the caller's),
  answering by the time it is constructed; `stop()`, or the end of a `with` block, ends it. It
  binds 127.0.0.1 unless given another address (the `sam local` tests bind Docker's bridge
  address, where the containers reach it). It emulates every service moto has, not only S3
  (`sam local` asks its STS for the account id).
- `create_bucket`: a bucket with models/ published into it, as `make publish-models` does.
- `in_process_s3`: moto's `mock_aws` for a block, with such a bucket: no server, for unit tests.

Importing this module imports the standard library only (the benchmarks' children import
tests/support.py, which imports it, before they measure); boto3 and moto are imported when used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# moto accepts any credentials; these are passed explicitly so that no profile or environment is read.
CREDENTIALS = {"aws_access_key_id": "moto", "aws_secret_access_key": "moto", "region_name": "us-east-1"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on now (the operating system's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's server in its own process on `host`:`port` (a free port if none is given), answering
    by the time the constructor returns. `url` is where clients reach it (127.0.0.1 when it binds
    every address); `env`: variables added to its environment (moto reads some of its settings there)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", timeout: float = 30,
                 env: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        _refuse_if_taken(host, self.port)  # else the server already there would answer for this one
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"  # noqa: S104
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter's moto, our arguments
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=None if env is None else {**os.environ, **env})
        from botocore.config import Config

        client = self.client(config=Config(retries={"total_max_attempts": 1}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_buckets()
                return
            except Exception as exc:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"moto did not answer on {self.url} within {timeout} s "
                                       f"(exit code {self.process.returncode})") from exc
                time.sleep(0.1)

    def client(self, service: str = "s3", **options: Any) -> Any:
        """A boto3 client of this server (`options` as boto3.client takes them)."""
        import boto3

        return boto3.client(service, endpoint_url=self.url, **{**CREDENTIALS, **options})

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset), as a fresh server would."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310 - http://, ours
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            pass

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _refuse_if_taken(host: str, port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no obstacle
        try:
            s.bind((host, port))
        except OSError as exc:
            raise RuntimeError(f"{host}:{port} is taken (another moto server still running?)") from exc


def create_bucket(s3: Any, bucket: str, *, publish: bool = True, **publish_options: Any) -> list[str]:
    """Create `bucket` with the client `s3` and, unless `publish=False`, publish models/ into it as
    `make publish-models` does (scripts/publish_models.publish, given `publish_options`: prefix,
    models_dir, text_models). Returns the keys written."""
    s3.create_bucket(Bucket=bucket)
    if not publish:
        return []
    from publish_models import publish as publish_models

    return publish_models(s3, bucket, **publish_options)


@contextmanager
def in_process_s3(bucket: str, *, publish: bool = True, **publish_options: Any) -> Iterator[Any]:
    """moto's `mock_aws` for the block (every boto3 client made in it, of any service, is answered
    in this process), with `bucket` made as `create_bucket` makes it; yields an S3 client. Credentials
    and region come from the environment, as for any boto3 client."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3")
        create_bucket(client, bucket, publish=publish, **publish_options)
        yield client
