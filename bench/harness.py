"""What every benchmark shares: paths, a moto S3 server holding models/, timing helpers.

Benchmarks run on 127.0.0.1 only, with a fixed number of iterations, and print the
figures they compare side by side in one run.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "prediction"), str(ROOT / "scripts"), str(ROOT / "tests")]

from local_s3 import MotoServer, create_bucket  # noqa: E402  (moto in its own process: the benchmarks' S3)

BUCKET = "bench-models"

# The start of a benchmark's child process (its code a string, formatted with `paths`): the library
# and scripts on its path, and its peak memory. VmHWM, not ru_maxrss: a child started by fork keeps
# the parent's ru_maxrss across exec.
CHILD_PRELUDE = """
import importlib.util, json, os, sys, time, types
from pathlib import Path

def high_water_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

sys.path[:0] = {paths!r}
"""


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


def start_s3(models_dir: Path = ROOT / "models", text_models: Path | None = None) -> tuple[MotoServer, str]:
    """A moto S3 server with models/ published (and the text models built in `text_models`); the
    environment points the service at it."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    server = MotoServer()
    url = server.url
    create_bucket(server.client(), BUCKET, models_dir=models_dir, text_models=text_models)
    from generate_events import EVENT_TOKEN_HASH  # the token support.http_event's events carry

    os.environ.update(MODEL_BUCKET=BUCKET, S3_ENDPOINT_URL=url, API_TOKEN_HASHES=EVENT_TOKEN_HASH)
    from prediction_service.composition import components
    from prediction_service.web.auth import default_verifier

    components.cache_clear()  # parts an earlier benchmark of the same run built point at its S3
    default_verifier.cache_clear()
    return server, url


def interleaved(calls: dict[str, Any], rounds: int, n: int, warmup: int) -> dict[str, Timing]:
    """Each call timed `rounds` times `n` calls, the calls taking turns; samples pooled per call."""
    samples: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(rounds):
        for label, fn in calls.items():
            samples[label] += time_calls(label, fn, n, warmup=warmup).samples
    return {label: Timing(label, s) for label, s in samples.items()}
