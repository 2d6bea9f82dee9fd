"""Hostile input found from outside (issue: "Hostile input on the v2 and text routes"): each a
caller's mistake that got a 5xx or leaked the server's internals, now a 4xx in its protocol's
error shape. Through the functions' real handlers, as API Gateway invokes them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from support import http_event, lambda_context

FP32_WINDOW = {"name": "X", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}
CHURN_ROWS = {"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [1.0, 60.0, 2.0, 5.0, 12.0, 0.0, 60.0, 0.0]}


def call(function: Any, path: str, body: str | bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    event = http_event("POST", path, body if isinstance(body, str) else None, headers)
    if isinstance(body, bytes):
        event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    result = function.handler(event, lambda_context())
    assert "Traceback" not in result["body"]
    return result["statusCode"], json.loads(result["body"])


def infer(function: Any, model: str, request: dict[str, Any], headers: dict[str, str] | None = None,
          tail: bytes = b"") -> tuple[int, Any]:
    body = json.dumps(request).encode() + tail
    if not tail and headers is None:
        return call(function, f"/v2/models/{model}/infer", body.decode())
    return call(function, f"/v2/models/{model}/infer", body,
                {"content-type": "application/octet-stream", **(headers or {})})


@pytest.mark.parametrize("length", ["²", "١٢", "0" * 5000 + "1", "9" * 5000, "+12", " 12", "12.0", "-1", ""])
def test_a_header_length_that_is_not_ascii_digits_within_the_payload_is_a_400(
    s3: Any, inference: Any, length: str
) -> None:
    status, body = infer(inference, "drive_stats_a", {"inputs": [FP32_WINDOW]},
                         {"inference-header-content-length": length}, tail=b"\x00")
    assert status == 400 and set(body) == {"error"}, body
    assert "inference-header-content-length must be the JSON part's length" in body["error"]


@pytest.mark.parametrize("dimension", [10**4300 - 1, 2**31 + 1, 2**63, -1])
def test_a_shape_dimension_out_of_bounds_is_a_400_that_names_the_bound(
    s3: Any, inference: Any, dimension: int
) -> None:
    tensor = {**FP32_WINDOW, "shape": [dimension, 4], "data": [0.0] * 4}
    status, body = infer(inference, "user_churn", {"inputs": [tensor]})
    assert status == 400 and set(body) == {"error"}, body
    assert "inputs.0.shape.0" in body["error"] and len(body["error"]) < 500


def test_an_empty_list_of_outputs_is_a_400(s3: Any, inference: Any) -> None:
    """onnxruntime reads an empty list as "every output"; a strict zip then raised (500)."""
    status, body = infer(inference, "user_churn", {"inputs": [CHURN_ROWS], "outputs": []})
    assert status == 400 and "outputs: List should have at least 1 item" in body["error"], body


@pytest.mark.parametrize("texts", ['["\\ud800"]', '["ok", "a\\udfffb"]'])
def test_a_lone_surrogate_in_a_text_is_a_400_on_every_route(
    text_s3: Any, models: Any, batch: Any, inference: Any, texts: str
) -> None:
    status, body = call(models, "/v1/models/all-minilm-l6-v2/predict", f'{{"texts": {texts}}}')
    assert status == 400 and "lone surrogate" in body["error_message"], body
    status, body = call(batch, "/v1/predict",
                        f'{{"predictions": [{{"model_name": "all-minilm-l6-v2", "texts": {texts}}}]}}')
    (item,) = body["predictions"]
    assert status == 200 and item["status"] == "BadRequest" and "lone surrogate" in item["error_message"], item
    count = len(json.loads(texts))
    status, body = call(inference, "/v2/models/all-minilm-l6-v2/infer", f'{{"inputs": [{{"name": "text", '
                        f'"shape": [{count}], "datatype": "BYTES", "data": {texts}}}]}}')
    assert status == 400 and set(body) == {"error"}, body


def test_raw_bytes_of_a_surrogate_in_the_body_are_a_400(text_s3: Any, models: Any) -> None:
    status, body = call(models, "/v1/models/all-minilm-l6-v2/predict", b'{"texts": ["a\xed\xa0\x80b"]}')
    assert status == 400 and body["status"] == "BadRequest", body


def test_onnxruntime_refusals_keep_no_build_path_or_cpp_name(s3: Any, inference: Any) -> None:
    """digits with 2 images and 3 thresholds: the message said element_wise_ops.h:563 void onnxruntime::..."""
    request = {"inputs": [{"name": "pixels", "shape": [2, 8, 8], "datatype": "UINT8", "data": [0] * 128},
                          {"name": "min_confidence", "shape": [3], "datatype": "FP32", "data": [0.5] * 3}]}
    status, body = infer(inference, "digits", request)
    assert status == 400, body
    message = body["error"]
    assert "could not run on these inputs" in message and "broadcast" in message
    for internal in ("onnxruntime_src", ".h:", "::", "void ", "was false", "ONNXRuntimeError"):
        assert internal not in message, message


@pytest.mark.parametrize(("datatype", "data"), [("FP32", [True, 0.5, 0.5, 0.5]), ("UINT8", [True, 1, 1, 1]),
                                                ("INT64", [1, 2, False, 4]), ("FP32", [[0.5, 0.5], [0.5, True]])])
def test_booleans_among_numbers_are_refused_like_all_boolean_data(
    s3: Any, inference: Any, datatype: str, data: list[Any]
) -> None:
    tensor = {"name": "X", "shape": [1, 4], "datatype": datatype, "data": data}
    status, body = infer(inference, "user_churn", {"inputs": [tensor]})
    assert status == 400, body
    if datatype == "FP32":
        assert f"{datatype} data must be numbers, not true or false" in body["error"]


@pytest.mark.parametrize("order", ["valid first", "wrong first"])
def test_two_authorization_headers_are_refused_whichever_comes_first(s3: Any, order: str) -> None:
    """Under make run the first header decided: a valid token then a wrong one got 200."""
    from generate_events import EVENT_TOKEN
    from local_api import LocalApi, template_routes
    from starlette.testclient import TestClient

    headers = [("authorization", f"Bearer {EVENT_TOKEN}"), ("authorization", "Bearer wrong-token-0123456789abcdef")]
    if order == "wrong first":
        headers.reverse()
    with TestClient(LocalApi(template_routes())) as client:
        answer = client.get("/v1/models", headers=headers)
    assert answer.status_code == 401 and "Bearer" in answer.json()["error_message"], answer.text


def test_a_batch_s_texts_count_together_against_one_request_s_budget(text_s3: Any, batch: Any) -> None:
    """16 items of 64 texts took 83 s (beyond API Gateway's 29 s): refused before any work."""
    item = {"model_name": "all-minilm-l6-v2", "texts": ["a text"] * 64}
    status, body = call(batch, "/v1/predict", json.dumps({"predictions": [item] * 16}))
    assert status == 400 and "at most 64 texts in all" in body["error_message"], body
    status, body = call(batch, "/v1/predict", json.dumps({"predictions": [{**item, "texts": ["a"] * 32}] * 2}))
    assert status == 200 and [p["status"] for p in body["predictions"]] == ["Success", "Success"], body


def test_a_small_gzip_body_that_unpacks_beyond_the_payload_limit_is_a_413_at_once(s3: Any, inference: Any) -> None:
    """58 KB of gzip unpacking to 60 MB of JSON took 20 s and 2.2 GB before its 400 (bench/limits.py
    measures the refusal's time and memory)."""
    import gzip

    zeros = b'{"inputs": [{"name": "X", "shape": [7500000, 4], "datatype": "FP32", "data": [' + b"0," * 30_000_000
    packed = gzip.compress(zeros + b"0]}]}", compresslevel=9)
    assert len(packed) < 100_000
    status, body = call(inference, "/v2/models/user_churn/infer", packed,
                        {"content-type": "application/json", "content-encoding": "gzip"})
    assert status == 413 and "Lambda's payload limit" in body["error"], body


def test_shapes_beyond_the_request_s_memory_are_a_413_before_any_value_is_read(s3: Any, inference: Any) -> None:
    tensor = {"name": "X", "shape": [7_500_000, 4], "datatype": "FP32", "data": [0.0] * 4}
    status, body = infer(inference, "user_churn", {"inputs": [tensor]})
    assert status == 413 and "one request may hold at most" in body["error"], body


def test_an_answer_that_cannot_fit_lambda_s_payload_is_refused_before_the_model_runs(s3: Any, inference: Any) -> None:
    rows = 1_000_000  # 4 M values in binary (16 MB): within the request's budget, its answer is not
    request = {"inputs": [{"name": "X", "shape": [rows, 4], "datatype": "FP32", "parameters": {"binary_data_size":
                                                                                                 rows * 16}}]}
    status, body = infer(inference, "user_churn", request, {"inference-header-content-length": "0"}, tail=b"")
    assert status in (400, 413), body


def test_a_large_body_is_bounded_by_the_shapes_it_declares_before_it_is_parsed(
    s3: Any, inference: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """786,000 rows of user_churn in 6 MB of JSON: its answer (a label and two probabilities a row)
    cannot fit Lambda's payload, which its shape says before its 3 M values are parsed."""
    from prediction_service.protocols.v2 import service

    parsed: list[int] = []
    real = service.parse
    monkeypatch.setattr(service, "parse", lambda body, length: parsed.append(len(body)) or real(body, length))
    rows = 786_000
    body = '{"inputs": [{"name": "X", "shape": [%d, 4], "datatype": "FP32", "data": [%s]}]}' % (
        rows, ",".join(["0"] * rows * 4))
    status, answer = call(inference, "/v2/models/user_churn/infer", body)
    assert status == 413 and "the answer would take at least" in answer["error"], answer
    assert parsed == [], "refused before parsing"
    labels_only = body.replace('"inputs"', '"outputs": [{"name": "label"}], "inputs"', 1)
    status, answer = call(inference, "/v2/models/user_churn/infer", labels_only)
    assert status == 200 and answer["outputs"][0]["shape"] == [rows], "the labels alone fit: not refused"
