"""Write the API Gateway (HTTP API, payload 2.0) event files in events/.

    python scripts/generate_events.py

Each file starts from what `sam local generate-event apigateway http-api-proxy`
prints for its method, path and body, then gets what API Gateway really adds for
our routes: the route key, path parameters, JSON headers and a plain-text body.
The same files drive `sam local invoke -e events/<file>` and the pytest suites.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"
sys.path.insert(0, str(ROOT / "layers" / "prediction"))

from prediction_service.protocols.v1.schemas import DOCUMENT_EXAMPLE  # noqa: E402

# A token for event files and tests only: its hash is what tests and `sam local` runs
# configure (API_TOKEN_HASHES). Never configure it in a deployed stack.
EVENT_TOKEN = "event-files-test-token-not-for-production"
EVENT_TOKEN_HASH = hashlib.sha256(EVENT_TOKEN.encode()).hexdigest()


@dataclass(frozen=True)
class Case:
    """One request. `auth`: "gateway" = passed API Gateway's authorizer (header and its
    context), "none" = no header, or a literal Authorization header sent without the
    gateway. `authorizer`: the event is the authorizer's, not the route function's."""

    name: str
    method: str
    route: str  # the template's path, with {name}
    path_params: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    auth: str = "gateway"
    authorizer: bool = False
    stage: str = "$default"  # a named stage puts `/<stage>` in front of the path
    binary: bytes | None = None  # an application/octet-stream body: API Gateway sends it base64-encoded
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)  # the query string's parameters

    @property
    def path(self) -> str:
        path = self.route
        for key, value in self.path_params.items():
            path = path.replace("{" + key + "}", value)
        return path if self.stage == "$default" else f"/{self.stage}{path}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


WINDOW = [round(0.45 + 0.004 * i, 3) for i in range(30)]
INFER = "/v2/models/{name}/infer"
CHURN_ROWS = {"id": "event-1", "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32",
                                           "data": [[1.5, 30, 2, 4], [9.0, 1, 48, 0]]}]}


def _binary_request() -> tuple[bytes, int]:
    """What tritonclient sends by default: the JSON request, then the input's raw bytes, and
    every output asked for as raw bytes."""
    raw = struct.pack("<8f", 1.5, 30, 2, 4, 9.0, 1, 48, 0)
    header = _json({"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32",
                                "parameters": {"binary_data_size": len(raw)}}],
                    "parameters": {"binary_data_output": True}}).encode()
    return header + raw, len(header)


BINARY_REQUEST = _binary_request()
PREDICT = "/v1/models/{name}/predict"
EMBEDDINGS = "/openai/v1/embeddings"
TEXTS = ["A man is eating food.", "A man is eating a piece of bread."]

PLAYGROUND_RUN = DOCUMENT_EXAMPLE  # the playground document's request, as written


def run_with(**changes: Any) -> str:
    run = json.loads(json.dumps(PLAYGROUND_RUN))
    variables = changes.pop("variables", None)
    if variables is not None:
        run["run"]["variables"] = variables
    run["run"].update(changes)
    return _json(run)


CASES = [
    Case("models_list", "GET", "/v1/models"),
    Case("models_list_named_stage", "GET", "/v1/models", stage="prod"),
    Case("models_describe_drive_stats_a", "GET", "/v1/models/{name}", {"name": "drive_stats_a"}),
    Case("models_describe_user_churn", "GET", "/v1/models/{name}", {"name": "user_churn"}),
    Case("models_describe_unknown_model", "GET", "/v1/models/{name}", {"name": "no_such_model"}),
    Case("models_forecast_drive_stats_a", "GET", PREDICT, {"name": "drive_stats_a"}),
    Case("models_forecast_unknown_model", "GET", PREDICT, {"name": "no_such_model"}),
    Case("models_forecast_version", "GET", PREDICT, {"name": "drive_stats_a"}, query={"version": "1.0"}),
    Case("models_forecast_unknown_version", "GET", PREDICT, {"name": "drive_stats_a"}, query={"version": "9.9"}),
    Case("models_predict_ensemble_members", "POST", PREDICT, {"name": "drive_stats_mean"},
         _json({"inputs": [WINDOW], "members": True})),
    Case("models_forecast_classifier_without_inputs", "GET", PREDICT, {"name": "user_churn"}),
    Case("models_predict_forecast_window", "POST", PREDICT, {"name": "drive_stats_b"}, _json({"inputs": [WINDOW]})),
    Case("models_predict_ids_probability", "POST", PREDICT, {"name": "user_churn"}, _json({"ids": [1, 5, 100], "probability": True})),
    Case("models_predict_ids_labels", "POST", PREDICT, {"name": "user_churn"}, _json({"ids": [1, 5, 100], "probability": False})),
    Case("models_predict_feature_rows", "POST", PREDICT, {"name": "user_churn"}, _json({"inputs": [[1.5, 30, 2, 4], [9.0, 1, 48, 0]]})),
    Case("models_predict_malformed_json", "POST", PREDICT, {"name": "user_churn"}, '{"ids": [1, 5,'),
    Case("models_predict_wrong_width", "POST", PREDICT, {"name": "user_churn"}, _json({"inputs": [[1.0, 2.0, 3.0]]})),
    Case("models_predict_nan", "POST", PREDICT, {"name": "user_churn"}, '{"inputs": [[1.0, NaN, 3.0, 4.0]]}'),
    Case("models_predict_unknown_ids", "POST", PREDICT, {"name": "user_churn"}, _json({"ids": [1, 999999]})),
    Case("models_predict_texts", "POST", PREDICT, {"name": "all-minilm-l6-v2"},
         _json({"texts": ["A man is eating food.", "A man is eating a piece of bread."]})),
    Case("models_predict_unknown_model", "POST", PREDICT, {"name": "no_such_model"}, _json({"inputs": [[1.0]]})),
    Case(
        "batch_drive_stats",
        "POST",
        "/v1/predict",
        body=_json({"predictions": [{"model_name": "drive_stats_a"}, {"model_name": "drive_stats_b"}]}),
    ),
    Case(
        "batch_routing_key",
        "POST",
        "/v1/predict",
        body=_json({"predictions": [{"model_name": "drive_stats_mean", "members": True},
                                    {"model_name": "user_churn", "ids": [1], "probability": True}]}),
        headers={"x-routing-key": "customer-42"},
    ),
    Case(
        "batch_mixed_statuses",
        "POST",
        "/v1/predict",
        body=_json(
            {
                "predictions": [
                    {"model_name": "drive_stats_a"},
                    {"model_name": "user_churn", "ids": [1, 5, 100], "probability": True},
                    {"model_name": "no_such_model"},
                    {"model_name": "user_churn", "inputs": [[1.0, 2.0]]},
                ]
            }
        ),
    ),
    Case("batch_empty", "POST", "/v1/predict", body=_json({"predictions": []})),
    Case("batch_malformed_json", "POST", "/v1/predict", body='{"predictions": ['),
    Case("models_predict_without_token", "POST", PREDICT, {"name": "user_churn"}, _json({"ids": [1]}), auth="none"),
    Case("models_predict_wrong_token", "POST", PREDICT, {"name": "user_churn"}, _json({"ids": [1]}), auth="Bearer wrong-token-0123456789abcdef"),
    Case("models_list_direct_with_token", "GET", "/v1/models", auth=f"Bearer {EVENT_TOKEN}"),
    Case("runs_document_probability", "POST", "/api/runs", body=_json(PLAYGROUND_RUN)),
    Case("runs_document_labels", "POST", "/api/runs", body=run_with(variables={"probability": False, "user_ids": [1, 5, 100]})),
    Case("runs_without_record", "POST", "/api/runs", body=run_with(record=False)),
    Case("runs_reload_upstream", "POST", "/api/runs", body=run_with(run_upstream_blocks=True)),
    Case("runs_unknown_block", "POST", "/api/runs", body=run_with(block_uuid="ml/no/such/block")),
    Case("runs_unknown_user_ids", "POST", "/api/runs", body=run_with(variables={"user_ids": [1, 424242]})),
    Case("runs_bad_variables", "POST", "/api/runs", body=run_with(variables={"user_ids": "1,5,100"})),
    Case("runs_missing_block", "POST", "/api/runs", body=_json({"run": {"pipeline_uuid": "ml_inference_online"}})),
    Case("docs_openapi_document", "GET", "/openapi.json", auth="none"),
    Case("docs_openapi_document_named_stage", "GET", "/openapi.json", auth="none", stage="prod"),
    Case("docs_page", "GET", "/docs", auth="none"),
    Case("docs_swagger_ui_asset", "GET", "/docs/{asset}", {"asset": "swagger-ui.css"}, auth="none"),
    Case("docs_playground_page", "GET", "/playground", auth="none"),
    Case("inference_server_metadata", "GET", "/v2"),
    Case("inference_server_live", "GET", "/v2/health/live", auth="none"),
    Case("inference_server_ready", "GET", "/v2/health/ready", auth="none"),
    Case("inference_model_metadata", "GET", "/v2/models/{name}", {"name": "user_churn"}),
    Case("inference_model_version_metadata", "GET", "/v2/models/{name}/versions/{version}",
         {"name": "drive_stats_a", "version": "1.0"}),
    Case("inference_model_unknown_version", "GET", "/v2/models/{name}/versions/{version}",
         {"name": "drive_stats_a", "version": "9.9"}),
    Case("inference_model_ready", "GET", "/v2/models/{name}/ready", {"name": "drive_stats_b"}),
    Case("inference_model_version_ready", "GET", "/v2/models/{name}/versions/{version}/ready",
         {"name": "digits", "version": "1"}),
    Case("inference_infer_json", "POST", INFER, {"name": "user_churn"}, _json(CHURN_ROWS)),
    Case("inference_infer_version", "POST", "/v2/models/{name}/versions/{version}/infer",
         {"name": "drive_stats_b", "version": "1.0"},
         _json({"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": WINDOW}]})),
    Case("inference_infer_binary", "POST", INFER, {"name": "user_churn"},
         binary=BINARY_REQUEST[0], headers={"inference-header-content-length": str(BINARY_REQUEST[1])}),
    Case("inference_infer_text", "POST", INFER, {"name": "all-minilm-l6-v2"},
         _json({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                            "data": ["A man is eating food.", "The new movie is awesome."]}]})),
    Case("inference_infer_unknown_model", "POST", INFER, {"name": "no_such_model"}, _json(CHURN_ROWS)),
    Case("inference_infer_wrong_datatype", "POST", INFER, {"name": "user_churn"},
         _json({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP64", "data": [1.5, 30, 2, 4]}]})),
    Case("inference_infer_without_token", "POST", INFER, {"name": "user_churn"}, _json(CHURN_ROWS), auth="none"),
    Case("embeddings_create", "POST", EMBEDDINGS, body=_json({"model": "all-minilm-l6-v2", "input": TEXTS})),
    Case("embeddings_create_base64", "POST", EMBEDDINGS,
         body=_json({"model": "all-minilm-l6-v2", "input": TEXTS, "encoding_format": "base64", "user": "user-42"})),
    Case("embeddings_non_text_model", "POST", EMBEDDINGS, body=_json({"model": "user_churn", "input": TEXTS})),
    Case("embeddings_unknown_model", "POST", EMBEDDINGS, body=_json({"model": "no_such_model", "input": TEXTS})),
    Case("embeddings_token_ids", "POST", EMBEDDINGS, body=_json({"model": "all-minilm-l6-v2", "input": [[32, 893]]})),
    Case("embeddings_without_token", "POST", EMBEDDINGS, body=_json({"model": "all-minilm-l6-v2", "input": TEXTS}),
         auth="none"),
    Case("embeddings_list_models", "GET", "/openai/v1/models"),
    Case("embeddings_retrieve_model", "GET", "/openai/v1/models/{model}", {"model": "all-minilm-l6-v2"}),
    Case("authorizer_valid_token", "GET", "/v1/models", auth=f"Bearer {EVENT_TOKEN}", authorizer=True),
    Case("authorizer_wrong_token", "GET", "/v1/models", auth="Bearer wrong-token-0123456789abcdef", authorizer=True),
    Case("authorizer_malformed_header", "GET", "/v1/models", auth=f"Token {EVENT_TOKEN}", authorizer=True),
]


def sam_command() -> str:
    """The SAM CLI installed beside this Python (the project venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "sam"
    return str(beside) if beside.exists() else "sam"


def sam_event(method: str, path: str, body: str) -> dict[str, Any]:
    """What `sam local generate-event` prints for an HTTP API request."""
    command = [sam_command(), "local", "generate-event", "apigateway", "http-api-proxy"]
    command += ["--method", method, "--path", path.lstrip("/"), "--body", body]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def build_event(case: Case) -> dict[str, Any]:
    event = sam_event(case.method, case.path, case.body or "")
    route_key = f"{case.method} {case.route}"
    event.update(
        routeKey=route_key,
        rawPath=case.path,
        rawQueryString=urllib.parse.urlencode(case.query),
        headers={
            "accept": "application/json",
            "content-length": str(len((case.body or "").encode())),
            "content-type": "application/json",
            "host": "api-id.execute-api.us-east-1.amazonaws.com",
            "user-agent": "curl/8.5.0",
        },
        isBase64Encoded=False,
        body=case.body,
    )
    event["headers"].update(case.headers)
    if case.binary is not None:
        event["headers"].update({"content-type": "application/octet-stream", "content-length": str(len(case.binary))})
        event.update(isBase64Encoded=True, body=base64.b64encode(case.binary).decode())
    for optional in ("cookies", "queryStringParameters", "stageVariables"):
        event.pop(optional, None)
    if case.query:
        event["queryStringParameters"] = dict(case.query)
    if case.path_params:
        event["pathParameters"] = dict(case.path_params)
    else:
        event.pop("pathParameters", None)
    if case.body is None and case.binary is None:
        event.pop("body")
        del event["headers"]["content-type"]
        del event["headers"]["content-length"]
    context = event["requestContext"]
    context.pop("authentication", None)
    context.pop("authorizer", None)
    context["routeKey"] = route_key
    context["http"].update(method=case.method, path=case.path, sourceIp="203.0.113.10", userAgent="curl/8.5.0")
    context["requestId"] = f"{case.name}-0001"
    context["stage"] = case.stage
    header = f"Bearer {EVENT_TOKEN}" if case.auth == "gateway" else None if case.auth == "none" else case.auth
    if header is not None:
        event["headers"]["authorization"] = header
    if case.auth == "gateway":
        context["authorizer"] = {"lambda": {"principal": f"token:{EVENT_TOKEN_HASH[:8]}"}}
    if case.authorizer:
        return authorizer_event(event, header)
    return event


def authorizer_event(request: dict[str, Any], header: str | None) -> dict[str, Any]:
    """The payload 2.0 event API Gateway sends a REQUEST authorizer for that request."""
    context = request["requestContext"]
    method, path = context["http"]["method"], context["http"]["path"]
    event = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": f"arn:aws:execute-api:us-east-1:{context['accountId']}:{context['apiId']}/{context['stage']}/{method}{path}",
        "identitySource": [header] if header else [],
        "routeKey": request["routeKey"],
        "rawPath": request["rawPath"],
        "rawQueryString": request["rawQueryString"],
        "headers": request["headers"],
        "requestContext": context,
    }
    return event


def bulk_events() -> dict[str, dict[str, Any]]:
    """The bulk state machine's task payloads: the first step's (`{"step": "validate", "job"}`)
    and Distributed Map's batches (`{"Items": [...], "BatchInput": {"job"}}`, as the state machine's
    ItemSelector wraps CSV or JSON Lines rows, or as listObjectsV2 lists a shard). They read the
    objects scripts/bulk_datasets.put_event_data writes."""
    from bulk_datasets import EVENT_BUCKET, rows

    job = {"job_id": "events-churn", "model": "user_churn", "input": {"bucket": EVENT_BUCKET, "key": "datasets/users.csv"},
           "output": {"bucket": EVENT_BUCKET, "prefix": "bulk-results/"}, "id_column": "user_id"}
    csv_rows = [{k: str(v) for k, v in r.items()} for r in rows("user_churn", 4)]  # the CSV reader's items: text
    csv_rows[2]["tenure_months"] = "unknown"
    windows = {**job, "job_id": "events-windows", "model": "drive_stats_a", "id_column": "id",
               "input": {"bucket": EVENT_BUCKET, "key": "datasets/windows.jsonl"}}
    shards = {**job, "job_id": "events-shards", "input": {"bucket": EVENT_BUCKET, "prefix": "datasets/shards/"}}
    listed = {"Key": "datasets/shards/part-00000.csv", "Size": 200, "Etag": '"0"', "LastModified": "2026-12-04T00:00:00Z",
              "StorageClass": "STANDARD"}
    return {
        "bulk_job_validate": {"step": "validate", "job": job},
        "bulk_job_validate_unknown_model": {"step": "validate", "job": {**job, "model": "no_such_model"}},
        "bulk_job_validate_missing_input": {"step": "validate", "job": {
            **job, "input": {"bucket": EVENT_BUCKET, "key": "datasets/missing.csv"}}},
        "bulk_job_validate_bad_column": {"step": "validate", "job": {
            **job, "columns": {"features": ["sessions", "days", "tenure", "tickets"]}}},
        "bulk_worker_csv_rows": {"Items": [{"index": 100 + i, "row": r} for i, r in enumerate(csv_rows)],
                                 "BatchInput": {"job": job}},
        "bulk_worker_jsonl_rows": {"Items": [{"index": i, "row": r} for i, r in enumerate(rows("drive_stats_a", 2))],
                                   "BatchInput": {"job": windows}},
        "bulk_worker_shard": {"Items": [listed], "BatchInput": {"job": shards}},
        "bulk_worker_malformed": {"Items": "datasets/users.csv", "BatchInput": {"job": job}},
    }


def main() -> int:
    EVENTS_DIR.mkdir(exist_ok=True)
    events = {case.name: build_event(case) for case in CASES} | bulk_events()
    for name, event in events.items():
        (EVENTS_DIR / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
