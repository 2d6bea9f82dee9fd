"""Start a bulk scoring job, follow it with a progress bar, print its summary.

Against a deployed stack (the state machine's ARN from its outputs):

    python scripts/bulk.py --stack onnx-prediction-api --model user_churn --id-column user_id \\
        --input s3://BUCKET/datasets/users.csv --output s3://BUCKET/bulk-results/

or any state machine (`--state-machine-arn`), on any endpoint (`--endpoint-url`, e.g. the local
emulation `make bulk` starts). A job is given by flags or as a JSON file (`--job`, the body the
state machine takes; see docs/bulk-scoring.md). Without `--job-id` the id is the model's name and
a digest of the job: running the same job again writes the same objects.

Exit status: 0 the job succeeded (rows refused by validation included), 1 it failed or was
refused, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POLL_SECONDS = 2.0
OUTPUT_KEY = "BulkStateMachineArn"


def parse_s3(url: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key); s3://bucket or s3://bucket/ -> (bucket, "")."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket:
        raise argparse.ArgumentTypeError(f"{url!r} is not an s3://bucket/key URL")
    return bucket, key


def job_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The job the flags describe (or the --job file), its id defaulting to a digest of it."""
    if args.job:
        try:
            job = json.loads(Path(args.job).read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--job {args.job}: {exc}") from None
        if not isinstance(job, dict):
            raise SystemExit(f"--job {args.job}: the job is a JSON object")
    else:
        if not (args.model and args.input and args.output):
            raise SystemExit("give --job FILE, or --model, --input and --output")
        bucket, key = args.input
        source = {"prefix": key} if key.endswith("/") or not key else {"key": key}
        out_bucket, out_prefix = args.output
        job = {"model": args.model, "input": {"bucket": bucket, **source},
               "output": {"bucket": out_bucket, "prefix": out_prefix, "format": args.format}}
        if args.version:
            job["version"] = args.version
        if args.id_column:
            job["id_column"] = args.id_column
        columns = {name: value for name, value in (
            ("features", args.features.split(",") if args.features else None), ("window", args.window),
            ("text", args.text), ("inputs", dict(p.split("=", 1) for p in args.input_column) or None)) if value}
        if columns:
            job["columns"] = columns
        for name in ("batch_size", "max_concurrency", "tolerated_failure_percentage"):
            if getattr(args, name) is not None:
                job[name] = getattr(args, name)
    if args.job_id:
        job["job_id"] = args.job_id
    job.setdefault("job_id", f"{job.get('model', 'job')}-{_digest(job)}")
    job["job_id"] = str(job["job_id"])
    if not isinstance(job.get("output"), dict) or not job["output"].get("bucket"):
        raise SystemExit('the job names no output bucket: "output": {"bucket": ..., "prefix": ...}')
    return job


def _digest(job: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:10]


def state_machine_arn(cloudformation: Any, stack: str) -> str:
    outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        if output["OutputKey"] == OUTPUT_KEY:
            return output["OutputValue"]
    raise SystemExit(f"stack {stack!r} has no {OUTPUT_KEY} output: is it deployed from this template?")


def start(sfn: Any, arn: str, job: dict[str, Any]) -> str:
    name = f"{job['job_id'][:60]}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    return sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(job))["executionArn"]


def map_run_counts(sfn: Any, execution_arn: str) -> dict[str, int] | None:
    """The map run's batch counts (total, succeeded, failed...), once it has started."""
    try:
        runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        if not runs:
            return None
        counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]).get("itemCounts", {})
    except Exception:  # an emulator without map runs: the batches' own counts in S3 stand in
        return None
    return counts or None


def job_root(job: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key prefix) the job writes under, its output prefix read as the job's first step
    reads it (default `bulk/`, stripped, ending in '/')."""
    output = job.get("output") if isinstance(job.get("output"), dict) else {}
    prefix = str(output.get("prefix", "bulk/")).strip().lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return str(output.get("bucket", "")), f"{prefix}{job['job_id']}/"


def batches_done(s3: Any, job: dict[str, Any]) -> int:
    """The batches that have written their counts (under <output>/<job_id>/batches/)."""
    bucket, root = job_root(job)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root + "batches/")
    return sum(page.get("KeyCount", 0) for page in pages)


def follow(sfn: Any, s3: Any, execution_arn: str, job: dict[str, Any], *, timeout: float | None = None,
           quiet: bool = False) -> dict[str, Any]:
    """Poll the execution until it ends, showing the batches done on stderr (stdout keeps the
    summary alone, for a pipe); returns describe_execution's answer."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[detail]}"), console=Console(stderr=True), disable=quiet,
                  transient=False) as progress:
        task = progress.add_task(f"job {job['job_id']}", total=None, detail="checking the job")
        while True:
            execution = sfn.describe_execution(executionArn=execution_arn)
            counts = map_run_counts(sfn, execution_arn)
            if counts:
                done = counts.get("succeeded", 0) + counts.get("failed", 0)
                progress.update(task, total=counts.get("total") or None, completed=done,
                                detail=f"{counts.get('failed', 0)} failed" if counts.get("failed") else "")
            else:
                done = batches_done(s3, job)
                progress.update(task, completed=done, detail=f"{done} batches written")
            if execution["status"] != "RUNNING":
                progress.update(task, detail=execution["status"].lower())
                return execution
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the job did not finish within {timeout} s; it goes on: {execution_arn}")
            time.sleep(POLL_SECONDS)


def read_summary(s3: Any, job: dict[str, Any]) -> dict[str, Any] | None:
    bucket, root = job_root(job)
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=root + "summary.json")["Body"].read())
    except Exception:
        return None


def report(execution: dict[str, Any], summary: dict[str, Any] | None) -> int:
    """Print how the job ended; the exit status."""
    status = execution["status"]
    if summary is not None:
        print(json.dumps(summary, indent=2))
    if status == "SUCCEEDED":
        where = summary["results"] if summary else "the output prefix"
        print(f"done: {summary['rows_scored'] if summary else '?'} rows scored, results in {where}", file=sys.stderr)
        return 0
    print(f"the job {status.lower()}: {execution.get('error', '')}: {execution.get('cause', '')}".rstrip(": "),
          file=sys.stderr)
    return 1


def clients(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import boto3

    options = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    if args.region:
        options["region_name"] = args.region
    return boto3.client("stepfunctions", **options), boto3.client("s3", **options), boto3.client("cloudformation", **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack: its BulkStateMachineArn output")
    where.add_argument("--state-machine-arn")
    parser.add_argument("--endpoint-url", help="an AWS endpoint other than AWS's (the local emulation)")
    parser.add_argument("--region")
    parser.add_argument("--job", help="the job as a JSON file (instead of the flags below)")
    parser.add_argument("--job-id")
    parser.add_argument("--model")
    parser.add_argument("--version", help="a version or an alias of the model")
    parser.add_argument("--input", type=parse_s3,
                        help="s3://bucket/key.csv|.jsonl, or s3://bucket/prefix/ (every object under it)")
    parser.add_argument("--output", type=parse_s3, help="s3://bucket/prefix/ (the job writes under <prefix><job_id>/)")
    parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="the results' format")
    parser.add_argument("--id-column")
    parser.add_argument("--features", help="a classifier's feature columns, comma-separated")
    parser.add_argument("--window", help="a forecaster's window column")
    parser.add_argument("--text", help="a text model's text column")
    parser.add_argument("--input-column", action="append", default=[], metavar="INPUT=COLUMN",
                        help="a generic ONNX model's input and the column it is in (repeat)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-concurrency", type=int)
    parser.add_argument("--tolerated-failure-percentage", type=float)
    parser.add_argument("--no-follow", action="store_true", help="start the job and print its execution ARN")
    parser.add_argument("--timeout", type=float, help="stop following after this many seconds")
    args = parser.parse_args(argv)
    if any("=" not in pair for pair in args.input_column):
        parser.error("--input-column takes INPUT=COLUMN")
    job = job_from_args(args)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sfn, s3, cloudformation = clients(args)
        arn = args.state_machine_arn or state_machine_arn(cloudformation, args.stack)
        execution_arn = start(sfn, arn, job)
        print(f"started job {job['job_id']}: {execution_arn}", file=sys.stderr)
        if args.no_follow:
            print(execution_arn)
            return 0
        execution = follow(sfn, s3, execution_arn, job, timeout=args.timeout)
        return report(execution, read_summary(s3, job))
    except (BotoCoreError, ClientError, TimeoutError) as exc:
        print(f"bulk: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
