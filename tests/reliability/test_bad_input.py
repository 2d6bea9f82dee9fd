"""The bad-input catalogue: every malformed request gets its documented 4xx and a clear message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import http_event, lambda_context, load_function

WINDOW = json.dumps([0.5] * 30)
ROW = "[1.0, 2.0, 3.0, 4.0]"
CHURN = "/v1/models/user_churn/predict"


@pytest.fixture(scope="module")
def functions() -> dict[str, Any]:
    return {name: load_function(name) for name in ("models", "batch", "runs")}


def call(functions: dict[str, Any], function: str, method: str, path: str, body: str | None = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    event = http_event(method, path, body, {"content-type": content_type})
    result = functions[function].handler(event, lambda_context())
    assert result["headers"]["content-type"] == "application/json"
    assert "Traceback" not in result["body"]
    return result["statusCode"], json.loads(result["body"])


def run(**changes: Any) -> str:
    spec = {"pipeline_uuid": "ml_inference_online", "block_uuid": "ml/inference/online/predictions",
            "variables": {"user_ids": [1]}}
    spec.update(changes)
    return json.dumps({"run": spec})


CATALOGUE = [
    # (id, function, method, path, body, content type, status, words in the error)
    ("array body", "models", "POST", CHURN, "[1, 2]", "application/json", 400, "dictionary"),
    ("string body", "models", "POST", CHURN, '"ids"', "application/json", 400, "dictionary"),
    ("null body", "models", "POST", CHURN, "null", "application/json", 400, "body"),
    ("truncated JSON", "models", "POST", CHURN, '{"ids": [1', "application/json", 400, "not valid JSON"),
    ("inputs not a list", "models", "POST", CHURN, '{"inputs": "1,2,3,4"}', "application/json", 400, "inputs"),
    ("string number", "models", "POST", CHURN, '{"inputs": [["1", 2, 3, 4]]}', "application/json", 400, "inputs.0.0"),
    ("boolean number", "models", "POST", CHURN, '{"inputs": [[true, 2, 3, 4]]}', "application/json", 400, "inputs.0.0"),
    ("null number", "models", "POST", CHURN, '{"inputs": [[null, 2, 3, 4]]}', "application/json", 400, "inputs.0.0"),
    ("fractional id", "models", "POST", CHURN, '{"ids": [1.5]}', "application/json", 400, "ids.0"),
    ("string id", "models", "POST", CHURN, '{"ids": ["1"]}', "application/json", 400, "ids.0"),
    ("string probability", "models", "POST", CHURN, '{"ids": [1], "probability": "yes"}', "application/json", 400, "probability"),
    ("unknown field", "models", "POST", CHURN, '{"input": [[1, 2, 3, 4]]}', "application/json", 400, "input"),
    ("inputs and ids", "models", "POST", CHURN, f'{{"inputs": [{ROW}], "ids": [1]}}', "application/json", 400, "not several"),
    ("no rows", "models", "POST", CHURN, '{"inputs": []}', "application/json", 400, "inputs"),
    ("empty row", "models", "POST", CHURN, '{"inputs": [[]]}', "application/json", 400, "inputs.0: List should have at least 1 item"),
    ("short row", "models", "POST", CHURN, '{"inputs": [[1, 2]]}', "application/json", 400, "4 values, got 2"),
    ("ragged rows", "models", "POST", CHURN, f'{{"inputs": [{ROW}, [1]]}}', "application/json", 400, "same length"),
    ("too many rows", "models", "POST", CHURN, json.dumps({"inputs": [[1, 2, 3, 4]] * 1001}), "application/json", 400, "1000"),
    ("NaN", "models", "POST", CHURN, '{"inputs": [[NaN, 2, 3, 4]]}', "application/json", 400, "finite"),
    ("Infinity", "models", "POST", CHURN, '{"inputs": [[Infinity, 2, 3, 4]]}', "application/json", 400, "finite"),
    ("-Infinity", "models", "POST", CHURN, '{"inputs": [[-Infinity, 2, 3, 4]]}', "application/json", 400, "finite"),
    ("overflowing float", "models", "POST", CHURN, '{"inputs": [[1e400, 2, 3, 4]]}', "application/json", 400, "finite"),
    ("beyond float32", "models", "POST", CHURN, '{"inputs": [[1e39, 2, 3, 4]]}', "application/json", 400, "float32"),
    ("huge id", "models", "POST", CHURN, '{"ids": [123456789012345678901234567890]}', "application/json", 400, "unknown id"),
    ("negative id", "models", "POST", CHURN, '{"ids": [-1]}', "application/json", 400, "unknown id"),
    ("forecast ids", "models", "POST", "/v1/models/drive_stats_a/predict", '{"ids": [1]}', "application/json", 400, "inputs"),
    ("forecast two windows", "models", "POST", "/v1/models/drive_stats_a/predict", f'{{"inputs": [{WINDOW}, {WINDOW}]}}', "application/json", 400, "one window"),
    ("text/plain", "models", "POST", CHURN, '{"ids": [1]}', "text/plain", 415, "JSON"),
    ("xml", "models", "POST", CHURN, "<ids>1</ids>", "application/xml", 415, "JSON"),
    ("multipart", "models", "POST", CHURN, "--x--", "multipart/form-data; boundary=x", 415, "JSON"),
    ("body over 1 MiB", "models", "POST", CHURN, '{"inputs": [[' + "1," * 600_000 + "1]]}", "application/json", 413, "larger than"),
    ("empty batch", "batch", "POST", "/v1/predict", '{"predictions": []}', "application/json", 400, "predictions"),
    ("batch of 17", "batch", "POST", "/v1/predict", json.dumps({"predictions": [{"model_name": "drive_stats_a"}] * 17}), "application/json", 400, "16"),
    ("batch not a list", "batch", "POST", "/v1/predict", '{"predictions": {"model_name": "drive_stats_a"}}', "application/json", 400, "predictions"),
    ("batch items not objects", "batch", "POST", "/v1/predict", '{"predictions": ["drive_stats_a"]}', "application/json", 400, "predictions.0"),
    ("batch item without model_name", "batch", "POST", "/v1/predict", '{"predictions": [{"model_name": "drive_stats_a"}, {"ids": [1]}]}', "application/json", 400, "predictions.1.model_name"),
    ("batch item with a wrong field", "batch", "POST", "/v1/predict", '{"predictions": [{"model": "drive_stats_a"}]}', "application/json", 400, "predictions.0"),
    ("batch unknown top-level field", "batch", "POST", "/v1/predict", '{"predictions": [{"model_name": "drive_stats_a"}], "timeout": 5}', "application/json", 400, "timeout"),
    ("batch missing", "batch", "POST", "/v1/predict", "{}", "application/json", 400, "predictions"),
    ("run missing", "runs", "POST", "/api/runs", "{}", "application/json", 400, "run"),
    ("run null", "runs", "POST", "/api/runs", '{"run": null}', "application/json", 400, "run"),
    ("empty pipeline", "runs", "POST", "/api/runs", run(pipeline_uuid=""), "application/json", 400, "pipeline_uuid"),
    ("string user_ids", "runs", "POST", "/api/runs", run(variables={"user_ids": "1,5"}), "application/json", 400, "user_ids"),
    ("too many user_ids", "runs", "POST", "/api/runs", run(variables={"user_ids": list(range(1001))}), "application/json", 400, "user_ids"),
    ("string record", "runs", "POST", "/api/runs", run(record="yes"), "application/json", 400, "record"),
    ("unknown run field", "runs", "POST", "/api/runs", run(priority=1), "application/json", 400, "priority"),
]


@pytest.mark.parametrize(("function", "method", "path", "body", "content_type", "status", "words"),
                         [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_bad_input_gets_a_clear_4xx(s3: Any, functions: dict[str, Any], function: str, method: str, path: str,
                                    body: str, content_type: str, status: int, words: str) -> None:
    code, answer = call(functions, function, method, path, body, content_type)
    assert code == status, answer
    assert answer["status"] == "BadRequest"
    assert words in answer["error_message"], answer["error_message"]


NAMES = ["..", "%2e%2e", "manifest.yaml", "drive_stats_a.onnx", "models", "a" * 300, "drive_stats_a%00",
         "DRIVE_STATS_A", " drive_stats_a", "drive_stats_a;rm", "%252e%252e"]
PATHS = ["/v1/models/a/b/predict", "/v1/models/../../predict", "/v1/models/..%2F..%2Fsecrets/predict",
         "/v1/models/%2e%2e%2fmanifest.yaml/predict", "/v1/models//predict"]


def test_names_never_reach_s3_outside_the_manifest(s3: Any, functions: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from prediction_service.catalog.manifest import Manifest
    from prediction_service.storage.s3 import S3Store

    fetched: list[str] = []
    real = S3Store.fetch

    def recording(self: S3Store, key: str, if_none_match: str | None = None) -> Any:
        fetched.append(key)
        return real(self, key, if_none_match)

    monkeypatch.setattr(S3Store, "fetch", recording)
    for name in NAMES:
        for method in ("GET", "POST"):
            code, answer = call(functions, "models", method, f"/v1/models/{name}/predict", '{"ids": [1]}')
            assert code == 404 and "not in the manifest" in answer["error_message"], (name, answer)
    for path in PATHS:
        code, answer = call(functions, "models", "GET", path)
        assert code == 404, (path, answer)
    manifest = Manifest.parse(s3.get_object(Bucket="test-models", Key="models/manifest.yaml")["Body"].read())
    allowed = {"models/manifest.yaml"} | {f"models/{ref.file}" for m in manifest.models for ref in m.files()}
    assert fetched and set(fetched) <= allowed
