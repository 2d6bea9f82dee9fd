"""State machines on moto's Step Functions interpreter whose Lambda tasks run real code in Docker
(scripts/local_lambda.py, the image of `scripts/lambda-image.sh moto-image`).

A function made here from a temporary directory, with the `sam build` prediction layer, reads a
model and rows from moto's S3 with boto3 and scores them with numpy and onnxruntime; its answers
are compared with this interpreter's onnxruntime on the same model. Errors: a handler's exception
becomes the execution's error by its class name, and an invocation killed for memory fails as
Lambda's Runtime.OutOfMemory. The image's runner (scripts/moto_lambda_runner.py) is also run here
on this machine, without Docker, for the ends Lambda reports without the handler's help.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from local_lambda import (
    create_function,
    docker_bridge_address,
    execute,
    lambda_role,
    moto_lambda_server,
    publish_layer,
)
from local_s3 import MotoServer
from support import ROOT, skip_loudly

BUCKET = "moto-lambda"
MODEL_KEY = "models/user_churn.onnx"
ROWS = [[4.0, 2.0, 18.0, 0.0], [0.5, 40.0, 2.0, 6.0], [2.0, 10.0, 6.0, 1.0]]
RUNNER = ROOT / "scripts" / "moto_lambda_runner.py"

# The function's code: imports what the prediction layer brings, reads moto's S3 through the
# AWS_ENDPOINT_URL moto gives it, scores with onnxruntime.
APP = '''
import json
import os
import time

STARTED = time.time()

import boto3
import numpy as np
import onnxruntime as ort
import prediction_service


class ChurnRefused(Exception):
    pass


def score(event, context):
    s3 = boto3.client("s3")
    model = s3.get_object(Bucket=event["bucket"], Key=event["model_key"])["Body"].read()
    rows = json.loads(s3.get_object(Bucket=event["bucket"], Key=event["rows_key"])["Body"].read())
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: np.asarray(rows, dtype=np.float32)})
    time.sleep(event.get("sleep_s", 0))
    return {
        "labels": labels.tolist(),
        "churn_probability": probabilities[:, 1].tolist(),
        "feature_sum": float(np.asarray(rows).sum()),
        "prediction_service": prediction_service.__file__,
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "function": context.function_name,
        "memory_mb": context.memory_limit_in_mb,
        "started": STARTED,
        "ended": time.time(),
    }


def refuse(event, context):
    raise ChurnRefused(f"user {event['user_id']} may not be scored")
'''

HOG = '''
def hog(event, context):
    return len(bytearray(event["mb"] * 2**20))
'''


def invoke_task(function: str) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function, "Payload.$": "$"}, "End": True}


@dataclass(frozen=True)
class Deployed:
    server: MotoServer
    state_machines: dict[str, str]  # name -> ARN
    layer_seconds: float
    layer_versions: dict[str, str]  # numpy's and onnxruntime's in the layer published

    def run(self, name: str, payload: Any) -> tuple[dict[str, Any], float]:
        """The ended execution and its seconds from start to end as seen from here."""
        started = time.monotonic()
        execution = execute(self.server.client("stepfunctions"), self.state_machines[name], payload, timeout=120)
        return execution, time.monotonic() - started


@pytest.fixture(scope="module")
def moto_image(lambda_image: str) -> str:
    result = subprocess.run([str(ROOT / "scripts" / "lambda-image.sh"), "moto-image"], capture_output=True, text=True)
    if result.returncode == 3:
        skip_loudly(f"DOCKER CANNOT START ON THIS MACHINE; moto Lambda tests skipped:\n{result.stderr[-2000:]}")
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def deployed(moto_image: str, sam_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    code = tmp_path_factory.mktemp("function")
    (code / "app.py").write_text(APP)
    hog = tmp_path_factory.mktemp("hog")
    (hog / "hog.py").write_text(HOG)
    with moto_lambda_server(docker_bridge_address(), moto_image) as server:
        s3, lambdas, sfn = server.client("s3"), server.client("lambda"), server.client("stepfunctions")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=(ROOT / "models" / "user_churn.onnx").read_bytes())
        s3.put_object(Bucket=BUCKET, Key="rows/a.json", Body=json.dumps(ROWS).encode())
        s3.put_object(Bucket=BUCKET, Key="rows/b.json", Body=json.dumps(ROWS[::-1][:2]).encode())
        role = lambda_role(server.client("iam"))
        versions = {package: layer_version(package) for package in ("numpy", "onnxruntime")}
        started = time.monotonic()
        layer = publish_layer(lambdas, ROOT / ".aws-sam" / "build" / "PredictionLayer", s3=s3, bucket=BUCKET)
        layer_seconds = time.monotonic() - started
        for name, handler in (("score", "app.score"), ("refuse", "app.refuse")):
            create_function(lambdas, name, code, handler, layers=[layer], memory_mb=512, timeout_s=30, role_arn=role,
                            environment={"POWERTOOLS_SERVICE_NAME": "moto-lambda-test"})
        create_function(lambdas, "hog", hog, "hog.hog", memory_mb=128, timeout_s=30, role_arn=role)
        definitions = {
            "score": {"StartAt": "Score", "States": {"Score": invoke_task("score")}},
            "refuse": {"StartAt": "Refuse", "States": {"Refuse": invoke_task("refuse")}},
            "hog": {"StartAt": "Hog", "States": {"Hog": invoke_task("hog")}},
            "score-each": {"StartAt": "Each", "States": {"Each": {
                "Type": "Map", "ItemsPath": "$.items", "End": True,
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Score",
                                  "States": {"Score": invoke_task("score")}}}}},
        }
        arns = {name: sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)
                ["stateMachineArn"] for name, definition in definitions.items()}
        yield Deployed(server, arns, layer_seconds, versions)


def expected_scores(rows: list[list[float]]) -> tuple[list[int], list[float]]:
    session = ort.InferenceSession(str(ROOT / "models" / "user_churn.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"X": np.asarray(rows, dtype=np.float32)})
    return labels.tolist(), probabilities[:, 1].tolist()


def layer_version(package: str) -> str:
    """The version of `package` in the built layer (from its dist-info directory's name)."""
    [info] = (ROOT / ".aws-sam" / "build" / "PredictionLayer" / "python").glob(f"{package}-*.dist-info")
    return info.name.removesuffix(".dist-info").split("-", 1)[1]


@pytest.mark.sam
def test_a_task_runs_the_function_with_the_layer_in_docker(deployed: Deployed) -> None:
    event = {"bucket": BUCKET, "model_key": MODEL_KEY, "rows_key": "rows/a.json"}
    execution, seconds = deployed.run("score", event)
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["StatusCode"] == 200
    answer = output["Payload"]
    labels, churn = expected_scores(ROWS)
    assert answer["labels"] == labels
    assert answer["churn_probability"] == pytest.approx(churn, abs=1e-6)
    assert answer["feature_sum"] == pytest.approx(sum(map(sum, ROWS)))
    # the layer's packages, mounted at /opt by moto; S3 through the endpoint moto gave the function
    assert answer["prediction_service"] == "/opt/python/prediction_service/__init__.py"
    assert {"numpy": answer["numpy"], "onnxruntime": answer["onnxruntime"]} == deployed.layer_versions
    assert answer["endpoint"] == f"http://host.docker.internal:{deployed.server.port}"
    assert (answer["function"], answer["memory_mb"]) == ("score", 512)
    print(f"\nlayer zipped and published in {deployed.layer_seconds:.1f} s; one Task execution "
          f"{seconds:.1f} s end to end, the handler's imports and work {answer['ended'] - answer['started']:.1f} s")


@pytest.mark.sam
def test_map_iterations_run_concurrently_each_in_its_container(deployed: Deployed) -> None:
    items = [{"bucket": BUCKET, "model_key": MODEL_KEY, "rows_key": key, "sleep_s": 2}
             for key in ("rows/a.json", "rows/b.json", "rows/a.json")]
    execution, seconds = deployed.run("score-each", {"items": items})
    assert execution["status"] == "SUCCEEDED", execution
    answers = [result["Payload"] for result in json.loads(execution["output"])]
    assert [a["labels"] for a in answers] == [expected_scores(rows)[0] for rows in (ROWS, ROWS[::-1][:2], ROWS)]
    # MaxConcurrency unset: moto starts every iteration at once (each sleeps 2 s after scoring)
    assert max(a["started"] for a in answers) < min(a["ended"] for a in answers), answers
    print(f"\n3 concurrent iterations: {seconds:.1f} s end to end")


@pytest.mark.sam
def test_a_handler_exception_fails_the_execution_with_its_class_name(deployed: Deployed) -> None:
    execution, _ = deployed.run("refuse", {"user_id": "u-7"})
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "ChurnRefused"
    assert json.loads(execution["cause"]) == {"errorType": "ChurnRefused", "errorMessage": "user u-7 may not be scored"}
    events = deployed.server.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    [failed] = [e for e in events["events"] if e["type"] == "TaskFailed"]
    assert failed["taskFailedEventDetails"]["error"] == "ChurnRefused"


@pytest.mark.sam
def test_a_function_killed_for_memory_fails_as_out_of_memory(deployed: Deployed) -> None:
    # moto limits the container to MemorySize (128 MB); without the runner's report this would be
    # moto's HTTP 500 and the execution's error States.Runtime.
    execution, _ = deployed.run("hog", {"mb": 512})
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "Runtime.OutOfMemory", execution
    assert "signal: killed" in json.loads(execution["cause"])["errorMessage"]


# The runner on this machine: a task directory as /var/task, no Docker.
HANDLERS = '''
import os, sys, time
def ok(event, context):
    print("a log line")
    return {"event": event, "left_ms": context.get_remaining_time_in_millis(), "name": context.function_name}
def boom(event, context):
    raise KeyError("missing")
def unserializable(event, context):
    return {1, 2}
def leaves(event, context):
    sys.exit(4)
def vanishes(event, context):
    os._exit(7)
def sleeps(event, context):
    time.sleep(30)
'''


def run_runner(tmp_path: Path, handler: str, event: Any) -> tuple[int, Any, float]:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    env = dict(os.environ, LAMBDA_TASK_ROOT=str(tmp_path), AWS_LAMBDA_FUNCTION_TIMEOUT="1",
               AWS_LAMBDA_FUNCTION_NAME="fn")
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(RUNNER), f"handlers.{handler}", json.dumps(event)],
                            capture_output=True, text=True, env=env, timeout=20)
    return result.returncode, json.loads(result.stdout.splitlines()[-1]), time.monotonic() - started


def test_runner_prints_the_answer_last(tmp_path: Path) -> None:
    status, answer, _ = run_runner(tmp_path, "ok", {"a": [1]})
    assert status == 0
    assert answer["event"] == {"a": [1]} and answer["name"] == "fn" and 0 < answer["left_ms"] <= 1000


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("boom", "KeyError", "'missing'"),
        ("unserializable", "Runtime.MarshalError", "Unable to marshal response: Object of type set is not JSON "
                                                   "serializable"),
        ("leaves", "Runtime.ExitError", "Runtime exited with error: exit status 4"),
        ("vanishes", "Runtime.ExitError", "Runtime exited with error: exit status 7"),
        ("sleeps", "Sandbox.Timedout", "Task timed out after 1.00 seconds"),
    ],
)
def test_runner_reports_errors_as_lambda_does(tmp_path: Path, handler: str, error_type: str, message: str) -> None:
    status, answer, seconds = run_runner(tmp_path, handler, {})
    assert status == 1
    assert answer["errorType"] == error_type
    assert answer["errorMessage"].endswith(message)
    assert seconds < 10
