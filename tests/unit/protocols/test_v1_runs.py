"""Playground runs: the document's request, records in S3, upstream reloads, bad variables."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from generate_events import PLAYGROUND_RUN
from prediction_service.composition import build_components, components
from prediction_service.dataplane.records import RunRecorder
from prediction_service.errors import BadInputError, PredictionError, RecordNotWrittenError, StoreError
from prediction_service.protocols.v1.runs import BlockRunner
from prediction_service.protocols.v1.schemas import RunSpec
from prediction_service.settings import Settings
from prediction_service.storage.s3 import S3Store
from support import BUCKET, CountingStore


def run_spec(**changes: Any) -> RunSpec:
    raw = json.loads(json.dumps(PLAYGROUND_RUN["run"]))
    raw.update(changes)
    return RunSpec.model_validate(raw)


def run(spec: RunSpec, request_id: str, runner: BlockRunner | None = None) -> Any:
    return (runner or components().runner).run(spec, request_id, time.perf_counter())


def records(s3: Any) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="records/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]


def record_keys(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="records/").get("Contents", [])]


def test_document_request_gets_probabilities_and_is_recorded(s3: Any) -> None:
    result = run(run_spec(), "req-1")
    (output,) = result.value.run.output
    assert len(output) == 3 and all(len(p) == 2 and sum(p) == pytest.approx(1, abs=1e-5) for p in output)
    (key,) = record_keys(s3)
    assert key.startswith("records/") and key.endswith("/req-1.json")
    (record,) = records(s3)
    assert record["request_id"] == "req-1" and record["model_name"] == "user_churn"
    assert record["model_version"] == "1.0" and record["status"] == "Success"
    assert record["variables"] == {"user_ids": [1, 5, 100], "probability": True}
    assert record["output"] == result.value.run.output
    assert isinstance(record["duration_ms"], int) and record["time"].endswith("+00:00")


def test_probability_false_gives_labels_that_match_the_probabilities(s3: Any) -> None:
    labels = run(run_spec(variables={"user_ids": [1, 5, 100], "probability": False}), "a").value
    probs = run(run_spec(), "b").value
    (label_row,) = labels.run.output
    (prob_rows,) = probs.run.output
    assert label_row == [row.index(max(row)) for row in prob_rows]


def test_record_false_writes_nothing_and_store_variables_false_keeps_no_output(s3: Any) -> None:
    run(run_spec(record=False), "r1")
    assert records(s3) == []
    run(run_spec(store_variables=False), "r2")
    (record,) = records(s3)
    assert "output" not in record and record["status"] == "Success"


def test_a_failed_run_is_recorded_with_its_error(s3: Any) -> None:
    with pytest.raises(BadInputError):
        run(run_spec(variables={"user_ids": [1, 999999]}), "bad-ids")
    (record,) = records(s3)
    assert record["status"] == "BadRequest" and "999999" in record["error_message"] and "output" not in record


def test_run_upstream_blocks_fetches_the_models_files_again_at_most_once_per_period(s3: Any) -> None:
    """Bug l: any caller could force fresh S3 downloads on every call; now once per revalidation period."""
    clock = [1000.0]
    store = CountingStore(S3Store(BUCKET, s3))
    parts = build_components(Settings.from_env(), store=store, clock=lambda: clock[0])
    run(run_spec(record=False), "warm", parts.runner)

    def downloads() -> int:  # unconditional GETs (revalidating the manifest is a conditional one)
        return sum(1 for _, etag in store.fetches if etag is None)

    before = downloads()
    run(run_spec(record=False, run_upstream_blocks=True), "reload", parts.runner)
    # the manifest, then every version's files: 1.0's and its shadow 1.1's models, their one feature table
    assert downloads() == before + 4
    for i in range(5):
        run(run_spec(record=False, run_upstream_blocks=True), f"again-{i}", parts.runner)
    assert downloads() == before + 4, "within the period the cached copies serve"
    clock[0] += parts.settings.revalidate_seconds
    run(run_spec(record=False, run_upstream_blocks=True), "next-period", parts.runner)
    assert downloads() == before + 8
    run(run_spec(record=False, run_upstream_blocks=True, incomplete_only=True), "incomplete", parts.runner)
    assert downloads() == before + 8  # everything is cached: nothing to fetch


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"block_uuid": "nope"}, "has no block 'nope'"),
        ({"pipeline_uuid": "drive_stats", "block_uuid": "ml/inference/online/predictions"}, "has no block"),
        ({"variables": {"user_ids": [1, 999999]}}, "unknown id(s) in the feature table: 999999"),
        ({"variables": {"user_ids": [1], "inputs": [[1, 2, 3, 4]]}}, "one of inputs, ids or texts"),
        ({"variables": {}}, "needs `inputs`"),
    ],
)
def test_bad_runs_are_400_with_a_clear_message(s3: Any, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError) as info:
        run(run_spec(**changes), "bad")
    assert info.value.http_status == 400 and message in info.value.message


def test_a_failed_record_write_is_reported_not_lost(s3: Any) -> None:
    store = CountingStore(S3Store(BUCKET, s3))
    parts = build_components(Settings.from_env(), store=store)
    parts.registry.load(parts.registry.manifest().get("user_churn"))  # cached before S3 starts failing
    store.fail = StoreError("S3 denied access to write the file", detail="write s3://bucket/records/x.json: denied")
    with pytest.raises(RecordNotWrittenError) as info:
        run(run_spec(), "lost", parts.runner)
    assert info.value.http_status == 500 and "record could not be written" in info.value.message
    assert "s3://" not in info.value.message and isinstance(info.value, PredictionError)


def test_the_records_time_and_its_key_come_from_one_clock_reading(s3: Any) -> None:
    """Bug h: a run just before midnight must not get tomorrow's key (or yesterday's time)."""
    readings = iter([dt.datetime(2026, 11, 24, 23, 59, 59, 999000, tzinfo=dt.UTC),
                     dt.datetime(2026, 11, 25, 0, 0, 0, 1000, tzinfo=dt.UTC)])
    parts = build_components(Settings.from_env(), store=S3Store(BUCKET, s3))
    runner = BlockRunner(parts.dataplane, RunRecorder(parts.store, "records/"), clock=lambda: next(readings))
    run(run_spec(), "midnight", runner)
    (key,) = record_keys(s3)
    (record,) = records(s3)
    assert key == "records/2026/11/24/midnight.json" and record["time"].startswith("2026-11-24T23:59:59.999")


def test_forecast_block_answers_its_forecast(s3: Any) -> None:
    result = run(run_spec(pipeline_uuid="drive_stats", block_uuid="drive_stats_b", variables={}), "f")
    (forecast,) = result.value.run.output
    assert len(forecast) == 3
