"""What each event file in events/ must produce.

Shared by the in-process event tests and the `sam local invoke` tests, so both
check the same behaviour from the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = json.loads((Path(__file__).parent / "contract" / "batch_predict.schema.json").read_text())

# function directory (functions/<dir>) -> the SAM logical id serving it
FUNCTIONS = {
    "models": "ModelsFunction",
    "batch": "BatchFunction",
    "runs": "RunsFunction",
    "authorizer": "AuthorizerFunction",
    "docs": "DocsFunction",
    "inference": "InferenceFunction",
    "embeddings": "EmbeddingsFunction",
    "bulk_job": "BulkJobFunction",
    "bulk_worker": "BulkWorkerFunction",
}
# function -> (functions/<dir>, the handler's name in its app.py): the bulk functions share a directory
HANDLERS = {name: (name, "handler") for name in FUNCTIONS} | {
    "bulk_job": ("bulk", "job_handler"),
    "bulk_worker": ("bulk", "batch_handler"),
}


def handler_of(apps: dict[str, Any], function: str) -> Any:
    """The handler of `function` among the loaded function apps (keyed by directory)."""
    directory, name = HANDLERS[function]
    return getattr(apps[directory], name)


@dataclass(frozen=True)
class Expected:
    function: str
    status_code: int | None = None  # HTTP status (route functions)
    status: str | None = None  # the body's "status" for single-model answers and errors
    item_statuses: list[str] = field(default_factory=list)  # batch answers, in order
    run_output: bool = False  # a playground answer {"run": {"output": [...]}}
    authorized: bool | None = None  # authorizer answers
    content_type: str = "application/json"
    protocol_error: bool = False  # a v2 refusal: the Open Inference Protocol's {"error": "..."}
    openai_error: bool = False  # an /openai/v1 refusal: OpenAI's {"error": {"message", "type", "param", "code"}}
    embeddings: int = 0  # an /openai/v1 embeddings answer with this many embeddings
    bulk: dict[str, Any] | None = None  # a bulk task's answer holds these fields ("refused"/"reason": any text)


def models(status_code: int, status: str | None = None) -> Expected:
    return Expected("models", status_code, status)


def inference(status_code: int, content_type: str = "application/json") -> Expected:
    return Expected("inference", status_code, content_type=content_type, protocol_error=status_code >= 400)


def embeddings(status_code: int, count: int = 0) -> Expected:
    return Expected("embeddings", status_code, openai_error=status_code >= 400, embeddings=count)


def bulk_job(ok: bool, **fields: Any) -> Expected:
    return Expected("bulk_job", bulk={"ok": ok, **({} if ok else {"reason": str}), **fields})


def bulk_worker(**fields: Any) -> Expected:
    return Expected("bulk_worker", bulk=fields)


EXPECTED: dict[str, Expected] = {
    "models_list.json": models(200),
    "models_list_direct_with_token.json": models(200),
    "models_list_named_stage.json": models(200),
    "models_describe_drive_stats_a.json": models(200),
    "models_describe_user_churn.json": models(200),
    "models_describe_unknown_model.json": models(404, "BadRequest"),
    "models_forecast_drive_stats_a.json": models(200, "Success"),
    "models_forecast_unknown_model.json": models(404, "BadRequest"),
    "models_forecast_version.json": models(200, "Success"),
    "models_forecast_unknown_version.json": models(404, "BadRequest"),
    "models_predict_ensemble_members.json": models(200, "Success"),
    "models_forecast_classifier_without_inputs.json": models(400, "BadRequest"),
    "models_predict_forecast_window.json": models(200, "Success"),
    "models_predict_ids_probability.json": models(200, "Success"),
    "models_predict_ids_labels.json": models(200, "Success"),
    "models_predict_feature_rows.json": models(200, "Success"),
    "models_predict_malformed_json.json": models(400, "BadRequest"),
    "models_predict_wrong_width.json": models(400, "BadRequest"),
    "models_predict_nan.json": models(400, "BadRequest"),
    "models_predict_unknown_ids.json": models(400, "BadRequest"),
    "models_predict_texts.json": models(200, "Success"),
    "models_predict_unknown_model.json": models(404, "BadRequest"),
    "models_predict_without_token.json": models(401, "BadRequest"),
    "models_predict_wrong_token.json": models(401, "BadRequest"),
    "batch_drive_stats.json": Expected("batch", 200, item_statuses=["Success", "Success"]),
    "batch_mixed_statuses.json": Expected(
        "batch", 200, item_statuses=["Success", "Success", "BadRequest", "BadRequest"]
    ),
    "batch_routing_key.json": Expected("batch", 200, item_statuses=["Success", "Success"]),
    "batch_empty.json": Expected("batch", 400, "BadRequest"),
    "batch_malformed_json.json": Expected("batch", 400, "BadRequest"),
    "runs_document_probability.json": Expected("runs", 200, run_output=True),
    "runs_document_labels.json": Expected("runs", 200, run_output=True),
    "runs_without_record.json": Expected("runs", 200, run_output=True),
    "runs_reload_upstream.json": Expected("runs", 200, run_output=True),
    "runs_unknown_block.json": Expected("runs", 400, "BadRequest"),
    "runs_unknown_user_ids.json": Expected("runs", 400, "BadRequest"),
    "runs_bad_variables.json": Expected("runs", 400, "BadRequest"),
    "runs_missing_block.json": Expected("runs", 400, "BadRequest"),
    "docs_openapi_document.json": Expected("docs", 200),
    "docs_openapi_document_named_stage.json": Expected("docs", 200),
    "docs_page.json": Expected("docs", 200, content_type="text/html"),
    "docs_swagger_ui_asset.json": Expected("docs", 200, content_type="text/css"),
    "docs_playground_page.json": Expected("docs", 200, content_type="text/html"),
    "inference_server_metadata.json": inference(200),
    "inference_server_live.json": inference(200),
    "inference_server_ready.json": inference(200),
    "inference_model_metadata.json": inference(200),
    "inference_model_version_metadata.json": inference(200),
    "inference_model_unknown_version.json": inference(404),
    "inference_model_ready.json": inference(200),
    "inference_model_version_ready.json": inference(200),
    "inference_infer_json.json": inference(200),
    "inference_infer_version.json": inference(200),
    "inference_infer_binary.json": inference(200, "application/octet-stream"),
    "inference_infer_text.json": inference(200),
    "inference_infer_unknown_model.json": inference(404),
    "inference_infer_wrong_datatype.json": inference(400),
    "inference_infer_without_token.json": inference(401),
    "embeddings_create.json": embeddings(200, 2),
    "embeddings_create_base64.json": embeddings(200, 2),
    "embeddings_non_text_model.json": embeddings(400),
    "embeddings_unknown_model.json": embeddings(404),
    "embeddings_token_ids.json": embeddings(400),
    "embeddings_without_token.json": embeddings(401),
    "embeddings_list_models.json": embeddings(200),
    "embeddings_retrieve_model.json": embeddings(200),
    "authorizer_valid_token.json": Expected("authorizer", authorized=True),
    "authorizer_wrong_token.json": Expected("authorizer", authorized=False),
    "authorizer_malformed_header.json": Expected("authorizer", authorized=False),
    "bulk_job_validate.json": bulk_job(True, source="csv", input_objects=1),
    "bulk_job_validate_unknown_model.json": bulk_job(False),
    "bulk_job_validate_missing_input.json": bulk_job(False),
    "bulk_job_validate_bad_column.json": bulk_job(False),
    "bulk_worker_csv_rows.json": bulk_worker(batch="rows-000000100-000000103", scored=3, refused=1),
    "bulk_worker_jsonl_rows.json": bulk_worker(batch="rows-000000000-000000001", scored=2, refused=0),
    "bulk_worker_shard.json": bulk_worker(scored=5, refused=0, versions={"1.0": 5}),
    "bulk_worker_malformed.json": bulk_worker(refused=str),
}


def check_result(expected: Expected, result: dict[str, Any]) -> None:
    """Assert one handler result against its expectation (also used by the sam local tests)."""
    if expected.bulk is not None:
        assert "Traceback" not in json.dumps(result) and "stackTrace" not in result, result
        for name, value in expected.bulk.items():
            assert isinstance(result.get(name), str) if value is str else result.get(name) == value, result
        return
    if expected.authorized is not None:
        assert result["isAuthorized"] is expected.authorized
        assert (result.get("context") or {}).get("principal", "").startswith("token:") == expected.authorized
        return
    assert result["statusCode"] == expected.status_code, result["body"]
    assert result["headers"]["content-type"].split(";")[0] == expected.content_type
    assert "Traceback" not in result["body"]
    if expected.content_type != "application/json":
        return
    body = json.loads(result["body"])
    if expected.protocol_error:
        assert set(body) == {"error"} and body["error"], body
    if expected.openai_error:
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"], body
    if expected.embeddings:
        assert body["object"] == "list" and len(body["data"]) == expected.embeddings, body
        for item in body["data"]:
            vector = item["embedding"]
            assert len(vector) == (2048 if isinstance(vector, str) else 384)  # base64 of 384 float32, or numbers
        assert result["headers"]["x-model-version"] == "1"
    if expected.status is not None:
        assert body["status"] == expected.status
        assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0
        if expected.status != "Success":
            assert body["error_message"]
    if expected.item_statuses:
        jsonschema.validate(body, SCHEMA["response"])
        assert [item["status"] for item in body["predictions"]] == expected.item_statuses
        for item in body["predictions"]:
            assert (item["status"] == "Success") == ("error_message" not in item)
    if expected.run_output:
        (output,) = body["run"]["output"]
        assert isinstance(output, list) and len(output) == 3
    if expected.status_code == 401:
        if expected.openai_error:
            message = body["error"]["message"]
        else:
            message = body["error" if expected.protocol_error else "error_message"]
        assert "Bearer" in message
