"""Cold start, broken down, each part in a fresh Python process against a moto S3 server.

Compares side by side: the bare import of numpy + onnxruntime + fastapi + mangum + boto3,
each library alone, the init steps (manifest load, S3 fetch, session creation, first
inference), and a whole init: import the predict function and answer its first request.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from harness import ROOT, start_s3

RUNS = 5
LIBRARIES = ["numpy", "onnxruntime", "fastapi", "mangum", "boto3"]

IMPORT = """
import time; t = time.perf_counter()
import {modules}
print(time.perf_counter() - t)
"""

STEPS = """
import json, sys, time
sys.path[:0] = {paths!r}
t0 = time.perf_counter()
import numpy, onnxruntime, boto3
from prediction_service.settings import Settings
from prediction_service.store import S3Store
from prediction_service.manifest import Manifest
from prediction_service.inference import load_model, forecast
t1 = time.perf_counter()
settings = Settings.from_env()
store = S3Store.from_settings(settings)
t1b = time.perf_counter()
manifest = Manifest.parse(store.fetch(settings.manifest_key).body)
t2 = time.perf_counter()
spec = manifest.get("drive_stats_a")
raw = store.fetch(settings.model_prefix + spec.file).body
t3 = time.perf_counter()
session = load_model(raw).session
t4 = time.perf_counter()
forecast(session, numpy.zeros((1, 30), dtype=numpy.float32), 3)
t5 = time.perf_counter()
print(json.dumps({{"imports (numpy, onnxruntime, boto3, library)": t1 - t0, "S3 client creation": t1b - t1,
                  "manifest fetch + parse": t2 - t1b,
                  "model fetch from S3": t3 - t2, "session creation": t4 - t3, "first inference": t5 - t4}}))
"""

WHOLE = """
import json, sys, time
t0 = time.perf_counter()
sys.path[:0] = {paths!r}
from support import http_event, lambda_context, load_function
t1 = time.perf_counter()
predict = load_function("models")
t2 = time.perf_counter()
result = predict.handler(http_event("GET", "/v1/models/drive_stats_a/predict"), lambda_context())
t3 = time.perf_counter()
assert result["statusCode"] == 200, result
print(json.dumps({{"import function (init)": t2 - t1, "first request": t3 - t2, "init + first request": t3 - t1}}))
"""


def run(code: str, env: dict[str, str]) -> str:
    """The last line the snippet prints (the function's own output, such as metrics, comes before)."""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def median_of(code: str, env: dict[str, str]) -> dict[str, float]:
    results = [json.loads(run(code, env)) for _ in range(RUNS)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> dict[str, float]:
    server, _ = start_s3()
    paths = [str(ROOT / "layers/prediction"), str(ROOT / "scripts"), str(ROOT / "tests")]
    env = dict(os.environ)
    figures: dict[str, float] = {}
    bare = statistics.median(float(run(IMPORT.format(modules=", ".join(LIBRARIES)), env)) for _ in range(RUNS))
    figures["bare import of the five libraries"] = bare
    for library in LIBRARIES:
        figures[f"  import {library} alone"] = statistics.median(
            float(run(IMPORT.format(modules=library), env)) for _ in range(RUNS)
        )
    for key, value in median_of(STEPS.format(paths=paths), dict(env, MODEL_CACHE_DIR=tempfile.mkdtemp())).items():
        figures[f"  step: {key}"] = value
    for prefetch in ("none", "all"):
        whole_env = dict(env, PREFETCH_MODELS=prefetch, MODEL_CACHE_DIR=tempfile.mkdtemp())
        for key, value in median_of(WHOLE.format(paths=paths), whole_env).items():
            figures[f"prefetch={prefetch}: {key}"] = value
    server.stop()
    print(f"Cold start (fresh processes, median of {RUNS})")
    print(f"{'measure':62} {'ms':>9}")
    for key, value in figures.items():
        print(f"{key:62} {value * 1000:>9.1f}")
    for prefetch in ("none", "all"):
        ratio = figures[f"prefetch={prefetch}: init + first request"] / bare
        print(f"init + first request / bare import, prefetch={prefetch}: {ratio:.2f}x (target <= 1.1x)")
    return figures


if __name__ == "__main__":
    main()
