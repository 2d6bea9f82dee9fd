"""Property-based fuzzing (hypothesis) of the decoders a caller reaches from outside: v2 JSON,
the v2 binary extension, raw and gzip bodies, the text route, the batch route and OpenAI's
embeddings route.

Whatever bytes or JSON arrive, the answer is a 2xx or a 4xx in its protocol's error shape, never a
5xx or a traceback, and it comes within a bounded time (hypothesis' deadline). The example budget is
fixed and the generation derandomized, so `make test` runs the same examples every time."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import http_event, lambda_context

FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=timedelta(seconds=10),  # the limits bound every accepted request well below this
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODELS = ["user_churn", "drive_stats_a", "digits", "drive_stats_mean", "all-minilm-l6-v2", "no-such-model"]
TEXT_MODEL = "all-minilm-l6-v2"

# Every character, lone surrogates included: JSON escapes them (\ud800), UTF-8 cannot carry them.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=40,
)
dimensions = st.integers(min_value=-2, max_value=8) | st.integers() | st.sampled_from([2**31, 2**31 + 1, 10**40])
datatypes = st.sampled_from(["FP32", "FP64", "FP16", "INT64", "INT32", "INT8", "UINT8", "BOOL", "BYTES", "fp32",
                             "NOPE"]) | any_text
numbers = st.integers(min_value=-300, max_value=300) | st.floats() | st.booleans()
data = st.lists(numbers, max_size=80) | st.lists(any_text, max_size=6) | json_values
parameters = st.dictionaries(st.sampled_from(["binary_data_size", "binary_data", "content_type", "x"]),
                             json_values | st.integers(), max_size=2)
tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(["X", "window", "pixels", "min_confidence", "text", "?"]),
     "shape": st.lists(dimensions, max_size=4) | json_values,
     "datatype": datatypes},
    optional={"data": data, "parameters": parameters},
)
outputs = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["label", "probabilities", "embedding", "y", ""])},
                                         optional={"parameters": parameters}), max_size=3)
infer_requests = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=3) | json_values},
    optional={"outputs": outputs | json_values, "id": json_values, "parameters": parameters | json_values},
)


def answer(function: Any, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Call the function as API Gateway does (a binary body base64-encoded); check the answer is
    never a 5xx and always JSON without a traceback."""
    event = http_event("POST", path, None, headers)
    event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    result = function.handler(event, lambda_context())
    assert result["statusCode"] < 500, result["body"]
    assert "Traceback" not in result["body"], result["body"]
    return result["statusCode"], json.loads(result["body"])


def v2_shape(status: int, body: dict[str, Any]) -> None:
    if status >= 400:
        assert set(body) == {"error"} and isinstance(body["error"], str), body


def openai_shape(status: int, body: dict[str, Any]) -> None:
    if status >= 400:
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"], body


def v1_shape(status: int, body: dict[str, Any]) -> None:
    if status >= 400:
        assert body["status"] != "Success" and isinstance(body["error_message"], str), body


@given(model=st.sampled_from(MODELS), request=infer_requests | json_values)
@FUZZ
def test_any_v2_json_request_gets_a_2xx_or_a_4xx(text_s3: Any, inference: Any, model: str, request: Any) -> None:
    body = json.dumps(request).encode()
    v2_shape(*answer(inference, f"/v2/models/{model}/infer", body, {"content-type": "application/json"}))


@given(model=st.sampled_from(MODELS), request=infer_requests, tail=st.binary(max_size=512),
       length=st.sampled_from(["exact", "random", "text"]), declared=st.integers() | any_text)
@FUZZ
def test_any_v2_binary_request_gets_a_2xx_or_a_4xx(text_s3: Any, inference: Any, model: str, request: Any,
                                                  tail: bytes, length: str, declared: Any) -> None:
    header = json.dumps(request).encode()
    value = {"exact": str(len(header)), "random": str(declared), "text": str(declared)}[length]
    headers = {"content-type": "application/octet-stream",
               "inference-header-content-length": value.encode("utf-8", "surrogatepass").decode("latin-1")}
    v2_shape(*answer(inference, f"/v2/models/{model}/infer", header + tail, headers))


raw_bodies = st.binary(max_size=2048) | json_values.map(lambda v: json.dumps(v).encode())


@given(model=st.sampled_from(MODELS), body=raw_bodies, packed=st.booleans(),
       content_type=st.sampled_from(["application/json", "application/octet-stream", "text/plain", ""]),
       route=st.sampled_from(["v1", "v2"]))
@FUZZ
def test_any_bytes_plain_or_gzip_get_a_2xx_or_a_4xx(text_s3: Any, inference: Any, models: Any, model: str,
                                                    body: bytes, packed: bool, content_type: str, route: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    if packed:
        body = gzip.compress(body) if body[:1] != b"\x00" else body  # a few bodies claim gzip and are not
        headers["content-encoding"] = "gzip"
    if route == "v2":
        v2_shape(*answer(inference, f"/v2/models/{model}/infer", body, headers))
    else:
        v1_shape(*answer(models, f"/v1/models/{model}/predict", body, headers))


@given(texts=st.lists(any_text, max_size=8) | json_values, raw=st.booleans())
@FUZZ
def test_any_texts_on_the_text_route_get_a_2xx_or_a_4xx(text_s3: Any, models: Any, texts: Any, raw: bool) -> None:
    """Texts sent as JSON escapes, or as their raw UTF-8 bytes (a surrogate then becomes bytes
    that are not UTF-8)."""
    body = json.dumps({"texts": texts}, ensure_ascii=not raw).encode("utf-8", "surrogatepass")
    status, answer_body = answer(models, f"/v1/models/{TEXT_MODEL}/predict", body,
                                 {"content-type": "application/json"})
    v1_shape(status, answer_body)
    if status == 200:
        vectors = answer_body["embeddings"]
        assert len(vectors) == len(texts) and all(len(v) == 384 for v in vectors)


@given(texts=st.lists(any_text, min_size=0, max_size=8), shape=st.lists(dimensions, max_size=2))
@FUZZ
def test_any_v2_bytes_tensor_of_texts_gets_a_2xx_or_a_4xx(text_s3: Any, inference: Any, texts: list[str],
                                                         shape: list[int]) -> None:
    request = {"inputs": [{"name": "text", "shape": shape or [len(texts)], "datatype": "BYTES", "data": texts}]}
    v2_shape(*answer(inference, f"/v2/models/{TEXT_MODEL}/infer", json.dumps(request).encode(),
                     {"content-type": "application/json"}))


batch_items = st.fixed_dictionaries(
    {"model_name": st.sampled_from(MODELS) | json_values},
    optional={"texts": st.lists(any_text, max_size=4) | json_values,
              "inputs": st.lists(st.lists(numbers, max_size=6), max_size=4) | json_values,
              "ids": st.lists(st.integers(), max_size=4) | json_values,
              "probability": json_values},
)


@given(items=st.lists(batch_items, max_size=5) | json_values)
@FUZZ
def test_any_batch_gets_a_2xx_or_a_4xx_with_a_status_per_item(text_s3: Any, batch: Any, items: Any) -> None:
    status, body = answer(batch, "/v1/predict", json.dumps({"predictions": items}).encode(),
                          {"content-type": "application/json"})
    v1_shape(status, body)
    if status == 200:
        assert len(body["predictions"]) == len(items)
        assert all(item["status"] in ("Success", "BadRequest", "NotFound") for item in body["predictions"]), body


embedding_requests = st.fixed_dictionaries(
    {"input": any_text | st.lists(any_text, max_size=6) | st.lists(st.integers(), max_size=4) | json_values},
    optional={"model": st.sampled_from([*MODELS, "all-minilm-l6-v2-fp32", f"{TEXT_MODEL}:1", f"{TEXT_MODEL}:",
                                        ":1", "a" * 200]) | any_text | json_values,
              "encoding_format": st.sampled_from(["float", "base64"]) | json_values,
              "dimensions": dimensions | json_values, "user": any_text | json_values, "truncate": json_values},
)


@given(request=embedding_requests | json_values, raw=st.booleans(), packed=st.booleans())
@FUZZ
def test_any_embeddings_request_gets_a_2xx_or_a_4xx_in_openais_shape(text_s3: Any, embeddings: Any, request: Any,
                                                                     raw: bool, packed: bool) -> None:
    """JSON escapes or raw UTF-8 (a surrogate then becomes bytes that are not UTF-8), plain or gzip."""
    body = json.dumps(request, ensure_ascii=not raw).encode("utf-8", "surrogatepass")
    headers = {"content-type": "application/json"}
    if packed:
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    status, answer_body = answer(embeddings, "/openai/v1/embeddings", body, headers)
    openai_shape(status, answer_body)
    if status == 200:
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        assert [d["index"] for d in answer_body["data"]] == list(range(len(texts)))
