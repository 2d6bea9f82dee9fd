"""The one error vocabulary: every refusal and failure, wherever it is decided, answers the
same body (`status`, `error_message`, `model_name` when a model is named, `duration_ms`),
with the HTTP status its error class carries, and never a bucket, key or parser text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prediction_service import errors
from support import BUCKET, ROOT, http_event, lambda_context, load_event, load_function

BODY_KEYS = {"status", "error_message", "model_name", "duration_ms"}


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    return {name: load_function(name) for name in ("models", "batch", "runs")}


@pytest.mark.parametrize(
    ("error", "code", "word"),
    [
        (errors.BadInputError("x"), 400, "BadRequest"),
        (errors.UnauthorizedError("x"), 401, "BadRequest"),
        (errors.ModelNotFoundError("m"), 404, "BadRequest"),
        (errors.RouteNotFoundError("GET", "/x"), 404, "BadRequest"),
        (errors.MethodNotAllowedError("PUT", ["GET"]), 405, "BadRequest"),
        (errors.PayloadTooLargeError("x"), 413, "BadRequest"),
        (errors.UnsupportedMediaTypeError("x"), 415, "BadRequest"),
        (errors.ManifestError("x"), 500, "InternalError"),
        (errors.StoreError("x"), 500, "InternalError"),
        (errors.IntegrityError("x"), 500, "InternalError"),
        (errors.ModelOutputError("x"), 500, "InternalError"),
        (errors.AuthConfigError("x"), 500, "InternalError"),
        (errors.PredictionError("x"), 500, "InternalError"),
    ],
)
def test_each_error_class_carries_its_status(error: errors.PredictionError, code: int, word: str) -> None:
    assert (error.http_status, error.status) == (code, word)
    body = errors.error_body(error, "req-1")
    assert body["status"] == word and set(body) <= BODY_KEYS
    assert body["error_message"].endswith("(request id req-1)") == (code >= 500)


def call(functions: dict[str, Any], function: str, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    result = functions[function].handler(event, lambda_context())
    return result["statusCode"], result["headers"], json.loads(result["body"])


def cases() -> list[tuple[str, str, dict[str, Any], int]]:
    no_token = http_event("GET", "/v1/models")
    no_token["headers"].pop("authorization")
    return [
        ("missing token (middleware)", "models", no_token, 401),
        ("body too large (middleware)", "models",
         http_event("POST", "/v1/models/user_churn/predict", '{"inputs": [[' + "1," * 600_000 + "1]]}"), 413),
        ("not JSON (middleware)", "models",
         http_event("POST", "/v1/models/user_churn/predict", "<x/>", {"content-type": "application/xml"}), 415),
        ("schema (validation handler)", "models", http_event("POST", "/v1/models/user_churn/predict", '{"ids": 1}'), 400),
        ("unknown model (domain)", "models", http_event("GET", "/v1/models/nope/predict"), 404),
        ("wrong width (domain)", "models", http_event("POST", "/v1/models/user_churn/predict", '{"inputs": [[1]]}'), 400),
        ("unknown route (router)", "models", http_event("GET", "/v1/nothing/here"), 404),
        ("unknown block (runs)", "runs",
         http_event("POST", "/api/runs", '{"run": {"pipeline_uuid": "p", "block_uuid": "b"}}'), 400),
        ("unknown batch field", "batch",
         http_event("POST", "/v1/predict", '{"predictions": [{"model_name": "drive_stats_a"}], "extra": 1}'), 400),
    ]


@pytest.mark.parametrize(("function", "event", "code"), [c[1:] for c in cases()], ids=[c[0] for c in cases()])
def test_every_refusal_has_the_one_error_body(
    s3: Any, functions: dict[str, Any], function: str, event: dict[str, Any], code: int
) -> None:
    status, headers, body = call(functions, function, event)
    assert status == code, body
    assert headers["content-type"] == "application/json"
    assert set(body) <= BODY_KEYS and {"status", "error_message", "duration_ms"} <= set(body)
    assert body["status"] == "BadRequest" and body["error_message"]
    if code == 401:
        assert headers["www-authenticate"] == "Bearer"


def test_a_model_that_cannot_load_answers_500_without_saying_where_it_lives(s3: Any, functions: dict[str, Any]) -> None:
    """Bug c: no `s3://<bucket>/<key>` in an answer; the request id instead, the detail in the log."""
    s3.delete_object(Bucket=BUCKET, Key="models/user_churn.onnx")
    status, _, body = call(functions, "models", load_event(ROOT / "events/models_predict_ids_labels.json"))
    assert status == 500 and body["status"] == "InternalError" and body["model_name"] == "user_churn"
    assert body["error_message"] == (
        "model 'user_churn' could not be loaded: the file does not exist in the model bucket "
        f"(request id {lambda_context().aws_request_id})"
    )
    assert BUCKET not in json.dumps(body) and "s3://" not in json.dumps(body)


def test_an_invalid_manifest_answers_500_without_the_parsers_text(
    s3: Any, functions: dict[str, Any], caplog: Any
) -> None:
    """Bug c: the pydantic text of an invalid manifest (which quotes it) goes to the log only."""
    manifest = (ROOT / "models/manifest.yaml").read_text().replace("lookback: 30", "lookback: -30", 1)
    s3.put_object(Bucket=BUCKET, Key="models/manifest.yaml", Body=manifest.encode())
    status, _, body = call(functions, "models", http_event("GET", "/v1/models"))
    assert status == 500 and body["status"] == "InternalError"
    assert body["error_message"].startswith("the model manifest could not be loaded: it is not a valid manifest")
    assert "greater than 0" not in body["error_message"] and "lookback" not in body["error_message"]
    assert "greater than 0" in caplog.text, "the reason is in the log"


def test_batch_items_fail_with_the_same_body_as_single_predictions(s3: Any, functions: dict[str, Any]) -> None:
    s3.delete_object(Bucket=BUCKET, Key="models/drive_stats_b.onnx")
    single = call(functions, "models", http_event("GET", "/v1/models/drive_stats_b/predict"))[2]
    batch = call(functions, "batch", http_event("POST", "/v1/predict", '{"predictions": [{"model_name": "drive_stats_b"}]}'))[2]
    (item,) = batch["predictions"]
    assert set(item) == set(single) == BODY_KEYS
    assert item["error_message"] == single["error_message"] and item["status"] == single["status"] == "InternalError"


def test_a_direct_invocation_with_a_forged_authorizer_context_still_needs_a_token(
    s3: Any, functions: dict[str, Any]
) -> None:
    """Bug f: `requestContext.authorizer.lambda.principal` is written by whoever invokes the
    function; the functions check the bearer token of every request themselves."""
    event = load_event(ROOT / "events/models_list.json")
    assert event["requestContext"]["authorizer"]["lambda"]["principal"].startswith("token:")
    del event["headers"]["authorization"]
    status, headers, body = call(functions, "models", event)
    assert status == 401 and "Bearer" in body["error_message"] and headers["www-authenticate"] == "Bearer"
    event["headers"]["authorization"] = "Bearer forged-token-0123456789abcdef"
    assert call(functions, "models", event)[0] == 401
