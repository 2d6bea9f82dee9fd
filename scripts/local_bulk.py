"""The bulk scoring part of the template on moto, for `make bulk` and the tests: moto's Step
Functions interpreter runs statemachine/bulk.asl.json against moto's S3, and its Lambda tasks run
the functions `sam build` built (BulkJobFunction, BulkWorkerFunction, the PredictionLayer) in
Docker, one container an invocation (scripts/moto-lambda-image.sh).

moto 5.2 cannot run all of the production definition; `local_definition` changes those parts and
nothing else, each for a reason:

- ItemBatcher: moto's parser has none. It is removed, and the Map's ItemSelector hands the worker
  the batch event Distributed Map would, around one item: `{"Items": [item], "BatchInput":
  {"job": ...}}`. With a prefix of shards that is what production does too (one shard a batch);
  a CSV object's rows run one row a worker call (the production batches of rows are checked by
  the worker's tests on the documented batch events).
- The JSON Lines reader (ReaderConfig InputType JSONL): moto has none. A job over one JSON Lines
  object ends in a Fail state saying so; JSON Lines shards under a prefix run (the worker reads them).
- ResultWriter: moto writes only a manifest, no result files, and reads its Bucket and Prefix
  paths from the Map's results instead of its input (so the production paths fail there). It is
  removed: the Map's results (the batches' counts) go into the state, and the summary finds the
  failed shards from the counts the batches wrote.
- MaxConcurrencyPath / ToleratedFailurePercentagePath: read as the production definition reads them.

`python scripts/local_bulk.py` (make bulk) builds a dataset of at least 100,000 rows from the
shipped models' data, runs a job on it with scripts/bulk.py's progress bar, prints its summary, and
copies what the job wrote to .local/bulk-results/<job_id>/ (moto's S3 ends with the run).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
DEFINITION = ROOT / "statemachine" / "bulk.asl.json"
ROLE = "arn:aws:iam::123456789012:role/bulk-local"
BUCKET = "bulk-local"
FUNCTIONS = {  # logical id -> (handler, memory MB, timeout s), as template.yaml declares them
    "BulkJobFunction": ("app.job_handler", 1024, 300),
    "BulkWorkerFunction": ("app.batch_handler", 2048, 900),
}


def local_definition(definition: dict[str, Any], functions: dict[str, str]) -> dict[str, Any]:
    """The production definition with the substitutions made and moto's missing parts changed (see
    the module's docstring). Raises KeyError if the definition no longer has what this changes."""
    text = json.dumps(definition)
    for name, arn in functions.items():
        text = text.replace("${" + name + "Arn}", arn)
    local = json.loads(text)
    states = local["States"]
    for name in ("ScoreCsv", "ScoreShards"):
        state = states[name]
        batch_input = state.pop("ItemBatcher")["BatchInput"]
        item = state.get("ItemSelector", {"value.$": "$$.Map.Item.Value"})
        if set(item) == {"value.$"}:
            selector = {"Items.$": "States.Array($$.Map.Item.Value)"}
        else:  # rows: wrapped as the production ItemSelector wraps them
            selector = {"Items": [item]}
        state["ItemSelector"] = {**selector, "BatchInput": batch_input}
        del state["ResultWriter"]
    states["ScoreJsonLines"] = {"Type": "Fail", "Error": "NotEmulated",
                                "Cause": "moto's Step Functions interpreter has no JSON Lines reader: put the rows "
                                         "in shards under a prefix, or run the job on AWS"}
    return local


def zipped(directory: Path, extra: dict[str, str] | None = None) -> bytes:
    """A directory as a zip (and `extra` files: name -> text), entries in a fixed order with a fixed date."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # stored: 0.5 s for the layer, not 5
        for name, text in (extra or {}).items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


@dataclass(frozen=True)
class LocalBulkStack:
    """The deployed parts: the state machine's ARN and the clients of the moto server."""

    url: str
    state_machine_arn: str

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.url, aws_access_key_id="moto", aws_secret_access_key="moto",
                            region_name="us-east-1")


def deploy(url: str, *, model_bucket: str, build_dir: Path = BUILD, environment: dict[str, str] | None = None,
           ) -> LocalBulkStack:
    """The layer, the two functions and the state machine, created in the moto server at `url`
    (whose Lambda emulation runs them in Docker), from `sam build`'s output.

    moto names the Docker volumes it copies code into after the layer's name and the code's
    digest, the same in every moto server: the layer's name and a file in the code carry this
    deployment's id, so that two emulations at once (a test run beside `make bulk`) never share
    a volume, nor remove one the other uses."""
    import uuid

    import boto3

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=url, aws_access_key_id="moto", aws_secret_access_key="moto",
                            region_name="us-east-1")

    iam, lambdas, sfn = client("iam"), client("lambda"), client("stepfunctions")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": ["lambda.amazonaws.com",
                                                                               "states.amazonaws.com"]}}]}
    iam.create_role(RoleName=ROLE.rsplit("/", 1)[1], AssumeRolePolicyDocument=json.dumps(trust))
    deployment = uuid.uuid4().hex[:12]
    # the layer (130 MB) through S3: a request body that size takes moto several seconds more
    layer_key = f"deployments/{deployment}/prediction-layer.zip"
    client("s3").put_object(Bucket=model_bucket, Key=layer_key, Body=zipped(build_dir / "PredictionLayer"))
    layer = lambdas.publish_layer_version(LayerName=f"prediction-{deployment}",
                                         Content={"S3Bucket": model_bucket, "S3Key": layer_key},
                                         CompatibleRuntimes=["python3.13"])["LayerVersionArn"]
    variables = {"MODEL_BUCKET": model_bucket, "MODEL_PREFIX": "models/", "MODEL_CACHE_DIR": "/tmp/model-cache",
                 "POWERTOOLS_SERVICE_NAME": "prediction-api", "POWERTOOLS_METRICS_DISABLED": "true",
                 "POWERTOOLS_LOG_LEVEL": "WARNING", **(environment or {})}
    arns = {}
    for name, (handler, memory, timeout) in FUNCTIONS.items():
        arns[name] = lambdas.create_function(
            FunctionName=name, Runtime="python3.13", Role=ROLE, Handler=handler, Layers=[layer],
            Code={"ZipFile": zipped(build_dir / name, {".deployment": deployment})}, MemorySize=memory, Timeout=timeout,
            Environment={"Variables": variables})["FunctionArn"]
    definition = local_definition(json.loads(DEFINITION.read_text()), arns)
    arn = sfn.create_state_machine(name="bulk-scoring", definition=json.dumps(definition), roleArn=ROLE,
                                   type="STANDARD")["stateMachineArn"]
    return LocalBulkStack(url, arn)


@contextmanager
def moto_with_lambda(bridge: str, image: str) -> Iterator[Any]:
    """A moto server whose Lambda emulation runs functions in `image` and whose Step Functions
    interpreter executes state machines (moto's `execute_state_machine`).

    It listens on 127.0.0.1, where the interpreter calls its own Lambda API (`localhost:MOTO_PORT`),
    and the containers reach it through a relay on the Docker bridge address `bridge` (the same
    port: moto tells each container `host.docker.internal:MOTO_PORT`). Nothing listens beyond
    this machine and its containers."""
    from local_s3 import MotoServer, free_port

    port = free_port()
    with relay(bridge, port, "127.0.0.1", port), \
         MotoServer(port=port, env={"MOTO_PORT": str(port), "MOTO_DOCKER_LAMBDA_IMAGE": image}) as server:
        request = urllib.request.Request(f"{server.url}/moto-api/config", method="POST",  # noqa: S310 - ours
                                         data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            pass
        yield server


@contextmanager
def relay(host: str, port: int, target_host: str, target_port: int) -> Iterator[None]:
    """Every TCP connection to host:port passed on to target_host:target_port, both ways, in threads."""
    import socket
    import socketserver
    import threading

    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection((target_host, target_port), timeout=900) as upstream:
                done = threading.Event()

                def pump(source: socket.socket, sink: socket.socket) -> None:
                    try:
                        while data := source.recv(65536):
                            sink.sendall(data)
                    except OSError:
                        pass
                    finally:
                        done.set()

                threading.Thread(target=pump, args=(upstream, self.request), daemon=True).start()
                pump(self.request, upstream)
                done.wait(timeout=900)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server((host, port), Pipe) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
        finally:
            server.shutdown()


def docker_bridge_address() -> str:
    """The host's address on Docker's default bridge, where containers find host.docker.internal."""
    import re

    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True).stdout
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    if not match:
        raise RuntimeError(f"docker0 has no IPv4 address: {out!r}")
    return match.group(1)


def moto_lambda_image() -> str:
    result = subprocess.run([str(ROOT / "scripts" / "moto-lambda-image.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the Lambda image could not be built (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def sam_build() -> None:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["sam", "build"], cwd=ROOT, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="user_churn")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shard-rows", type=int, default=10_000)
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="the shards' format")
    parser.add_argument("--no-build", action="store_true", help="use .aws-sam/build as it is")
    args = parser.parse_args(argv)

    from bulk import follow, read_summary, report, start
    from bulk_datasets import write_shards
    from local_api import text_models
    from local_s3 import create_bucket

    image = moto_lambda_image()
    if not args.no_build:
        sam_build()
    with moto_with_lambda(docker_bridge_address(), image) as server:
        s3 = server.client()
        create_bucket(s3, BUCKET, text_models=text_models() if "minilm" in args.model else None)
        started = time.monotonic()
        keys = write_shards(s3, BUCKET, f"datasets/{args.model}/", args.model, args.rows, shard_rows=args.shard_rows,
                            fmt=args.format)
        print(f"{args.rows:,} rows for {args.model} in {len(keys)} shards under s3://{BUCKET}/datasets/{args.model}/ "
              f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
        stack = deploy(server.url, model_bucket=BUCKET,
                       environment={"S3_ENDPOINT_URL": server.url.replace(server.host, "host.docker.internal")})
        job = {"job_id": f"demo-{args.model}", "model": args.model,
               "input": {"bucket": BUCKET, "prefix": f"datasets/{args.model}/"},
               "output": {"bucket": BUCKET, "prefix": "bulk-results/"},
               "id_column": "user_id" if args.model == "user_churn" else "id", "max_concurrency": 2}
        sfn = stack.client("stepfunctions")
        execution = follow(sfn, s3, start(sfn, stack.state_machine_arn, job), job, timeout=1800)
        status = report(execution, read_summary(s3, job))
        local = download(s3, BUCKET, f"bulk-results/{job['job_id']}/", ROOT / ".local" / "bulk-results" / job["job_id"])
        print(f"the job's objects (results/, errors/, batches/, summary.json) are copied to {local.relative_to(ROOT)}/",
              file=sys.stderr)
        return status


def download(s3: Any, bucket: str, prefix: str, into: Path) -> Path:
    """Every object under `prefix`, written under `into` (what was there before is replaced)."""
    import shutil

    shutil.rmtree(into, ignore_errors=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            target = into / item["Key"][len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return into


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "scripts"))
    sys.exit(main())
