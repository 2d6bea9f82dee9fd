"""Playground runs: the document's request, records in S3, upstream reloads, bad variables."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import BUCKET
from generate_events import PLAYGROUND_RUN
from prediction_service.errors import StoreError
from prediction_service.runs import RunSpec
from prediction_service.composition import default_runner


def run_spec(**changes: Any) -> RunSpec:
    raw = json.loads(json.dumps(PLAYGROUND_RUN["run"]))
    raw.update(changes)
    return RunSpec.model_validate(raw)


def records(s3: Any) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="records/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]


def test_document_request_gets_probabilities_and_is_recorded(s3: Any) -> None:
    result = default_runner().run(run_spec(), "req-1")
    assert result.http_status == 200
    (output,) = result.body["run"]["output"]
    assert len(output) == 3 and all(len(p) == 2 and sum(p) == pytest.approx(1, abs=1e-5) for p in output)
    assert result.record_key and result.record_key.startswith("records/") and result.record_key.endswith("/req-1.json")
    (record,) = records(s3)
    assert record["request_id"] == "req-1" and record["model_name"] == "user_churn"
    assert record["model_version"] == "1.0" and record["status"] == "Success"
    assert record["variables"] == {"user_ids": [1, 5, 100], "probability": True}
    assert record["output"] == result.body["run"]["output"]
    assert isinstance(record["duration_ms"], int) and record["time"].endswith("+00:00")


def test_probability_false_gives_labels_that_match_the_probabilities(s3: Any) -> None:
    runner = default_runner()
    labels = runner.run(run_spec(variables={"user_ids": [1, 5, 100], "probability": False}), "a").body
    probs = runner.run(run_spec(), "b").body
    (label_row,) = labels["run"]["output"]
    (prob_rows,) = probs["run"]["output"]
    assert label_row == [row.index(max(row)) for row in prob_rows]


def test_record_false_writes_nothing_and_store_variables_false_keeps_no_output(s3: Any) -> None:
    runner = default_runner()
    assert runner.run(run_spec(record=False), "r1").record_key is None
    assert records(s3) == []
    runner.run(run_spec(store_variables=False), "r2")
    (record,) = records(s3)
    assert "output" not in record and record["status"] == "Success"


def test_run_upstream_blocks_fetches_the_models_files_again(s3: Any) -> None:
    runner = default_runner()
    runner.run(run_spec(record=False), "warm")
    stats = runner._service.registry._cache.stats
    before = stats.s3_loads
    runner.run(run_spec(record=False, run_upstream_blocks=True), "reload")
    assert stats.s3_loads == before + 3  # manifest, model, feature table
    runner.run(run_spec(record=False, run_upstream_blocks=True, incomplete_only=True), "incomplete")
    assert stats.s3_loads == before + 3  # everything is cached: nothing to fetch


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"block_uuid": "nope"}, "has no block 'nope'"),
        ({"pipeline_uuid": "drive_stats", "block_uuid": "ml/inference/online/predictions"}, "has no block"),
        ({"variables": {"user_ids": [1, 999999]}}, "unknown id(s) in the feature table: 999999"),
        ({"variables": {"user_ids": [1], "inputs": [[1, 2, 3, 4]]}}, "either inputs or ids"),
        ({"variables": {}}, "needs `inputs`"),
    ],
)
def test_bad_runs_are_400_with_a_clear_message(s3: Any, changes: dict[str, Any], message: str) -> None:
    result = default_runner().run(run_spec(**changes), "bad")
    assert result.http_status == 400
    assert result.body["status"] == "BadRequest" and message in result.body["error_message"]


def test_a_failed_record_write_is_reported_not_lost(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = default_runner()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise StoreError("access to s3://bucket/records/x.json was denied")

    monkeypatch.setattr(runner._recorder._store, "put", refuse)
    result = runner.run(run_spec(), "lost")
    assert result.http_status == 500
    assert "record could not be written" in result.body["error_message"]


def test_forecast_block_answers_its_forecast(s3: Any) -> None:
    result = default_runner().run(run_spec(pipeline_uuid="drive_stats", block_uuid="drive_stats_b", variables={}), "f")
    assert result.http_status == 200
    (forecast,) = result.body["run"]["output"]
    assert len(forecast) == 3
