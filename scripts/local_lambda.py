"""Lambda functions that run real code in Docker under moto, for state machines on moto's Step
Functions interpreter (tests/sam/test_moto_lambda.py; scripts/local_bulk.py does the same for
the bulk state machine).

- `moto_lambda_server(host, image)`: a `MotoServer` (scripts/local_s3.py) whose Lambda emulation
  runs each invocation in a container of `image` (`scripts/lambda-image.sh moto-image`) and whose
  Step Functions interpreter executes state machines. moto listens on 127.0.0.1 (the interpreter
  calls its own Lambda API at `localhost:MOTO_PORT`); a relay on `host`, Docker's bridge address
  (`local_bulk.docker_bridge_address()`), on the same port, is where the containers reach it:
  moto gives every function AWS_ENDPOINT_URL=http://host.docker.internal:<port>, so boto3 in a
  function talks to this moto without any setting of its own. Nothing listens beyond this machine
  and its containers.
- `lambda_role(iam)`: the role moto requires a function's Role to name.
- `publish_layer(client, build_dir)`: a built layer directory (`.aws-sam/build/PredictionLayer`,
  holding python/...) published as a layer version, in the request or (faster) through moto's S3.
- `create_function(client, name, code_dir, handler, ...)`: a built function directory (or any
  directory of code) created as a python3.13 function.
- `execute(sfn, state_machine_arn, payload)`: an execution started and waited for.
- `zip_directory(directory)`: the deterministic zip both use (stored, not deflated: 0.5 s for the
  133 MB layer against 5.6 s at deflate level 1; moto takes the 116 MB zip in 1.3 s through its
  S3, in 5.5 to 7.5 s as a request's base64, the deflated 37 MB in 1.4 s).

What one invocation costs (measured on this machine): 1.2 s for a function with no layer; 5 to 6 s
with the prediction layer, 0.5 to 1 s more for a handler importing numpy, onnxruntime and
prediction_service and scoring a model from S3; a Task state running that one, 4.7 to 8 s from
start_execution to the end seen by polling (on 2 CPUs). moto does most of it afresh every time,
because it removes a function's Docker volumes when its last running invocation ends: it creates a
volume for the code and one for the layers, starts a `busybox` container to copy each zip in (the
layer's 117 MB are unzipped and tarred in moto's process, about 4 s of the 5), then starts the
function's container. Invocations running at the same time share the volumes: a Map's iterations,
which moto starts all at once unless MaxConcurrency says otherwise, three of them took 2 to 3 s
more than one Task. moto waits at most 300 s for a container, whatever the function's Timeout.

What a Task state sees: moto's answer to lambda:invoke is {"StatusCode": 200, "Payload": ...} (no
ExecutedVersion, no SdkHttpMetadata). A failed invocation (the runner's non-zero exit) fails the
Task with the payload's errorType as its Error and the payload as its Cause, so Retry and Catch can
name a handler's exception class as on AWS; a payload that is not such an object gives the Error
"Exception". moto passes the event as a command-line argument: an event over 128 KiB fails to start
("argument list too long", Error "Exception"), where AWS takes 256 KiB.

moto names Docker volumes after what they hold, the code's after its zip's digest, the layers'
after their names and versions, and mounts a volume of that name that already exists without
copying into it; when its last invocation using it ends, it removes it. So two moto servers on one
Docker daemon (two test sessions) running the same code at once share volumes and remove them
under each other (an invocation then fails: "error running docker: 409 ... volume is in use"), and
a volume left behind by a server killed mid-call is mounted by the next that names one alike. Here
every zip carries its server's address as its zip comment and a layer is named after its zip's
digest: a volume's name then says which files it holds, and running servers never share one.

Importing this module imports the standard library only (boto3 when a client is made).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_bulk import docker_bridge_address, moto_with_lambda  # noqa: F401 - docker_bridge_address: for callers
from local_s3 import MotoServer

RUNTIME = "python3.13"  # template.yaml's Runtime, and the Python of scripts/lambda-image.sh's image
ROLE_TRUST = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                             "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}}]}


@contextmanager
def moto_lambda_server(host: str, image: str) -> Iterator[MotoServer]:
    """A moto server for Lambda in Docker and executing state machines (see the module's docstring);
    `host`: Docker's bridge address, where the containers reach it; `image`: the Lambda image."""
    with moto_with_lambda(host, image) as server:
        yield server


def lambda_role(iam: Any, name: str = "moto-lambda") -> str:
    """The ARN of role `name` in moto's IAM (created if missing): moto refuses a function whose
    Role names no existing role. It trusts Lambda and Step Functions; moto enforces no policy."""
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ROLE_TRUST))["Role"]["Arn"]


def zip_directory(directory: Path | str, *, comment: str = "") -> bytes:
    """The files under `directory` as a zip: sorted, fixed dates, modes kept, __pycache__ left
    out, stored, with the zip comment `comment` (the same bytes for the same files and comment,
    whenever and wherever it is made)."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if not files:
        raise ValueError(f"{directory} holds no files")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.comment = comment.encode()
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def server_mark(client: Any) -> str:
    """The zip comment that makes the Docker volumes of one moto server's functions and layers its
    own (see the module's docstring): the server's address, which no two running servers share."""
    return f"moto server {client.meta.endpoint_url}"


def publish_layer(client: Any, build_dir: Path | str, *, name: str | None = None, s3: Any = None,
                  bucket: str | None = None) -> str:
    """Publish `build_dir` (its python/... as Lambda mounts it under /opt) with the Lambda client
    `client`; returns the layer version's ARN. The layer is named `name`, by default the
    directory's name and the zip's digest (see the module's docstring). Given an S3 client `s3`
    of the same moto and an existing `bucket`, the zip goes there (under lambda-layers/) and the
    layer is published from it: 1.3 s for the prediction layer, against 6 s in the request."""
    build_dir = Path(build_dir)
    content = zip_directory(build_dir, comment=server_mark(client))
    name = name or f"{build_dir.name}-{hashlib.sha256(content).hexdigest()[:16]}"
    if s3 is None:
        source: dict[str, Any] = {"ZipFile": content}
    else:
        if not bucket:
            raise ValueError("publishing through S3 needs a bucket")
        source = {"S3Bucket": bucket, "S3Key": f"lambda-layers/{name}.zip"}
        s3.put_object(Bucket=bucket, Key=source["S3Key"], Body=content)
    return client.publish_layer_version(LayerName=name, Content=source, CompatibleRuntimes=[RUNTIME])["LayerVersionArn"]


def create_function(client: Any, name: str, code_dir: Path | str, handler: str, *, layers: Iterable[str] = (),
                    environment: dict[str, str] | None = None, memory_mb: int = 128, timeout_s: int = 3,
                    role_arn: str) -> str:
    """Create function `name` (python3.13) from the files in `code_dir` with the Lambda client
    `client`; returns its ARN. `handler`: module.function; `layers`: layer version ARNs;
    `environment`: its variables (moto sets AWS_ENDPOINT_URL itself, over any given here);
    `memory_mb`: the container's memory limit too; `timeout_s`: enforced by the image's runner,
    but moto stops waiting for any invocation after 300 s; `role_arn`: see `lambda_role`."""
    code = zip_directory(code_dir, comment=server_mark(client))
    return client.create_function(
        FunctionName=name, Runtime=RUNTIME, Role=role_arn, Handler=handler, Layers=list(layers),
        Code={"ZipFile": code}, MemorySize=memory_mb, Timeout=timeout_s,
        Environment={"Variables": dict(environment or {})})["FunctionArn"]


def execute(sfn: Any, state_machine_arn: str, payload: Any, *, timeout: float = 300) -> dict[str, Any]:
    """Start an execution of `state_machine_arn` with `payload` (JSON) as its input and wait for
    its end; returns describe_execution's answer (status, output or error and cause)."""
    arn = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + timeout
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{arn} still running after {timeout} s")
        time.sleep(0.5)
    return execution
