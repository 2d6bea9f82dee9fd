"""The prediction service over moto S3: statuses, batch isolation and parallelism."""

from __future__ import annotations

import threading
import time
from typing import Any

import jsonschema
from support import BUCKET, ROOT
from prediction_service.composition import default_service
from prediction_service.schemas import BatchItem, PredictRequest
from prediction_service.service import PredictionService

TWO_FORECASTS = [BatchItem(model_name="drive_stats_a"), BatchItem(model_name="drive_stats_b")]
SCHEMA = __import__("json").loads((ROOT / "tests/contract/batch_predict.schema.json").read_text())


def test_forecast_from_the_models_own_data(s3: Any) -> None:
    outcome = default_service().predict("drive_stats_b", PredictRequest())
    assert outcome.http_status == 200
    assert outcome.response.model_version == "1.0" and len(outcome.response.prediction or []) == 3


def test_forecast_refuses_several_windows(s3: Any) -> None:
    outcome = default_service().predict("drive_stats_a", PredictRequest(inputs=[[0.5] * 30, [0.5] * 30]))
    assert outcome.http_status == 400 and "one window" in (outcome.response.error_message or "")


def test_classifier_get_without_inputs_is_a_bad_request(s3: Any) -> None:
    outcome = default_service().predict("user_churn", PredictRequest())
    assert outcome.http_status == 400 and "inputs" in (outcome.response.error_message or "")


def test_list_models_reports_which_models_are_loaded(s3: Any) -> None:
    service = default_service()
    assert not any(m.loaded for m in service.list_models().models)
    service.predict("drive_stats_a", PredictRequest())
    loaded = {m.name: m.loaded for m in service.list_models().models}
    assert loaded == {"drive_stats_a": True, "drive_stats_b": False, "user_churn": False}


def test_a_model_missing_from_s3_fails_alone_in_a_batch(s3: Any) -> None:
    s3.delete_object(Bucket=BUCKET, Key="models/drive_stats_b.onnx")
    body = default_service().predict_batch(TWO_FORECASTS)
    statuses = [(p.model_name, p.status.value) for p in body.predictions]
    assert statuses == [("drive_stats_a", "Success"), ("drive_stats_b", "InternalError")]
    assert "does not exist" in (body.predictions[1].error_message or "")
    jsonschema.validate(body.model_dump(mode="json", exclude_none=True), SCHEMA["response"])


def test_a_corrupted_model_is_an_internal_error_and_is_retried_once_fixed(s3: Any) -> None:
    original = s3.get_object(Bucket=BUCKET, Key="models/user_churn.onnx")["Body"].read()
    s3.put_object(Bucket=BUCKET, Key="models/user_churn.onnx", Body=b"corrupted")
    service = default_service()
    failed = service.predict("user_churn", PredictRequest(ids=[1]))
    assert failed.http_status == 500 and "sha256" in (failed.response.error_message or "")
    s3.put_object(Bucket=BUCKET, Key="models/user_churn.onnx", Body=original)
    assert service.predict("user_churn", PredictRequest(ids=[1])).http_status == 200


def test_batch_items_run_in_parallel(s3: Any, monkeypatch: Any) -> None:
    """Two cold models: the second download starts before the first one ends."""
    service: PredictionService = default_service()
    store = service.registry._cache._store  # the real S3Store over moto
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    fetch = store.fetch

    def slow_fetch(key: str, if_none_match: str | None = None) -> Any:
        start = time.perf_counter()
        time.sleep(0.3 if key.endswith(".onnx") else 0)
        result = fetch(key, if_none_match)
        if key.endswith(".onnx"):
            with lock:
                spans.append((start, time.perf_counter()))
        return result

    service.registry.manifest()  # load the manifest first, so only the models overlap
    monkeypatch.setattr(store, "fetch", slow_fetch)
    body = service.predict_batch(TWO_FORECASTS)
    assert [p.status.value for p in body.predictions] == ["Success", "Success"]
    (start_a, end_a), (start_b, end_b) = sorted(spans)
    assert start_b < end_a, "the second model's download waited for the first"


def test_items_that_cannot_be_served_get_their_own_bad_request(s3: Any) -> None:
    items = [
        BatchItem(model_name="drive_stats_a"),
        BatchItem(model_name="no_such_model"),
        BatchItem(model_name="drive_stats_b", ids=[1]),
        BatchItem(model_name="user_churn", inputs=[[1.0]]),
    ]
    body = default_service().predict_batch(items)
    assert [p.status.value for p in body.predictions] == ["Success", "BadRequest", "BadRequest", "BadRequest"]
    assert [p.model_name for p in body.predictions] == [i.model_name for i in items]
    assert "not in the manifest" in (body.predictions[1].error_message or "")
    jsonschema.validate(body.model_dump(mode="json", exclude_none=True), SCHEMA["response"])


def test_prefetch_loads_every_model_before_the_first_request(s3: Any, monkeypatch: Any) -> None:
    from prediction_service.composition import prefetch_in_background

    monkeypatch.setenv("PREFETCH_MODELS", "all")
    thread = prefetch_in_background()
    assert thread is not None
    thread.join(timeout=30)
    assert all(m.loaded for m in default_service().list_models().models)


def test_prefetch_of_named_models_and_its_failures_stay_quiet(s3: Any, monkeypatch: Any, caplog: Any) -> None:
    from prediction_service.composition import prefetch_in_background

    monkeypatch.setenv("PREFETCH_MODELS", "user_churn")
    prefetch_in_background().join(timeout=30)  # type: ignore[union-attr]
    assert {m.name for m in default_service().list_models().models if m.loaded} == {"user_churn"}
    s3.delete_object(Bucket=BUCKET, Key="models/drive_stats_a.onnx")
    monkeypatch.setenv("PREFETCH_MODELS", "drive_stats_a")
    prefetch_in_background().join(timeout=30)  # type: ignore[union-attr]
    assert "prefetch stopped" in caplog.text
    monkeypatch.setenv("PREFETCH_MODELS", "none")
    assert prefetch_in_background() is None


def test_warm_batch_runs_inline_and_cold_batch_in_threads(s3: Any) -> None:
    service = default_service()
    threads: list[str] = []
    run = service._predict_item

    def recording(raw: Any) -> Any:
        threads.append(threading.current_thread().name)
        return run(raw)

    service._predict_item = recording  # type: ignore[method-assign]
    service.predict_batch(TWO_FORECASTS)
    assert all(name.startswith("predict") for name in threads)  # cold: the pool
    threads.clear()
    service.predict_batch(TWO_FORECASTS)
    assert threads == [threading.current_thread().name] * 2  # warm: inline
