"""The prediction service over moto S3: answers, raised errors, batch isolation and parallelism."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import jsonschema
import pytest
from prediction_service.composition import build_components, components
from prediction_service.dataplane.types import Answer, Failure
from prediction_service.errors import BadInputError, ModelLoadError, ModelNotFoundError, PredictionError
from prediction_service.protocols.v1.schemas import BatchItem, PredictRequest
from prediction_service.settings import Settings
from prediction_service.storage.s3 import S3Store
from support import BUCKET, ROOT, CountingStore

TWO_FORECASTS = [BatchItem(model_name="drive_stats_a"), BatchItem(model_name="drive_stats_b")]
SCHEMA = json.loads((ROOT / "tests/contract/batch_predict.schema.json").read_text())


def now() -> float:
    return time.perf_counter()


def statuses(results: list[Answer | Failure]) -> list[str]:
    return [r.value.status.value if isinstance(r, Answer) else r.error.status for r in results]


def test_forecast_from_the_models_own_data(s3: Any) -> None:
    prediction = components().service.predict("drive_stats_b", PredictRequest(), now())
    assert prediction.value.model_version == "1.0" and len(prediction.value.prediction or []) == 3
    assert prediction.inference.inference_ms > 0


def test_forecast_refuses_several_windows(s3: Any) -> None:
    with pytest.raises(BadInputError, match="one window") as info:
        components().service.predict("drive_stats_a", PredictRequest(inputs=[[0.5] * 30, [0.5] * 30]), now())
    assert info.value.model_name == "drive_stats_a" and info.value.http_status == 400


def test_classifier_get_without_inputs_is_a_bad_request(s3: Any) -> None:
    with pytest.raises(BadInputError, match="inputs"):
        components().service.predict("user_churn", PredictRequest(), now())


def test_unknown_model_is_a_404_naming_it(s3: Any) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        components().service.predict("no_such_model", PredictRequest(), now())
    assert info.value.http_status == 404 and info.value.model_name == "no_such_model"


def test_a_finite_window_that_overflows_the_forecaster_is_the_callers_400(s3: Any) -> None:
    """Bug b: 30 values of +-2e38 are each a valid float32, but the forecast is infinite."""
    import numpy as np
    from prediction_service.runtime.onnx import load_model

    runtime = load_model((ROOT / "models/drive_stats_a.onnx").read_bytes())

    def forecast(window: Any) -> Any:
        return runtime.run(["variable"], {"X": window})[0].reshape(-1)

    unit = np.eye(30, dtype=np.float32)
    weights = [forecast(unit[i : i + 1])[0] - forecast(0 * unit[:1])[0] for i in range(30)]
    window = [2e38 if w > 0 else -2e38 for w in weights]  # every term adds up: the first value overflows
    with pytest.raises(BadInputError) as info:
        components().service.predict("drive_stats_a", PredictRequest(inputs=[window]), now())
    assert info.value.http_status == 400
    assert "not finite" in info.value.message and "too large" in info.value.message
    assert "the manifest says" not in info.value.message


def test_list_models_reports_which_models_are_loaded(s3: Any) -> None:
    service = components().service
    assert not any(m.loaded for m in service.list_models().models)
    service.predict("drive_stats_a", PredictRequest(), now())
    loaded = {m.name: m.loaded for m in service.list_models().models}
    assert {name for name, is_loaded in loaded.items() if is_loaded} == {"drive_stats_a"} and len(loaded) >= 4


def test_a_model_missing_from_s3_fails_alone_in_a_batch(s3: Any) -> None:
    s3.delete_object(Bucket=BUCKET, Key="models/drive_stats_b.onnx")
    results = components().service.predict_batch(TWO_FORECASTS)
    assert statuses(results) == ["Success", "InternalError"]
    failure = results[1]
    assert isinstance(failure, Failure) and isinstance(failure.error, ModelLoadError)
    assert failure.error.model_name == "drive_stats_b"
    assert failure.error.message == "model 'drive_stats_b' could not be loaded: the file does not exist in the model bucket"
    assert "s3://" in failure.error.detail and "s3://" not in failure.error.message  # bug c: where goes to the log only


def test_a_corrupted_model_is_an_internal_error_and_is_retried_once_fixed(s3: Any) -> None:
    original = s3.get_object(Bucket=BUCKET, Key="models/user_churn.onnx")["Body"].read()
    s3.put_object(Bucket=BUCKET, Key="models/user_churn.onnx", Body=b"corrupted")
    service = components().service
    with pytest.raises(ModelLoadError, match="sha256") as info:
        service.predict("user_churn", PredictRequest(ids=[1]), now())
    assert info.value.http_status == 500
    s3.put_object(Bucket=BUCKET, Key="models/user_churn.onnx", Body=original)
    assert service.predict("user_churn", PredictRequest(ids=[1]), now()).value.status.value == "Success"


def test_batch_items_run_in_parallel(s3: Any, cache_dir: Any) -> None:
    """Two cold models: the second download starts before the first one ends."""
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    class SlowModels(CountingStore):
        def fetch_small(self, key: str, limit: int) -> Any:
            start = time.perf_counter()
            time.sleep(0.3 if key.endswith(".onnx") else 0)
            result = super().fetch_small(key, limit)
            if key.endswith(".onnx"):
                with lock:
                    spans.append((start, time.perf_counter()))
            return result

    service = build_components(Settings.from_env(), store=SlowModels(S3Store(BUCKET, s3))).service
    service.registry.manifest()  # load the manifest first, so only the models overlap
    assert statuses(service.predict_batch(TWO_FORECASTS)) == ["Success", "Success"]
    (start_a, end_a), (start_b, end_b) = sorted(spans)
    assert start_b < end_a, "the second model's download waited for the first"


def test_items_that_cannot_be_served_get_their_own_bad_request(s3: Any) -> None:
    items = [
        BatchItem(model_name="drive_stats_a"),
        BatchItem(model_name="no_such_model"),
        BatchItem(model_name="drive_stats_b", ids=[1]),
        BatchItem(model_name="user_churn", inputs=[[1.0]]),
    ]
    results = components().service.predict_batch(items)
    assert statuses(results) == ["Success", "BadRequest", "BadRequest", "BadRequest"]
    assert [r.error.model_name for r in results if isinstance(r, Failure)] == [i.model_name for i in items[1:]]
    assert "not in the manifest" in results[1].error.message  # type: ignore[union-attr]


def test_an_unexpected_error_in_one_item_fails_only_that_item(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    service = components().service
    real = service.dataplane.infer

    def broken(request: Any, on_route: Any = None) -> Any:
        if request.model == "drive_stats_b":
            raise RuntimeError("a bug")
        return real(request, on_route)

    monkeypatch.setattr(service.dataplane, "infer", broken)
    results = service.predict_batch(TWO_FORECASTS)
    assert statuses(results) == ["Success", "InternalError"]
    error = results[1].error  # type: ignore[union-attr]
    assert type(error) is PredictionError and "a bug" not in error.message


def test_prefetch_loads_every_model_before_the_first_request(s3: Any, monkeypatch: Any) -> None:
    from prediction_service.composition import prefetch_in_background

    monkeypatch.setenv("PREFETCH_MODELS", "all")
    thread = prefetch_in_background()
    assert thread is not None
    thread.join(timeout=30)
    assert all(m.loaded for m in components().service.list_models().models)


def test_prefetch_of_named_models_and_its_failures_stay_quiet(s3: Any, monkeypatch: Any, caplog: Any) -> None:
    from prediction_service.composition import prefetch_in_background

    monkeypatch.setenv("PREFETCH_MODELS", "user_churn")
    prefetch_in_background().join(timeout=30)  # type: ignore[union-attr]
    assert {m.name for m in components().service.list_models().models if m.loaded} == {"user_churn"}
    s3.delete_object(Bucket=BUCKET, Key="models/drive_stats_a.onnx")
    monkeypatch.setenv("PREFETCH_MODELS", "drive_stats_a")
    prefetch_in_background().join(timeout=30)  # type: ignore[union-attr]
    assert "prefetch stopped" in caplog.text
    monkeypatch.setenv("PREFETCH_MODELS", "none")
    assert prefetch_in_background() is None


def test_warm_batch_runs_inline_and_cold_batch_in_threads(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    service = components().service
    threads: list[str] = []
    real = service.dataplane.infer

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(service.dataplane, "infer", recording)
    service.predict_batch(TWO_FORECASTS)
    assert all(name.startswith("predict") for name in threads)  # cold: the pool
    threads.clear()
    service.predict_batch(TWO_FORECASTS)
    assert threads == [threading.current_thread().name] * 2  # warm: inline


def test_batch_items_are_passed_on_as_validated_not_rebuilt(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from prediction_service.protocols.v1 import codec

    service = components().service
    seen: list[Any] = []
    real = codec.decode

    def recording(body: PredictRequest, served: Any) -> Any:
        seen.append(body)
        return real(body, served)

    monkeypatch.setattr(codec, "decode", recording)
    service.predict_batch(TWO_FORECASTS)
    assert sorted(map(id, seen)) == sorted(map(id, TWO_FORECASTS))  # the same objects (in parallel: any order)


def test_batch_answer_validates_against_the_published_schema(s3: Any) -> None:
    """Through the batch function itself: the router maps each item with the one error body."""
    from support import http_event, lambda_context, load_function

    body = json.dumps({"predictions": [{"model_name": "drive_stats_a"}, {"model_name": "nope"}]})
    result = load_function("batch").handler(http_event("POST", "/v1/predict", body), lambda_context())
    answer = json.loads(result["body"])
    jsonschema.validate(answer, SCHEMA["response"])
    assert [p["status"] for p in answer["predictions"]] == ["Success", "BadRequest"]
    assert set(answer["predictions"][1]) == {"status", "model_name", "error_message", "duration_ms"}
