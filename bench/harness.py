"""What every benchmark shares: paths, a moto S3 server holding models/, timing helpers.

Benchmarks run on 127.0.0.1 only, with a fixed number of iterations, and print the
figures they compare side by side in one run.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "prediction"), str(ROOT / "scripts"), str(ROOT / "tests")]
BUCKET = "bench-models"


@dataclass(frozen=True)
class Timing:
    label: str
    samples: list[float]  # seconds

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) * 1e6

    @property
    def p99_us(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e6

    def row(self) -> str:
        return f"{self.label:44} {len(self.samples):>6} {self.median_us:>12.1f} {self.p99_us:>12.1f}"


HEADER = f"{'measure':44} {'N':>6} {'median us':>12} {'p99 us':>12}"


def time_calls(label: str, fn: Callable[[], Any], n: int, warmup: int = 50) -> Timing:
    """Time `n` calls. What they print (the metrics' EMF lines) goes to /dev/null, as to a
    pipe whose reader keeps up, the way Lambda's runtime reads a function's stdout."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
    return Timing(label, samples)


class MotoServer:
    """moto's S3 server in its own process (as S3 is not in ours: no shared GIL), on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        moto = Path(sys.executable).parent / "moto_server"
        self.process = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_s3(models_dir: Path = ROOT / "models") -> tuple[MotoServer, str]:
    """A moto S3 server with models/ published; the environment points the service at it."""
    import boto3
    from publish_models import publish
    from support import free_port

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    server = MotoServer(port)
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url)
    deadline = time.monotonic() + 30
    while True:
        try:
            s3.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    s3.create_bucket(Bucket=BUCKET)
    publish(s3, BUCKET, models_dir=models_dir)
    from generate_events import EVENT_TOKEN_HASH  # the token support.http_event's events carry

    os.environ.update(MODEL_BUCKET=BUCKET, S3_ENDPOINT_URL=url, API_TOKEN_HASHES=EVENT_TOKEN_HASH)
    return server, url
