"""Bulk scoring: rows per second of one worker for each shipped model, its peak memory, and what a
million rows cost on Lambda + Step Functions + S3 against SageMaker Batch Transform.

Each model runs in a fresh process (its peak memory is its own): the worker's real handler
(functions/bulk/app.py, batch_handler) takes Distributed Map batch events of BATCH_ROWS rows as
the state machine sends them, and writes each batch's results, errors and counts to moto S3 on
127.0.0.1. The first batch loads the model; the next ROUNDS are timed (wall and the process's CPU
time). Rows: churn rows (4 features), 30-day forecast windows, 8x8 digit images, MiniLM texts of
4-16 words (scripts/bulk_datasets.py).

Cost per million rows, at the published on-demand prices of us-east-1 (PRICES, each with its page):
- Lambda: the CPU seconds measured, priced as Lambda prices one vCPU (1,769 MB has one vCPU's
  worth of CPU, so a CPU-bound worker costs the same per row at any size from there up), plus a
  request per batch;
- Step Functions (standard): the state transitions of each batch's child workflow;
- S3: a PUT per batch for its results and one for its counts, and the reader's GET;
- SageMaker Batch Transform on ml.m5.large (2 vCPUs, its smallest general-purpose instance) doing
  the same CPU work on both vCPUs at once (an optimistic assumption for it), plus the minutes an
  instance takes to start, which are billed.

    python bench/bulk_scoring.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from harness import CHILD_PRELUDE, ROOT, start_s3

BATCH_ROWS = 1000  # the template's BulkBatchSize
SHARD_ROWS = 10_000  # scripts/bulk_datasets.py's shards (make bulk)
MODELS = {"user_churn": "user_churn", "drive_stats_a": "drive_stats_a", "digits": "digits",
          "all-minilm-l6-v2": "all-minilm-l6-v2"}
ID_COLUMN = {"user_churn": "user_id"}

# On-demand prices, us-east-1 (x86), as published on each page.
PRICES = {
    "lambda_gb_second": (0.0000166667, "https://aws.amazon.com/lambda/pricing/ (x86, first 6 billion GB-s a month)"),
    "lambda_request": (0.20 / 1e6, "https://aws.amazon.com/lambda/pricing/"),
    "sfn_transition": (0.025 / 1000, "https://aws.amazon.com/step-functions/pricing/ (standard workflows)"),
    "s3_put": (0.005 / 1000, "https://aws.amazon.com/s3/pricing/ (S3 Standard, PUT/COPY/POST/LIST)"),
    "s3_get": (0.0004 / 1000, "https://aws.amazon.com/s3/pricing/ (S3 Standard, GET/SELECT)"),
    "sagemaker_m5_large_hour": (0.115, "https://aws.amazon.com/sagemaker/pricing/ (Batch Transform, ml.m5.large)"),
}
LAMBDA_MB_PER_VCPU = 1769  # https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html
TRANSITIONS_PER_BATCH = 4  # the child workflow: start, ScoreBatch, BatchRefused?, BatchScored
PUTS_PER_BATCH = 2  # results and counts (an errors object only when a row is refused)
SAGEMAKER_VCPUS = 2
SAGEMAKER_STARTUP_MINUTES = 5  # an instance's provisioning and the container's start, billed

WORKLOAD = CHILD_PRELUDE + """
from bulk_datasets import rows
root = Path({root!r})
spec = importlib.util.spec_from_file_location("app", root / "functions" / "bulk" / "app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
context = types.SimpleNamespace(aws_request_id="bench", function_name="bulk", function_version="$LATEST",
                                memory_limit_in_mb=2048, invoked_function_arn="arn:aws:lambda:us-east-1:1:function:bulk")
job = {{"job_id": "bench", "model": {model!r}, "id_column": {id_column!r},
        "input": {{"bucket": {bucket!r}, "key": "datasets/bench.jsonl"}}, "output": {{"bucket": {bucket!r}, "prefix": "bulk-results/"}}}}
values = list(rows({model!r}, {batch} * ({rounds} + 1)))
for row in values:
    row.pop("label", None)
def event(n):
    chunk = values[n * {batch}:(n + 1) * {batch}]
    return {{"Items": [{{"index": n * {batch} + i, "row": r}} for i, r in enumerate(chunk)], "BatchInput": {{"job": job}}}}
started = time.perf_counter()
first = app.batch_handler(event(0), context)
first_s = time.perf_counter() - started
assert first.get("scored") == {batch}, first
walls, cpus = [], []
for n in range(1, {rounds} + 1):
    e = event(n)
    cpu, wall = time.process_time(), time.perf_counter()
    result = app.batch_handler(e, context)
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
    assert result.get("scored") == {batch}, result
event_bytes = len(json.dumps(event(1)))
print(json.dumps({{"first_s": first_s, "walls": walls, "cpus": cpus, "peak_mb": high_water_mb(), "event_bytes": event_bytes}}))
"""


def measure(model: str, rounds: int, env: dict[str, str], bucket: str) -> dict[str, float]:
    paths = [str(ROOT / "layers/prediction"), str(ROOT / "scripts")]
    code = WORKLOAD.format(paths=paths, root=str(ROOT), model=model, id_column=ID_COLUMN.get(model, "id"),
                           bucket=bucket, batch=BATCH_ROWS, rounds=rounds)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cost_per_million(cpu_s_per_row: float, rows_per_batch: int = BATCH_ROWS) -> dict[str, float]:
    price = {name: value for name, (value, _) in PRICES.items()}
    batches = 1e6 / rows_per_batch
    cpu_s = cpu_s_per_row * 1e6
    lambda_compute = cpu_s * LAMBDA_MB_PER_VCPU / 1024 * price["lambda_gb_second"]
    lambda_requests = batches * price["lambda_request"]
    sfn = batches * TRANSITIONS_PER_BATCH * price["sfn_transition"]
    s3 = batches * PUTS_PER_BATCH * price["s3_put"] + batches * price["s3_get"]
    hours = cpu_s / SAGEMAKER_VCPUS / 3600
    sagemaker = (hours + SAGEMAKER_STARTUP_MINUTES / 60) * price["sagemaker_m5_large_hour"]
    return {"lambda": lambda_compute + lambda_requests, "sfn": sfn, "s3": s3,
            "serverless": lambda_compute + lambda_requests + sfn + s3, "sagemaker": sagemaker,
            "sagemaker_hours": hours}


def main(rounds: int = 3) -> dict[str, float]:
    from local_api import text_models

    server, url = start_s3(text_models=text_models())
    bucket = os.environ["MODEL_BUCKET"]
    env = dict(os.environ, MODEL_CACHE_DIR=tempfile.mkdtemp(), POWERTOOLS_METRICS_DISABLED="true",
               POWERTOOLS_LOG_LEVEL="WARNING", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="2048")
    figures: dict[str, float] = {}
    try:
        print(f"One worker, batches of {BATCH_ROWS} rows as Distributed Map sends them, results written to S3 "
              f"(moto on 127.0.0.1); {rounds} warm batches timed after the first")
        print(f"{'model':18} {'first batch s':>13} {'rows/s':>9} {'CPU ms/1k rows':>15} {'peak MB':>8} {'event KB':>9}")
        results = {}
        for model in MODELS:
            m = measure(model, rounds if model != "all-minilm-l6-v2" else max(1, rounds - 1), env, bucket)
            wall = sorted(m["walls"])[len(m["walls"]) // 2] / BATCH_ROWS
            cpu = sorted(m["cpus"])[len(m["cpus"]) // 2] / BATCH_ROWS
            results[model] = (wall, cpu)
            print(f"{model:18} {m['first_s']:>13.2f} {1 / wall:>9,.0f} {cpu * 1e6:>15.1f} {m['peak_mb']:>8.0f} "
                  f"{m['event_bytes'] / 1024:>9.0f}")
            figures[f"{model}_rows_per_s"] = round(1 / wall)
            figures[f"{model}_peak_mb"] = round(m["peak_mb"])
        print()
        print("Cost per million rows, USD (us-east-1 on-demand; see PRICES for the pages)")
        print(f"{'model':18} {'Lambda':>9} {'Step Fn':>9} {'S3':>8} {'total':>9} {'shards':>9} {'SageMaker BT':>13} "
              f"{'BT / total':>11}")
        for model, (wall, cpu) in results.items():
            c = cost_per_million(cpu)
            sharded = cost_per_million(cpu, SHARD_ROWS)["serverless"]
            print(f"{model:18} {c['lambda']:>9.4f} {c['sfn']:>9.4f} {c['s3']:>8.4f} {c['serverless']:>9.4f} "
                  f"{sharded:>9.4f} {c['sagemaker']:>13.4f} {c['sagemaker'] / c['serverless']:>10.2f}x")
            figures[f"{model}_usd_per_million"] = round(c["serverless"], 4)
            figures[f"{model}_sagemaker_usd_per_million"] = round(c["sagemaker"], 4)
        print(f"total: batches of {BATCH_ROWS} rows (a CSV or JSON Lines object); shards: the same job as objects of "
              f"{SHARD_ROWS:,} rows under a prefix, one batch each (fewer transitions, requests and PUTs).")
        print(f"SageMaker Batch Transform: ml.m5.large at ${PRICES['sagemaker_m5_large_hour'][0]}/h, the same CPU "
              f"seconds on its {SAGEMAKER_VCPUS} vCPUs, plus {SAGEMAKER_STARTUP_MINUTES} billed minutes of start-up.")
        for name, (value, source) in PRICES.items():
            print(f"  {name}: {value:.10g} USD ({source})")
    finally:
        server.stop()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args().rounds)
