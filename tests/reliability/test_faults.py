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
from prediction_service.composition import default_service
from prediction_service.schemas import BatchItem, PredictRequest
from prediction_service.service import PredictionService
from publish_models import publish
from support import ROOT

BUCKET = "faulty-models"
TWO_FORECASTS = [BatchItem(model_name="drive_stats_a"), BatchItem(model_name="drive_stats_b")]


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[FaultyS3]:
    s3 = FaultyS3()
    client = boto3.client("s3", endpoint_url=s3.moto_url)
    client.create_bucket(Bucket=BUCKET)
    publish(client, BUCKET)
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
    default_service.cache_clear()
    yield s3
    default_service.cache_clear()
    s3.close()


def statuses(service: PredictionService, items: list[BatchItem] = TWO_FORECASTS) -> list[str]:
    return [p.status.value for p in service.predict_batch(items).predictions]


def test_s3_unreachable_without_cache_is_an_internal_error_per_item(faulty: FaultyS3) -> None:
    faulty.fault = Fault("reset")
    body = default_service().predict_batch(TWO_FORECASTS)
    assert [p.status.value for p in body.predictions] == ["InternalError", "InternalError"]
    assert all("could not reach S3" in (p.error_message or "") for p in body.predictions)
    assert all("127.0.0.1" not in (p.error_message or "") for p in body.predictions), "no endpoint in answers"
    faulty.fault = None
    assert statuses(default_service()) == ["Success", "Success"]  # nothing failed was cached


def test_s3_unreachable_with_cache_keeps_serving_and_warns(faulty: FaultyS3, caplog: Any) -> None:
    service = default_service()
    assert statuses(service) == ["Success", "Success"]
    faulty.fault = Fault("reset")
    caplog.set_level(logging.WARNING)
    assert statuses(service) == ["Success", "Success"]
    assert "serving cached models/manifest.yaml" in caplog.text


def test_slow_s3_times_out_instead_of_hanging(faulty: FaultyS3) -> None:
    faulty.fault = Fault("delay", seconds=20)
    started = time.monotonic()
    outcome = default_service().predict("drive_stats_a", PredictRequest())
    assert outcome.http_status == 500 and "could not reach S3" in (outcome.response.error_message or "")
    assert time.monotonic() - started < 10, "the read timeout (1 s here) should end the wait"


def test_access_denied_on_one_model_fails_only_that_model(faulty: FaultyS3) -> None:
    faulty.fault = Fault("deny", match="drive_stats_b.onnx")
    body = default_service().predict_batch(TWO_FORECASTS)
    assert [p.status.value for p in body.predictions] == ["Success", "InternalError"]
    assert "denied" in (body.predictions[1].error_message or "")


def test_s3_errors_fail_only_the_affected_model(faulty: FaultyS3) -> None:
    faulty.fault = Fault("error", match="user_churn")
    items = [*TWO_FORECASTS, BatchItem(model_name="user_churn", ids=[1])]
    assert statuses(default_service(), items) == ["Success", "Success", "InternalError"]


def test_corrupted_download_is_refused_and_not_cached(faulty: FaultyS3) -> None:
    faulty.fault = Fault("corrupt", match="drive_stats_a.onnx")
    service = default_service()
    outcome = service.predict("drive_stats_a", PredictRequest())
    assert outcome.http_status == 500 and "sha256" in (outcome.response.error_message or "")
    faulty.fault = None
    assert service.predict("drive_stats_a", PredictRequest()).http_status == 200


def test_a_file_that_is_not_onnx_is_refused(faulty: FaultyS3, tmp_path: Any) -> None:
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    (models / "drive_stats_a.onnx").write_bytes(b"this is not an ONNX model")
    manifest = (models / "manifest.yaml").read_text()
    old = hashlib.sha256((ROOT / "models/drive_stats_a.onnx").read_bytes()).hexdigest()
    new = hashlib.sha256(b"this is not an ONNX model").hexdigest()
    (models / "manifest.yaml").write_text(manifest.replace(old, new))
    publish(boto3.client("s3", endpoint_url=faulty.moto_url), BUCKET, models_dir=models)
    outcome = default_service().predict("drive_stats_a", PredictRequest())
    assert outcome.http_status == 500 and "not a valid ONNX model" in (outcome.response.error_message or "")
    assert statuses(default_service(), [BatchItem(model_name="drive_stats_b")]) == ["Success"]


def test_model_replaced_before_its_manifest_is_refused_until_the_manifest_follows(faulty: FaultyS3) -> None:
    """The ETag of a model changes mid-flight: its bytes no longer match the manifest, so they are refused."""
    client = boto3.client("s3", endpoint_url=faulty.moto_url)
    service = default_service()
    before = service.predict("drive_stats_a", PredictRequest()).response.prediction
    assert before is not None
    service.registry._cache.invalidate("models/drive_stats_a.onnx")  # as if evicted, so it must be fetched
    replacement = (ROOT / "models/drive_stats_b.onnx").read_bytes()
    client.put_object(Bucket=BUCKET, Key="models/drive_stats_a.onnx", Body=replacement)
    refused = service.predict("drive_stats_a", PredictRequest())
    assert refused.http_status == 500 and "sha256" in (refused.response.error_message or "")
    manifest = client.get_object(Bucket=BUCKET, Key="models/manifest.yaml")["Body"].read().decode()
    old = hashlib.sha256((ROOT / "models/drive_stats_a.onnx").read_bytes()).hexdigest()
    client.put_object(
        Bucket=BUCKET, Key="models/manifest.yaml", Body=manifest.replace(old, hashlib.sha256(replacement).hexdigest())
    )
    after = service.predict("drive_stats_a", PredictRequest())
    assert after.http_status == 200
    expected = service.predict("drive_stats_b", PredictRequest()).response.prediction
    assert after.response.prediction == expected  # now serving the replacement
