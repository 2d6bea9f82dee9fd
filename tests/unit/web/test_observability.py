"""Powertools output of a real invocation: EMF metrics on stdout, JSON logs with the request id."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from support import ROOT, lambda_context, load_event, load_function


def total(blob: dict[str, Any], name: str) -> float:
    value = blob[name]
    return sum(value) if isinstance(value, list) else value


def emitted(capsys: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(EMF metric blobs, JSON log lines) printed to stdout."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line], [line for line in lines if "level" in line]


def test_a_prediction_publishes_its_metrics_with_the_model_dimension(s3: Any, capsys: Any) -> None:
    predict = load_function("models")
    capsys.readouterr()
    predict.handler(load_event(ROOT / "events/models_forecast_drive_stats_a.json"), lambda_context())
    blobs, _ = emitted(capsys)
    (blob,) = [b for b in blobs if "Predictions" in b]
    names = {m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Predictions", "InferenceTime", "CacheMisses", "ModelLoadTime"} <= names
    assert blob["model"] == "drive_stats_a" and blob["service"] == "prediction-api"
    assert total(blob, "Predictions") == 1 and total(blob, "CacheMisses") == 3  # manifest, model, dataset
    predict.handler(load_event(ROOT / "events/models_forecast_drive_stats_a.json"), lambda_context())
    (warm,) = [b for b in emitted(capsys)[0] if "Predictions" in b]
    assert "CacheMisses" not in warm and total(warm, "CacheHits") >= 2 and "ModelLoadTime" not in warm


def test_failures_count_as_errors_and_log_json_with_the_request_id(s3: Any, capsys: Any) -> None:
    s3.delete_object(Bucket="test-models", Key="models/user_churn.onnx")
    predict = load_function("models")  # its import shares the JSON log format with the library's loggers
    stream = io.StringIO()
    (handler,) = logging.getLogger("prediction_service").handlers
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    capsys.readouterr()
    try:
        result = predict.handler(load_event(ROOT / "events/models_predict_ids_labels.json"), lambda_context())
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
    assert result["statusCode"] == 500
    (blob,) = [b for b in emitted(capsys)[0] if "Predictions" in b]
    assert total(blob, "PredictionErrors") == 1
    (error,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert error["level"] == "ERROR"
    assert error["function_request_id"] == lambda_context().aws_request_id
    assert "user_churn" in error["message"] and error["service"] == "prediction-api"
    assert error["model"] == "user_churn"
    from prediction_service.observability import logger

    assert "model" not in logger.get_current_keys(), "the model must not label later log lines"


def test_batch_metrics_count_every_item(s3: Any, capsys: Any) -> None:
    batch = load_function("batch")
    capsys.readouterr()
    batch.handler(load_event(ROOT / "events/batch_mixed_statuses.json"), lambda_context())
    (blob,) = [b for b in emitted(capsys)[0] if "Predictions" in b]
    assert total(blob, "Predictions") == 4 and total(blob, "PredictionErrors") == 2
    assert "model" not in blob


def test_metrics_are_added_on_the_requests_thread_even_when_items_run_in_the_pool(
    s3: Any, capsys: Any, monkeypatch: Any
) -> None:
    """Powertools' add_metric is a read-modify-write: points added from pool threads can be lost."""
    import threading

    from prediction_service.observability import metrics

    batch = load_function("batch")
    threads: set[str] = set()
    real = metrics.add_metric

    def recording(*args: Any, **kwargs: Any) -> None:
        threads.add(threading.current_thread().name)
        real(*args, **kwargs)

    monkeypatch.setattr(metrics, "add_metric", recording)
    items = [{"model_name": name} for name in ("drive_stats_a", "drive_stats_b", "nope", "user_churn")] * 4
    event = load_event(ROOT / "events/batch_drive_stats.json")
    event["body"] = json.dumps({"predictions": items})
    capsys.readouterr()
    batch.handler(event, lambda_context())  # cold: the items run in the pool
    assert threads == {threading.current_thread().name}
    (blob,) = [b for b in emitted(capsys)[0] if "Predictions" in b]
    assert total(blob, "Predictions") == 16 and total(blob, "PredictionErrors") == 8


def test_evictions_are_published(s3: Any, capsys: Any, monkeypatch: Any) -> None:
    from prediction_service.composition import components

    monkeypatch.setenv("MODEL_CACHE_MAX_BYTES", "1")  # every new entry evicts the others
    components.cache_clear()
    models = load_function("models")
    capsys.readouterr()
    models.handler(load_event(ROOT / "events/models_forecast_drive_stats_a.json"), lambda_context())
    (blob,) = [b for b in emitted(capsys)[0] if "Predictions" in b]
    # each file pushes out the one before (the model and its dataset load side by side, so how many
    # times each comes back depends on which lands first): the metric is what the cache counted
    evictions = components().cache.stats.evictions
    assert evictions >= 2 and total(blob, "CacheEvictions") == evictions


def test_stale_served_is_published(s3: Any, capsys: Any, monkeypatch: Any) -> None:
    from prediction_service.composition import components

    monkeypatch.setenv("MODEL_REVALIDATE_SECONDS", "0")  # revalidate the manifest on every request
    components.cache_clear()
    models = load_function("models")
    event = load_event(ROOT / "events/models_forecast_drive_stats_a.json")
    models.handler(event, lambda_context())
    s3.delete_object(Bucket="test-models", Key="models/manifest.yaml")  # revalidation fails: stale served
    capsys.readouterr()
    assert models.handler(event, lambda_context())["statusCode"] == 200
    (blob,) = [b for b in emitted(capsys)[0] if "Predictions" in b]
    assert total(blob, "CacheStaleServed") == 1
