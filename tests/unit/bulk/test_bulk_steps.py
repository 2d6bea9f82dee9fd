"""A bulk job's first step (nothing is scored unless it passes) and last (the summary)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from bulk_datasets import write_shards
from prediction_service.bulk.steps import summarize, validate_job
from prediction_service.bulk.worker import score_batch
from prediction_service.composition import components

DATA = "bulk-data"
CHURN = "user_id,sessions_per_week,days_since_last_login,tenure_months,support_tickets\n1,2,3,4,5\n"


@pytest.fixture
def data(s3: Any) -> Any:
    s3.create_bucket(Bucket=DATA)
    s3.put_object(Bucket=DATA, Key="datasets/users.csv", Body=CHURN.encode())
    s3.put_object(Bucket=DATA, Key="datasets/windows.jsonl", Body=b'{"id": 1, "window": [1, 2]}\n')
    return s3


def job(**fields: Any) -> dict[str, Any]:
    return {"job_id": "churn", "model": "user_churn", "input": {"bucket": DATA, "key": "datasets/users.csv"},
            "output": {"bucket": DATA, "prefix": "results/"}, "id_column": "user_id", **fields}


def validate(raw: Any, env: dict[str, str] | None = None) -> dict[str, Any]:
    return validate_job(raw, components().registry, components().store._client, env or {})


def objects(s3: Any, prefix: str = "results/") -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=DATA, Prefix=prefix).get("Contents", [])]


def test_an_accepted_job_says_how_the_state_machine_runs_it(data: Any) -> None:
    accepted = validate({"job": job()}, env={"BULK_BATCH_SIZE": "500", "BULK_MAX_CONCURRENCY": "8",
                                             "BULK_TOLERATED_FAILURE_PERCENTAGE": "2.5"})
    assert accepted["ok"] is True and accepted["source"] == "csv"
    assert accepted["run"] == {"batch_size": 500, "max_concurrency": 8, "tolerated_failure_percentage": 2.5}
    assert accepted["paths"]["map_results"] == "results/churn/map"
    assert objects(data) == ["results/churn/job.json"]  # the proof the output is writable
    own = validate(job(batch_size=50, max_concurrency=2, tolerated_failure_percentage=0))
    assert own["run"] == {"batch_size": 50, "max_concurrency": 2, "tolerated_failure_percentage": 0}


@pytest.mark.parametrize(("change", "reason"), [
    ({"model": "no_such_model"}, "model 'no_such_model' is not in the manifest"),
    ({"version": "9.9"}, "model 'user_churn' has no version '9.9'"),
    ({"input": {"bucket": DATA, "key": "datasets/missing.csv"}}, "the input s3://bulk-data/datasets/missing.csv does not exist"),
    ({"input": {"bucket": "no-such-bucket", "key": "a.csv"}}, "the input s3://no-such-bucket/a.csv does not exist"),
    ({"input": {"bucket": DATA, "prefix": "datasets/none/"}}, "the input s3://bulk-data/datasets/none/ holds no objects"),
    ({"columns": {"features": ["a", "b", "c", "d"]}}, "has no column 'a' (its columns: user_id, sessions_per_week"),
    ({"id_column": "uid"}, "has no column 'uid'"),
    ({"columns": {"features": ["sessions_per_week"]}}, "takes 4 features"),
    ({"columns": {"window": "w"}}, "it reads `columns.features`, and `columns.window` is for another kind"),
    ({"model": "drive_stats_a"}, "has no column 'window'"),
    ({"model": "drive_stats_mean", "input": {"bucket": DATA, "key": "datasets/windows.jsonl"}, "id_column": "uid"},
     "has no column 'uid'"),
    ({"output": {"bucket": "no-such-bucket"}}, "cannot be written (NoSuchBucket)"),
    ({"output": {"bucket": DATA, "prefix": "datasets/"}, "input": {"bucket": DATA, "prefix": "datasets/"}},
     "is inside the input prefix"),
    ({"job_id": "../etc"}, "the job is not valid: job_id"),
    ({"output": {"bucket": DATA, "format": "parquet"}}, "the job is not valid: output.format"),
    ({"input": {"bucket": DATA, "key": "a.csv", "prefix": "b/"}}, "either `key`"),
])
def test_a_job_that_cannot_run_is_refused_before_anything_is_scored(data: Any, change: dict[str, Any],
                                                                     reason: str) -> None:
    refused = validate(job(**change))
    assert refused["ok"] is False and reason in refused["reason"], refused
    assert objects(data) == []


def test_a_job_outside_the_stacks_prefixes_is_refused_by_name(data: Any) -> None:
    env = {"BULK_INPUT_BUCKET": DATA, "BULK_INPUT_PREFIX": "datasets/", "BULK_OUTPUT_BUCKET": DATA,
           "BULK_OUTPUT_PREFIX": "bulk-results/"}
    assert "write under s3://bulk-data/bulk-results/ only" in validate(job(), env)["reason"]
    assert validate(job(output={"bucket": DATA, "prefix": "bulk-results/mine/"}), env)["ok"] is True
    outside = job(input={"bucket": DATA, "key": "elsewhere/users.csv"}, output={"bucket": DATA, "prefix": "bulk-results/"})
    assert "read under s3://bulk-data/datasets/ only" in validate(outside, env)["reason"]


def test_a_job_that_is_not_an_object_is_refused(data: Any) -> None:
    for raw in (None, [], "job", {"job": "x"}):
        assert validate(raw)["ok"] is False


def scored_shards(s3: Any, spec: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        score_batch({"Items": [{"Key": key}], "BatchInput": {"job": spec}}, components().dataplane,
                    components().store._client)


def test_the_summary_adds_up_the_batches_and_names_the_shards_that_left_nothing(data: Any) -> None:
    keys = write_shards(data, DATA, "datasets/churn/", "user_churn", 30, shard_rows=10)
    data.put_object(Bucket=DATA, Key="datasets/churn/part-bad.csv", Body=(CHURN + "2,x,1,1,1\n").encode())
    spec = validate(job(input={"bucket": DATA, "prefix": "datasets/churn/"}))
    scored_shards(data, spec["job"], [*keys[:2], "datasets/churn/part-bad.csv"])  # keys[2] "failed"
    state = {**spec, "map": {}, "started": "2026-12-04T10:00:00.000Z"}
    state["run"]["tolerated_failure_percentage"] = 25  # 1 of 4 batches: tolerated
    summary = summarize(state, data, now=datetime(2026, 12, 4, 10, 1, 30, tzinfo=UTC))
    assert summary["status"] == "PARTIAL" and summary["duration_seconds"] == 90.0 and "message" not in summary
    assert (summary["rows"], summary["rows_scored"], summary["rows_refused"]) == (22, 21, 1)
    assert summary["batches"] == 3 and summary["failed_batches"] == 1
    assert summary["failures"][0]["batch"].startswith("part-00002.csv-")
    assert summary["versions"] == {"1.0": 21}
    stored = json.loads(data.get_object(Bucket=DATA, Key="results/churn/summary.json")["Body"].read())
    assert stored == summary
    state["run"]["tolerated_failure_percentage"] = 20  # the map run did not count it (moto's do not): the job does
    strict = summarize(state, data)
    assert strict["status"] == "FAILED"
    assert strict["message"] == "1 batch failed, more than the 20% the job tolerates; the summary lists them"


def test_the_summary_reads_the_failed_batches_distributed_maps_result_writer_lists(data: Any) -> None:
    """The manifest and FAILED file as AWS documents ResultWriter's output; the cause's stack trace
    never reaches the summary."""
    spec = validate(job())
    failed_input = {"Items": [{"index": 1000, "row": {}}, {"index": 1999, "row": {}}], "BatchInput": {"job": spec["job"]}}
    cause = json.dumps({"errorMessage": "Could not connect to the endpoint URL", "errorType": "EndpointConnectionError",
                        "stackTrace": ['  File "/var/task/app.py", line 1, in batch_handler\n']})
    data.put_object(Bucket=DATA, Key="results/churn/map/abc/FAILED_0.json", Body=json.dumps([
        {"ExecutionArn": "arn:aws:states:::execution:x:1", "Input": json.dumps(failed_input), "Error": "States.TaskFailed",
         "Cause": cause, "Status": "FAILED"},
        {"Input": json.dumps({"Items": [{"index": 0, "row": {}}], "BatchInput": {}}), "Error": "BatchRefused",
         "Cause": "Items[0] is not one of this job's items", "Status": "FAILED"}]).encode())
    data.put_object(Bucket=DATA, Key="results/churn/map/abc/manifest.json", Body=json.dumps({
        "DestinationBucket": DATA, "MapRunArn": "arn:aws:states:::mapRun:x/y:z",
        "ResultFiles": {"FAILED": [{"Key": "results/churn/map/abc/FAILED_0.json", "Size": 1}], "PENDING": [],
                        "SUCCEEDED": []}}).encode())
    state = {**spec, "map_error": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "..."},
             "map": {"ResultWriterDetails": {"Bucket": DATA, "Key": "results/churn/map/abc/manifest.json"}}}
    summary = summarize(state, data)
    assert summary["status"] == "FAILED" and summary["failed_batches"] == 2
    assert summary["failures"] == [
        {"batch": "rows-000001000-000001999", "error": "States.TaskFailed",
         "cause": "EndpointConnectionError: Could not connect to the endpoint URL"},
        {"batch": "rows-000000000-000000000", "error": "BatchRefused", "cause": "Items[0] is not one of this job's items"}]
    assert summary["message"] == "2 batches failed, more than the job tolerates; the summary lists them"
    assert "stackTrace" not in json.dumps(summary) and "File " not in json.dumps(summary)


@pytest.mark.parametrize("event", [[], "validate", {"step": "score"}, {"step": "summarize"},
                                   {"step": "summarize", "state": {"job": {"model": 1}}}])
def test_the_job_function_answers_an_event_that_is_not_a_step_with_a_reason(event: Any) -> None:
    from support import lambda_context, load_function

    answer = load_function("bulk").job_handler(event, lambda_context())
    assert answer.get("ok") is False or answer.get("status") == "FAILED"
    assert "Traceback" not in json.dumps(answer) and (answer.get("reason") or answer.get("message"))
