"""Every file in events/ through the real handler (Mangum + FastAPI), S3 from moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bulk_datasets import put_event_data
from expectations import EXPECTED, HANDLERS, check_result, handler_of
from support import BUCKET, ROOT, lambda_context, load_event, load_function, shipped_model_names

EVENT_FILES = sorted((ROOT / "events").glob("*.json"))


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    return {directory: load_function(directory) for directory, _ in HANDLERS.values()}


def test_every_event_file_has_an_expectation() -> None:
    assert {p.name for p in EVENT_FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.name)
def test_event_file(path: Path, s3: Any, functions: dict[str, Any], request: pytest.FixtureRequest) -> None:
    if "_text" in path.name or path.name.startswith("embeddings_"):  # publish the text models too (120 MB)
        request.getfixturevalue("text_s3")
    if path.name.startswith("bulk_"):
        put_event_data(s3)
    expected = EXPECTED[path.name]
    result = handler_of(functions, expected.function)(load_event(path), lambda_context())
    check_result(expected, result)


def test_forecast_event_returns_horizon_values_for_the_model(s3: Any, functions: dict[str, Any]) -> None:
    result = functions["models"].handler(load_event(ROOT / "events/models_forecast_drive_stats_a.json"), lambda_context())
    body = json.loads(result["body"])
    assert body["model_name"] == "drive_stats_a" and body["model_version"] == "1.0" and body["lookback"] == 30
    assert len(body["prediction"]) == 3
    # the synthetic failure rate lives around 0.4-0.7 percent; a forecast far outside is a broken model
    assert all(0.3 < v < 0.8 for v in body["prediction"])


def test_probability_event_gives_class_probabilities_per_user(s3: Any, functions: dict[str, Any]) -> None:
    result = functions["models"].handler(load_event(ROOT / "events/models_predict_ids_probability.json"), lambda_context())
    body = json.loads(result["body"])
    assert body["classes"] == ["stays", "churns"]
    assert len(body["probabilities"]) == 3
    for row, label in zip(body["probabilities"], body["prediction"], strict=True):
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
        assert label == row.index(max(row))


def test_labels_event_gives_integer_labels(s3: Any, functions: dict[str, Any]) -> None:
    result = functions["models"].handler(load_event(ROOT / "events/models_predict_ids_labels.json"), lambda_context())
    body = json.loads(result["body"])
    assert "probabilities" not in body
    assert len(body["prediction"]) == 3 and all(v in (0, 1) and isinstance(v, int) for v in body["prediction"])


def test_list_models_event_names_every_manifest_model(s3: Any, functions: dict[str, Any]) -> None:
    result = functions["models"].handler(load_event(ROOT / "events/models_list.json"), lambda_context())
    models = {m["name"]: m for m in json.loads(result["body"])["models"]}
    assert set(models) == shipped_model_names()
    assert models["user_churn"]["classes"] == ["stays", "churns"] and models["user_churn"]["inputs"] == 4
    assert models["drive_stats_a"]["lookback"] == 30 and models["drive_stats_a"]["horizon"] == 3


def test_event_files_have_the_shape_sam_generates() -> None:
    """Same keys as `sam local generate-event apigateway http-api-proxy`, minus what our routes omit."""
    from generate_events import sam_event

    reference = sam_event("GET", "/v1/models", "")
    optional = {"cookies", "queryStringParameters", "stageVariables", "pathParameters", "body"}
    for path in EVENT_FILES:
        event = load_event(path)
        if EXPECTED[path.name].function.startswith("bulk_"):  # a Step Functions task's payload, not HTTP
            assert set(event) in ({"step", "job"}, {"Items", "BatchInput"}), path.name
            continue
        if EXPECTED[path.name].function == "authorizer":
            assert event["type"] == "REQUEST" and event["version"] == "2.0"
            assert set(event["requestContext"]) <= set(reference["requestContext"]), path.name
            continue
        assert set(reference) - optional <= set(event) <= set(reference), path.name
        assert set(event["requestContext"]) <= set(reference["requestContext"]), path.name
        assert event["routeKey"] == event["requestContext"]["routeKey"]
        method, route = event["routeKey"].split(" ", 1)
        assert method == event["requestContext"]["http"]["method"]


def test_event_files_are_what_the_generator_writes() -> None:
    """events/ is generated; a hand edit that drifts from scripts/generate_events.py is caught."""
    from generate_events import CASES, build_event, bulk_events

    assert {f"{c.name}.json" for c in CASES} | {f"{name}.json" for name in bulk_events()} == {p.name for p in EVENT_FILES}
    for name, event in bulk_events().items():
        assert event == load_event(ROOT / "events" / f"{name}.json"), name
    case = next(c for c in CASES if c.name == "models_predict_nan")
    assert build_event(case) == load_event(ROOT / "events" / "models_predict_nan.json")


def test_document_run_event_writes_its_record_to_s3(s3: Any, functions: dict[str, Any]) -> None:
    context = lambda_context()
    result = functions["runs"].handler(load_event(ROOT / "events/runs_document_probability.json"), context)
    assert result["statusCode"] == 200
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="records/")["Contents"]]
    (key,) = keys
    assert key.endswith(f"/{context.aws_request_id}.json")
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert record["output"] == json.loads(result["body"])["run"]["output"]
    assert record["block_uuid"] == "ml/inference/online/predictions" and record["project"] == "machine_learning"
