"""Cold start, timed from outside: whole processes, from exec to their first answer.

Each measured process is a fresh `python` started by this script, with nothing imported
beforehand and an empty model cache directory. The clock starts before the exec and stops
when the process reports its answer on a pipe of its own; the process is then killed, so
interpreter teardown is left out (a Lambda execution environment never exits after a
request). Side by side, in alternating rounds (A B A B ...):

- the bare import: `import numpy, onnxruntime, fastapi, mangum, boto3`, then report;
- each first request: import the function's `app.py` (as Lambda's runtime does at init),
  call its handler on an event file of `events/` against the local S3 (moto in its own
  process), then report the status code; once more with `PREFETCH_MODELS=all`, which starts
  loading the models in a thread during the imports.

Medians and ratios to the bare import are printed, with a per-step breakdown of our own init
(each step timed inside one fresh process) beside them.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from harness import ROOT, start_s3

ROUNDS = int(os.environ.get("COLD_START_ROUNDS", "11"))
LIBRARIES = ["numpy", "onnxruntime", "fastapi", "mangum", "boto3"]
TARGET = 1.1


@dataclass(frozen=True)
class FirstRequest:
    label: str
    function: str
    event: str
    prefetch: str = "none"  # PREFETCH_MODELS


FIRST_REQUESTS = [
    FirstRequest("first forecast", "models", "models_forecast_drive_stats_a.json"),
    FirstRequest("first classification", "models", "models_predict_ids_probability.json"),
    FirstRequest("first /api/runs", "runs", "runs_document_probability.json"),
    FirstRequest("first forecast, prefetching", "models", "models_forecast_drive_stats_a.json", prefetch="all"),
]

# What the measured processes run: no module of this repository (nor httpx, which the tests'
# helpers import) is loaded before the clock starts. `REPORT` is the pipe's write end.
BARE = """
import os, sys
import {modules}
os.write(int(sys.argv[1]), b"ok\\n")
sys.stdin.read()
"""

FIRST = """
import json, os, sys
from types import SimpleNamespace
report, function_dir, layer_dir, event_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sys.path[:0] = [function_dir, layer_dir]
import app
context = SimpleNamespace(function_name="bench", function_version="$LATEST", memory_limit_in_mb=1024,
                          aws_request_id="bench-0001", get_remaining_time_in_millis=lambda: 30_000,
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench")
with open(event_file) as f:
    result = app.handler(json.load(f), context)
os.write(report, f"{result['statusCode']}\\n".encode())
sys.stdin.read()
"""

# Our init, one step at a time, inside one fresh process (what each step adds to the imports).
STEPS = """
import json, sys, time
sys.path[:0] = {paths!r}
t = [time.perf_counter()]
import numpy, onnxruntime, fastapi, mangum, boto3
t.append(time.perf_counter())
from prediction_service import composition, observability
from prediction_service.awslambda import handler
from prediction_service.web import app as app_module
from prediction_service.web.routers import models
t.append(time.perf_counter())
app = app_module.create_app(models.router, title="bench", description="bench")
lambda_handler = handler.lambda_handler(app, composition.cache_stats)
t.append(time.perf_counter())
parts = composition.components()
t.append(time.perf_counter())
manifest = parts.registry.manifest()
t.append(time.perf_counter())
spec = manifest.get("drive_stats_a")
parts.registry.load(spec)
t.append(time.perf_counter())
from prediction_service.protocols.v1.schemas import PredictRequest
parts.service.predict("drive_stats_a", PredictRequest(), 0.0).value.model_dump_json()
t.append(time.perf_counter())
names = ["bare import of the five libraries", "our modules (Powertools, pydantic schemas, routers)",
         "FastAPI app, middleware and Mangum handler", "S3 client and the parts", "manifest: GET, parse",
         "model and dataset side by side: GET, sha256, session, CSV", "first prediction and its JSON"]
print(json.dumps(dict(zip(names, (b - a for a, b in zip(t, t[1:]))))))
"""


def timed(code: str, args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds from exec to the process's report, and the report; the process is then killed."""
    read_end, write_end = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(write_end), *args],
        pass_fds=(write_end,), env=env, stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.readline()
    elapsed = time.perf_counter() - started
    process.kill()
    _, stderr = process.communicate(timeout=30)
    if not report:
        raise RuntimeError(f"the measured process died before answering:\n{stderr.decode()[-2000:]}")
    return elapsed, report.decode().strip()


def first_request(request: FirstRequest, env: dict[str, str]) -> float:
    cache_dir = tempfile.mkdtemp(prefix="cold-start-")  # nothing in /tmp from an earlier process
    try:
        args = [str(ROOT / "functions" / request.function), str(ROOT / "layers" / "prediction"),
                str(ROOT / "events" / request.event)]
        seconds, status = timed(FIRST, args, dict(env, MODEL_CACHE_DIR=cache_dir, PREFETCH_MODELS=request.prefetch))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    if status != "200":
        raise RuntimeError(f"{request.label}: answered {status}, not 200")
    return seconds


def steps(env: dict[str, str]) -> dict[str, float]:
    paths = [str(ROOT / "layers" / "prediction")]
    runs = []
    for _ in range(5):
        cache_dir = tempfile.mkdtemp(prefix="cold-steps-")
        out = subprocess.run([sys.executable, "-c", STEPS.format(paths=paths)],
                             env=dict(env, MODEL_CACHE_DIR=cache_dir), capture_output=True, text=True,
                             check=True).stdout
        shutil.rmtree(cache_dir, ignore_errors=True)
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def environment() -> dict[str, str]:
    """The functions' environment as the template sets it, pointed at the local S3."""
    env = dict(os.environ)
    env.update(POWERTOOLS_SERVICE_NAME="prediction-api", POWERTOOLS_METRICS_NAMESPACE="PredictionApi",
               POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_LOG_LEVEL="INFO", PREFETCH_MODELS="none",
               AWS_LAMBDA_FUNCTION_NAME="bench", PYTHONPATH="")
    return env


def main() -> dict[str, float]:
    # As the layer's build does (layers/prediction/Makefile): Lambda reads the library's bytecode,
    # it never compiles it at init (and this machine may set PYTHONDONTWRITEBYTECODE).
    compileall.compile_dir(ROOT / "layers" / "prediction" / "prediction_service", quiet=1)
    server, _ = start_s3()
    env = environment()
    bare_code = BARE.format(modules=", ".join(LIBRARIES))
    samples: dict[str, list[float]] = {"bare import": [], **{r.label: [] for r in FIRST_REQUESTS}}
    try:
        timed(bare_code, [], env)  # one unmeasured round each: the OS's file cache, the pyc files
        for request in FIRST_REQUESTS:
            first_request(request, env)
        for _ in range(ROUNDS):
            for request in FIRST_REQUESTS:  # A B A B ...: the bare import before each first request
                samples["bare import"].append(timed(bare_code, [], env)[0])
                samples[request.label].append(first_request(request, env))
        breakdown = steps(env)
    finally:
        server.stop()
    medians = {label: statistics.median(values) for label, values in samples.items()}
    bare = medians["bare import"]
    print(f"Cold start: fresh processes from exec to their first answer, teardown left out "
          f"({ROUNDS} alternating rounds)")
    print(f"{'process':28} {'median ms':>10} {'min ms':>8} {'median / bare':>14} {'paired ratio':>13}  target")
    print(f"{'bare import':28} {bare * 1000:>10.1f} {min(samples['bare import']) * 1000:>8.1f}")
    figures: dict[str, float] = {"bare import": bare}
    for index, request in enumerate(FIRST_REQUESTS):
        values = samples[request.label]
        # each first request against the bare import run just before it: drifts of the machine's
        # speed from one round to the next cancel out
        bares = samples["bare import"][index :: len(FIRST_REQUESTS)]
        paired = statistics.median(v / b for v, b in zip(values, bares, strict=True))
        verdict = "met" if paired <= TARGET else "missed"
        print(f"{request.label:28} {medians[request.label] * 1000:>10.1f} {min(values) * 1000:>8.1f} "
              f"{medians[request.label] / bare:>13.2f}x {paired:>12.2f}x  <= {TARGET}x {verdict}")
        figures[request.label] = medians[request.label]
        figures[f"{request.label} / bare import"] = paired
    print("\nOur init, step by step, in one fresh process (median of 5)")
    for key, value in breakdown.items():
        print(f"  {key:60} {value * 1000:>8.1f} ms")
        figures[f"step: {key}"] = value
    return figures


if __name__ == "__main__":
    main()
