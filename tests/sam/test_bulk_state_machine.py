"""The bulk state machine for real on moto: moto's Step Functions interpreter runs the template's
definition against moto's S3, its Lambda tasks running the functions `sam build` built, layer and
all, in Docker (scripts/local_bulk.py, scripts/moto-lambda-image.sh).

What moto 5.2 cannot run of the production definition is changed by local_bulk.local_definition,
each change tested here, and each part covered another way:
- ItemBatcher (none in moto's parser): each Map iteration gets one item in the same batch event;
  the batched events are tested in tests/unit/bulk/test_bulk_worker.py and by `sam local invoke`
  of events/bulk_worker_*.json, and cfn-lint checks the definition (tests/template/test_bulk_definition.py);
- the JSON Lines reader (none in moto): a JSON Lines object job fails saying so here; JSON Lines
  rows are tested in the worker's tests, JSON Lines shards run here;
- ResultWriter (moto writes only a manifest, from the wrong paths): removed here; the summary's
  reading of its FAILED files is tested in tests/unit/bulk/test_bulk_steps.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bulk
import local_bulk
import pytest
from bulk_datasets import encode, rows, write_shards
from local_bulk import (
    DEFINITION,
    LocalBulkStack,
    deploy,
    docker_bridge_address,
    local_definition,
    moto_lambda_image,
    moto_with_lambda,
)
from local_s3 import create_bucket

from support import skip_loudly

pytestmark = pytest.mark.sam

BUCKET = "bulk-moto"
TIMEOUT = 300

@pytest.fixture(scope="module")
def stack(lambda_image: str, sam_built: None) -> Iterator[tuple[LocalBulkStack, Any]]:
    try:
        image = moto_lambda_image()
    except RuntimeError as exc:
        skip_loudly(f"THE LAMBDA IMAGE FOR MOTO COULD NOT BE BUILT; bulk state machine tests skipped:\n{exc}")
    with moto_with_lambda(docker_bridge_address(), image) as server:
        s3 = server.client()
        create_bucket(s3, BUCKET)
        bridge_url = server.url.replace("127.0.0.1", "host.docker.internal")
        yield deploy(server.url, model_bucket=BUCKET, environment={"S3_ENDPOINT_URL": bridge_url}), s3

def run(stack: tuple[LocalBulkStack, Any], job: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start the job, wait for its end; the execution and its history."""
    local, _ = stack
    sfn = local.client("stepfunctions")
    name = f"{job['job_id']}-{uuid.uuid4().hex[:8]}"
    arn = sfn.start_execution(stateMachineArn=local.state_machine_arn, name=name, input=json.dumps(job))["executionArn"]
    deadline = time.monotonic() + TIMEOUT
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"the job did not end within {TIMEOUT} s"
        time.sleep(1)
    return execution, sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]

def why(execution: dict[str, Any]) -> str:
    """An execution's end, for an assertion's message."""
    return f"{execution['status']} {execution.get('error', '')}: {execution.get('cause', '')}"[:3000]


def job(job_id: str, prefix: str, **fields: Any) -> dict[str, Any]:
    return {"job_id": job_id, "model": "user_churn", "id_column": "user_id", "max_concurrency": 2,
            "input": {"bucket": BUCKET, "prefix": prefix}, "output": {"bucket": BUCKET, "prefix": "bulk-results/"},
            **fields}

def objects(s3: Any, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}

def summary(s3: Any, job_id: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"bulk-results/{job_id}/summary.json")["Body"].read())

def test_the_local_definition_changes_only_what_moto_cannot_run() -> None:
    production = json.loads(DEFINITION.read_text())
    local = local_definition(production, {"BulkJobFunction": "arn:job", "BulkWorkerFunction": "arn:worker"})
    assert "${" not in json.dumps(local)
    changed = {name for name in production["States"] if production["States"][name] != local["States"][name]}
    assert changed == {"ValidateJob", "Summarize", "ScoreCsv", "ScoreJsonLines", "ScoreShards"}  # ARNs, and the Maps
    for name in ("ScoreCsv", "ScoreShards"):
        state = local["States"][name]
        assert "ItemBatcher" not in state and "ResultWriter" not in state
        assert state["ItemSelector"]["BatchInput"] == {"job.$": "$.job"}
        for field in ("ItemReader", "MaxConcurrencyPath", "ToleratedFailurePercentagePath", "ItemProcessor", "Catch"):
            production_state = json.loads(json.dumps(production["States"][name]).replace("${BulkWorkerFunctionArn}",
                                                                                         "arn:worker"))
            assert state[field] == production_state[field], field
    assert local["States"]["ScoreJsonLines"]["Error"] == "NotEmulated"

def test_a_sharded_dataset_is_scored_by_the_real_worker_and_summarized(
        stack: tuple[LocalBulkStack, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, s3 = stack
    write_shards(s3, BUCKET, "datasets/churn/", "user_churn", 250, shard_rows=100, fmt="csv")
    bad = list(rows("user_churn", 3))
    s3.put_object(Bucket=BUCKET, Key="datasets/churn/part-extra.jsonl",
                  Body=encode(bad, "jsonl") + b'{"user_id": 9, "sessions_per_week": "many"}\n')
    local, _ = stack
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job("churn", "datasets/churn/")))
    # started and followed as a user would: scripts/bulk.py, its progress bar on the map run
    status = bulk.main(["--state-machine-arn", local.state_machine_arn, "--endpoint-url", local.url,
                        "--region", "us-east-1", "--job", str(job_file), "--timeout", str(TIMEOUT)])
    assert status == 0
    printed = capsys.readouterr()
    result = summary(s3, "churn")
    assert json.loads(printed.out) == result and "done: 253 rows scored" in printed.err
    (execution,) = local.client("stepfunctions").list_executions(stateMachineArn=local.state_machine_arn,
                                                                 statusFilter="SUCCEEDED")["executions"][:1]
    history = local.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"],
                                                                  maxResults=1000)["events"]
    assert (result["rows"], result["rows_scored"], result["rows_refused"]) == (254, 253, 1)
    assert result["batches"] == 4 and result["failed_batches"] == 0 and result["versions"] == {"1.0": 253}
    assert result["status"] == "SUCCEEDED" and result["duration_seconds"] > 0
    written = objects(s3, "bulk-results/churn/results/")
    assert len(written) == 4
    lines = [json.loads(line) for body in written.values() for line in body.splitlines()]
    assert sorted(str(line["id"]) for line in lines) == sorted([str(i) for i in range(250)] + ["0", "1", "2"])
    assert all(line["label"] in ("stays", "churns") for line in lines)
    (errors,) = objects(s3, "bulk-results/churn/errors/").values()
    assert json.loads(errors) == {"id": 9, "object": "datasets/churn/part-extra.jsonl", "line": 4,
                                  "reason": "column 'days_since_last_login' is missing"}
    assert [e for e in history if e["type"] == "MapRunStarted"], "the Distributed Map ran"

def test_running_the_same_job_twice_gives_the_same_objects(stack: tuple[LocalBulkStack, Any]) -> None:
    _, s3 = stack
    write_shards(s3, BUCKET, "datasets/twice/", "user_churn", 120, shard_rows=60, fmt="jsonl")
    first, _ = run(stack, job("twice", "datasets/twice/"))
    before = objects(s3, "bulk-results/twice/")
    second, _ = run(stack, job("twice", "datasets/twice/"))
    after = objects(s3, "bulk-results/twice/")
    assert first["status"] == second["status"] == "SUCCEEDED", (why(first), why(second))
    assert set(before) == set(after) and len(before) == 6  # job.json, 2 results, 2 counts, summary.json
    assert {k: v for k, v in before.items() if not k.endswith("summary.json")} == \
           {k: v for k, v in after.items() if not k.endswith("summary.json")}
    no_time = [{k: v for k, v in json.loads(x[f"bulk-results/twice/summary.json"]).items() if k != "duration_seconds"}
               for x in (before, after)]
    assert no_time[0] == no_time[1]

@pytest.mark.parametrize(("change", "cause"), [
    ({"input": {"bucket": BUCKET, "prefix": "datasets/nothing-here/"}}, "holds no objects"),
    ({"model": "no_such_model"}, "model 'no_such_model' is not in the manifest"),
    ({"columns": {"features": ["a", "b", "c", "d"]}}, "has no column 'a'"),
])
def test_a_job_that_cannot_run_fails_in_its_first_step_and_nothing_is_scored(
        stack: tuple[LocalBulkStack, Any], change: dict[str, Any], cause: str) -> None:
    _, s3 = stack
    write_shards(s3, BUCKET, "datasets/refused/", "user_churn", 10, shard_rows=10)
    execution, history = run(stack, {**job("refused", "datasets/refused/"), **change})
    assert execution["status"] == "FAILED" and execution["error"] == "JobRefused", why(execution)
    assert cause in execution["cause"] and "Traceback" not in execution["cause"]
    assert not [e for e in history if e["type"] in ("MapRunStarted", "MapStateEntered")]
    assert objects(s3, "bulk-results/refused/") == {}

def test_a_batch_that_keeps_failing_is_retried_then_counted_and_named(stack: tuple[LocalBulkStack, Any]) -> None:
    """A shard the worker cannot read (archived in Glacier: S3 refuses to get it) fails its batch:
    the state machine retries it, the other batches are scored, and the failure is counted against
    the tolerated share. moto's map run does not enforce the tolerance (it succeeds whatever fails):
    the summary does, and the state machine fails the job on it as AWS's map run would
    (States.ExceedToleratedFailureThreshold; the tolerated case is tests/unit/bulk/test_bulk_steps.py's)."""
    _, s3 = stack
    write_shards(s3, BUCKET, "datasets/archived/", "user_churn", 100, shard_rows=50)
    s3.put_object(Bucket=BUCKET, Key="datasets/archived/part-99999.csv", Body=encode(list(rows("user_churn", 5)), "csv"),
                  StorageClass="GLACIER")
    execution, _ = run(stack, job("strict", "datasets/archived/", tolerated_failure_percentage=30))
    assert execution["status"] == "FAILED" and execution["error"] == "BatchesFailed", why(execution)
    assert execution["cause"] == "1 batch failed, more than the 30% the job tolerates; the summary lists them"
    result = summary(s3, "strict")
    assert result["status"] == "FAILED" and result["rows_scored"] == 100 and result["failed_batches"] == 1
    assert result["failures"][0]["batch"].startswith("part-99999.csv-")
    # moto keeps each invocation's output in the function's log group: the worker's error, as Lambda reports it
    events = stack[0].client("logs").filter_log_events(logGroupName="/aws/lambda/BulkWorkerFunction")["events"]
    attempts = [e for e in events if e["message"].startswith('{"errorType": "InvalidObjectState"')]
    assert len(attempts) == 3, "the first try and two retries"


def test_moto_reads_a_csv_object_row_by_row_and_has_no_json_lines_reader(stack: tuple[LocalBulkStack, Any]) -> None:
    _, s3 = stack
    s3.put_object(Bucket=BUCKET, Key="datasets/three.csv", Body=encode(list(rows("user_churn", 3)), "csv"))
    execution, _ = run(stack, {**job("csv", ""), "input": {"bucket": BUCKET, "key": "datasets/three.csv"}})
    assert execution["status"] == "SUCCEEDED", why(execution)
    assert summary(s3, "csv")["rows_scored"] == 3
    assert sorted(objects(s3, "bulk-results/csv/results/")) == [
        f"bulk-results/csv/results/rows-{i:09d}-{i:09d}.jsonl" for i in range(3)]  # one row a batch here
    s3.put_object(Bucket=BUCKET, Key="datasets/three.jsonl", Body=encode(list(rows("user_churn", 3)), "jsonl"))
    execution, _ = run(stack, {**job("jsonl", ""), "input": {"bucket": BUCKET, "key": "datasets/three.jsonl"}})
    assert execution["status"] == "FAILED" and execution["error"] == "NotEmulated"


def test_make_bulk_runs_its_demo_job_and_copies_what_it_wrote(lambda_image: str, sam_built: None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`make bulk` (scripts/local_bulk.py) end to end, on 2,000 rows instead of its 100,000."""
    status = local_bulk.main(["--rows", "2000", "--shard-rows", "1000", "--no-build"])
    assert status == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["rows_scored"] == 2000
    copied = local_bulk.ROOT / ".local" / "bulk-results" / "demo-user_churn"
    assert ".local/bulk-results/demo-user_churn/" in printed.err
    assert json.loads((copied / "summary.json").read_text())["rows_scored"] == 2000
    assert sum(len(p.read_text().splitlines()) for p in (copied / "results").iterdir()) == 2000
