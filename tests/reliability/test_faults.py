"""S3 faults against a real endpoint (moto server behind a fault-injecting proxy).

With a cached copy the service keeps answering (stale if error); without one, the
affected model answers InternalError and every other batch item still succeeds.
A failed load is never cached.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from faulty_s3 import Fault, FaultyS3
from local_s3 import MotoServer, create_bucket
from prediction_service.composition import components
from prediction_service.dataplane.types import Answer, Failure
from prediction_service.errors import PredictionError
from prediction_service.protocols.v1.schemas import BatchItem, PredictRequest
from prediction_service.protocols.v1.service import PredictionService
from publish_models import publish
from support import ROOT

BUCKET = "faulty-models"
TWO_FORECASTS = [BatchItem(model_name="drive_stats_a"), BatchItem(model_name="drive_stats_b")]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def faulty(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[FaultyS3]:
    moto.reset()  # every test starts from an empty S3, as from a fresh server
    s3 = FaultyS3(moto)
    create_bucket(moto.client(), BUCKET)
    for key, value in {
        "MODEL_BUCKET": BUCKET,
        "S3_ENDPOINT_URL": s3.url,
        "S3_CONNECT_TIMEOUT": "1",
        "S3_READ_TIMEOUT": "1",
        "S3_MAX_ATTEMPTS": "1",
        "MODEL_REVALIDATE_SECONDS": "0",  # revalidate the manifest on every request
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    components.cache_clear()
    yield s3
    components.cache_clear()
    s3.close()


def statuses(service: PredictionService, items: list[BatchItem] = TWO_FORECASTS) -> list[str]:
    return [status(r) for r in service.predict_batch(items)]


def status(result: Answer | Failure) -> str:
    return result.value.status.value if isinstance(result, Answer) else result.error.status


def answer(service: PredictionService, name: str) -> tuple[int, str, list[Any] | None]:
    """(HTTP status, error message, prediction) as the models function would answer."""
    try:
        prediction = service.predict(name, PredictRequest(), time.perf_counter())
    except PredictionError as exc:
        return exc.http_status, exc.message, None
    return 200, "", prediction.value.prediction


def test_s3_unreachable_without_cache_is_an_internal_error_per_item(faulty: FaultyS3) -> None:
    faulty.fault = Fault("reset")
    results = components().service.predict_batch(TWO_FORECASTS)
    assert [status(r) for r in results] == ["InternalError", "InternalError"]
    messages = [r.error.message for r in results if isinstance(r, Failure)]
    assert all("could not reach S3" in m for m in messages)
    assert all("127.0.0.1" not in m and "s3://" not in m for m in messages), "no endpoint or bucket in answers"
    faulty.fault = None
    assert statuses(components().service) == ["Success", "Success"]  # nothing failed was cached


def test_s3_unreachable_with_cache_keeps_serving_and_warns(faulty: FaultyS3, caplog: Any) -> None:
    service = components().service
    assert statuses(service) == ["Success", "Success"]
    faulty.fault = Fault("reset")
    caplog.set_level(logging.WARNING)
    assert statuses(service) == ["Success", "Success"]
    assert "serving cached models/manifest.yaml" in caplog.text


def test_slow_s3_times_out_instead_of_hanging(faulty: FaultyS3) -> None:
    faulty.fault = Fault("delay", seconds=20)
    started = time.monotonic()
    code, message, _ = answer(components().service, "drive_stats_a")
    assert code == 500 and "could not reach S3" in message
    assert time.monotonic() - started < 10, "the read timeout (1 s here) should end the wait"


def test_access_denied_on_one_model_fails_only_that_model(faulty: FaultyS3) -> None:
    faulty.fault = Fault("deny", match="drive_stats_b.onnx")
    results = components().service.predict_batch(TWO_FORECASTS)
    assert [status(r) for r in results] == ["Success", "InternalError"]
    assert "denied" in results[1].error.message  # type: ignore[union-attr]


def test_s3_errors_fail_only_the_affected_model(faulty: FaultyS3) -> None:
    faulty.fault = Fault("error", match="user_churn")
    items = [*TWO_FORECASTS, BatchItem(model_name="user_churn", ids=[1])]
    assert statuses(components().service, items) == ["Success", "Success", "InternalError"]


def test_corrupted_download_is_refused_and_not_cached(faulty: FaultyS3) -> None:
    faulty.fault = Fault("corrupt", match="drive_stats_a.onnx")
    service = components().service
    code, message, _ = answer(service, "drive_stats_a")
    assert code == 500 and "sha256" in message
    faulty.fault = None
    assert answer(service, "drive_stats_a")[0] == 200


def test_a_file_that_is_not_onnx_is_refused(faulty: FaultyS3, tmp_path: Any) -> None:
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    (models / "drive_stats_a.onnx").write_bytes(b"this is not an ONNX model")
    manifest = (models / "manifest.yaml").read_text()
    old = hashlib.sha256((ROOT / "models/drive_stats_a.onnx").read_bytes()).hexdigest()
    new = hashlib.sha256(b"this is not an ONNX model").hexdigest()
    (models / "manifest.yaml").write_text(manifest.replace(old, new))
    publish(boto3.client("s3", endpoint_url=faulty.moto_url), BUCKET, models_dir=models)
    code, message, _ = answer(components().service, "drive_stats_a")
    assert code == 500 and "not a valid ONNX model" in message
    assert statuses(components().service, [BatchItem(model_name="drive_stats_b")]) == ["Success"]


def test_model_replaced_before_its_manifest_is_refused_until_the_manifest_follows(faulty: FaultyS3) -> None:
    """The ETag of a model changes mid-flight: its bytes no longer match the manifest, so they are refused."""
    client = boto3.client("s3", endpoint_url=faulty.moto_url)
    service = components().service
    before = answer(service, "drive_stats_a")[2]
    assert before is not None
    components().cache.invalidate("models/drive_stats_a.onnx")  # as if evicted, so it must be fetched
    replacement = (ROOT / "models/drive_stats_b.onnx").read_bytes()
    client.put_object(Bucket=BUCKET, Key="models/drive_stats_a.onnx", Body=replacement)
    code, message, _ = answer(service, "drive_stats_a")
    assert code == 500 and "sha256" in message
    manifest = client.get_object(Bucket=BUCKET, Key="models/manifest.yaml")["Body"].read().decode()
    old = hashlib.sha256((ROOT / "models/drive_stats_a.onnx").read_bytes()).hexdigest()
    client.put_object(
        Bucket=BUCKET, Key="models/manifest.yaml", Body=manifest.replace(old, hashlib.sha256(replacement).hexdigest())
    )
    code, _, after = answer(service, "drive_stats_a")
    assert code == 200
    assert after == answer(service, "drive_stats_b")[2]  # now serving the replacement
