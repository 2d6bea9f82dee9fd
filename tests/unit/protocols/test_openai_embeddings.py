"""OpenAI's embeddings API over the data plane, through the embeddings function's Lambda
handler: the same vectors as /v1's text route in both encodings, the model list, versions and
routing keys, and every refusal in OpenAI's error shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from support import BUCKET, http_event, lambda_context, load_function

INT8, FP32 = "all-minilm-l6-v2", "all-minilm-l6-v2-fp32"
FOOD, BREAD, MOVIE = "A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."
LONG = "word " * 400  # more than 256 word pieces
MANIFEST = "models/manifest.yaml"  # where make publish-models puts it (as JSON)


def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, dict]:
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    result = load_function("embeddings").handler(http_event(method, path, raw, headers), lambda_context())
    return result["statusCode"], json.loads(result["body"]), result["headers"]


def embed(body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any, dict]:
    return call("POST", "/openai/v1/embeddings", body, headers)


def v1_embeddings(name: str, texts: list[str]) -> np.ndarray:
    event = http_event("POST", f"/v1/models/{name}/predict", json.dumps({"texts": texts}))
    result = load_function("models").handler(event, lambda_context())
    assert result["statusCode"] == 200, result["body"]
    return np.asarray(json.loads(result["body"])["embeddings"], dtype=np.float32)


def vectors_of(body: dict[str, Any]) -> np.ndarray:
    data = sorted(body["data"], key=lambda d: d["index"])
    if isinstance(data[0]["embedding"], str):
        return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data])
    return np.asarray([d["embedding"] for d in data], dtype=np.float32)


def assert_openai_error(status: int, body: Any, expected_status: int, *words: str, param: str | None = None,
                        code: str | None = None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error = body["error"]
    assert error["type"] == ("server_error" if expected_status >= 500 else "invalid_request_error")
    for word in words:
        assert word in error["message"], error
    assert "Traceback" not in json.dumps(body) and BUCKET not in json.dumps(body)
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error


@pytest.mark.parametrize("name", [INT8, FP32])
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_are_the_v1_routes_in_either_encoding(text_s3: Any, name: str, encoding: str) -> None:
    texts = [FOOD, BREAD, MOVIE]
    status, body, headers = embed({"model": name, "input": texts, "encoding_format": encoding})
    assert status == 200, body
    assert body["object"] == "list" and body["model"] == name
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1), ("embedding", 2)]
    assert all(isinstance(d["embedding"], str if encoding == "base64" else list) for d in body["data"])
    np.testing.assert_allclose(vectors_of(body), v1_embeddings(name, texts), rtol=0, atol=1e-6)
    assert body["usage"] == {"prompt_tokens": 8 + 11 + 8, "total_tokens": 8 + 11 + 8}
    assert headers["x-model-version"] == "1"


def test_a_single_string_is_one_input_and_float_is_the_default(text_s3: Any) -> None:
    status, body, _ = embed({"model": INT8, "input": FOOD})
    assert status == 200, body
    assert len(body["data"]) == 1 and len(body["data"][0]["embedding"]) == 384
    np.testing.assert_allclose(vectors_of(body), v1_embeddings(INT8, [FOOD]), atol=1e-6)


def test_the_model_list_holds_the_text_models_only(text_s3: Any) -> None:
    status, body, _ = call("GET", "/openai/v1/models")
    assert status == 200, body
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [INT8, FP32]
    assert all(m["object"] == "model" and m["owned_by"] and m["created"] == 0 for m in body["data"])
    status, model, _ = call("GET", f"/openai/v1/models/{FP32}")
    assert status == 200 and model == body["data"][1]


def test_a_non_text_model_is_a_400_naming_its_kind(text_s3: Any) -> None:
    status, body, _ = call("GET", "/openai/v1/models/user_churn")
    assert_openai_error(status, body, 400, "a classifier model", "/openai/v1/models", param="model",
                        code="model_not_supported")
    status, body, _ = call("GET", "/openai/v1/models/digits")
    assert_openai_error(status, body, 400, "an onnx model", param="model")
    status, body, _ = embed({"model": "drive_stats_a", "input": "x"})
    assert_openai_error(status, body, 400, "forecast", param="model", code="model_not_supported")


@pytest.mark.parametrize("model", ["no_such_model", f"{INT8}:9.9"])
def test_an_unknown_model_or_version_is_a_404(text_s3: Any, model: str) -> None:
    status, body, _ = embed({"model": model, "input": "x"})
    assert_openai_error(status, body, 404, code="model_not_found")
    status, body, _ = call("GET", f"/openai/v1/models/{model}")
    assert_openai_error(status, body, 404, code="model_not_found")


REFUSALS = [
    ({"model": INT8, "input": ""}, "empty string", "input"),
    ({"model": INT8, "input": []}, "empty array", "input"),
    ({"model": INT8, "input": [FOOD, ""]}, "input[1] is an empty string", "input"),
    ({"model": INT8, "input": [FOOD, 7]}, "input[1] must be a string", "input"),
    ({"model": INT8, "input": [1820, 374, 264]}, "token ids", "input"),
    ({"model": INT8, "input": [[1820, 374], [264]]}, "check_embedding_ctx_length=False", "input"),
    ({"model": INT8, "input": {"text": FOOD}}, "string or an array of strings", "input"),
    ({"model": INT8}, "Field required", "input"),
    ({"input": FOOD}, "Field required", "model"),
    ({"model": INT8, "input": FOOD, "encoding_format": "int8"}, "'float' or 'base64'", "encoding_format"),
    ({"model": INT8, "input": FOOD, "dimensions": 0}, "greater than 0", "dimensions"),
    ({"model": INT8, "input": FOOD, "dimensions": "384"}, "valid integer", "dimensions"),
    ({"model": INT8, "input": FOOD, "dimensions": 128}, "cannot be shortened", "dimensions"),
    ({"model": INT8, "input": FOOD, "stream": True}, "Extra inputs", "stream"),
    ({"model": "../secret", "input": FOOD}, "pattern", "model"),
    ({"model": INT8, "input": ["x" * 10_001]}, "input[0] has 10001 characters", "input[0]"),
    ({"model": INT8, "input": [FOOD, "\ud800"]}, "lone surrogate", "input[1]"),
    ({"model": INT8, "input": [FOOD, LONG]}, "input[1] has more than 256 tokens", "input[1]"),
]


@pytest.mark.parametrize(("body", "words", "param"), REFUSALS, ids=[r[1] for r in REFUSALS])
def test_each_refusal_is_a_400_in_openais_shape(text_s3: Any, body: dict[str, Any], words: str, param: str) -> None:
    status, answer, _ = embed(body)
    assert_openai_error(status, answer, 400, words, param=param)


@pytest.mark.parametrize("model", [f"{INT8}:", ":1", f"{INT8}:1:1", "x" * 5000])
def test_a_malformed_model_id_is_a_400_on_both_routes(text_s3: Any, model: str) -> None:
    status, body, _ = embed({"model": model, "input": "x"})
    assert_openai_error(status, body, 400, param="model")
    status, body, _ = call("GET", f"/openai/v1/models/{model}")
    assert_openai_error(status, body, 400, param="model")
    assert len(body["error"]["message"]) < 500


def test_a_caller_named_field_is_cut_short_in_the_refusal(text_s3: Any) -> None:
    status, body, _ = embed({"model": INT8, "input": "a", "k" * 500_000: 1})
    assert_openai_error(status, body, 400, "Extra inputs")
    assert len(json.dumps(body)) < 1000


def test_a_body_that_is_not_json_names_no_param(text_s3: Any) -> None:
    status, body, _ = call("POST", "/openai/v1/embeddings", '{"model": "x", "input": "a",}')
    assert_openai_error(status, body, 400, "not valid JSON")
    assert body["error"]["param"] is None


def test_an_input_too_long_names_its_index_and_the_limit_unless_truncation_is_asked(text_s3: Any) -> None:
    status, body, _ = embed({"model": INT8, "input": [FOOD, LONG]})
    assert_openai_error(status, body, 400, "input[1]", "256 tokens", '"truncate": true', code="context_length_exceeded")
    status, body, headers = embed({"model": INT8, "input": [FOOD, LONG, BREAD, LONG], "truncate": True})
    assert status == 200, body
    assert headers["x-truncated-inputs"] == "1,3"
    assert body["usage"]["prompt_tokens"] == 8 + 256 + 11 + 256
    np.testing.assert_allclose(vectors_of(body), v1_embeddings(INT8, [FOOD, LONG, BREAD, LONG]), atol=1e-6)


@pytest.mark.parametrize("count", [65, 2049, 100_000])
def test_more_texts_than_one_request_embeds_is_a_413_saying_how_to_split(text_s3: Any, count: int) -> None:
    status, body, _ = embed({"model": INT8, "input": ["x"] * count})
    assert_openai_error(status, body, 413, "at most 64", "chunk_size=64", "embed_batch_size=64", param="input",
                        code="too_many_inputs")


def test_the_64_texts_one_request_embeds_are_served(text_s3: Any) -> None:
    status, body, _ = embed({"model": INT8, "input": ["x"] * 64})
    assert status == 200 and len(body["data"]) == 64


def test_the_models_own_size_is_accepted_as_dimensions(text_s3: Any) -> None:
    status, body, _ = embed({"model": INT8, "input": FOOD, "dimensions": 384})
    assert status == 200 and len(body["data"][0]["embedding"]) == 384


def test_a_matryoshka_model_is_shortened_and_normalised_again(text_s3: Any) -> None:
    """A manifest entry that lists matryoshka_dimensions serves them: the first values, unit length."""
    from prediction_service.catalog.manifest import document
    from prediction_service.composition import components

    manifest = document(text_s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    for entry in manifest["models"]:
        if entry["name"] == INT8:
            entry["matryoshka_dimensions"] = [256, 128]
    text_s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=json.dumps(manifest).encode())
    components.cache_clear()
    full = v1_embeddings(INT8, [FOOD, BREAD])
    for encoding in ("float", "base64"):
        status, body, _ = embed({"model": INT8, "input": [FOOD, BREAD], "dimensions": 128, "encoding_format": encoding})
        assert status == 200, body
        short = vectors_of(body)
        expected = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
        assert short.shape == (2, 128)
        np.testing.assert_allclose(short, expected, atol=1e-6)
    status, body, _ = embed({"model": INT8, "input": FOOD, "dimensions": 200})
    assert_openai_error(status, body, 400, "384 dimensions or one of 256, 128", param="dimensions")


def test_user_is_the_routing_key_and_a_version_can_be_named(text_s3: Any) -> None:
    """Two versions weighed 50/50: each `user` stays on one (the same as X-Routing-Key's), and
    `name:version` reaches a version directly."""
    from prediction_service.catalog.manifest import document
    from prediction_service.composition import components

    manifest = document(text_s3.get_object(Bucket=BUCKET, Key=MANIFEST)["Body"].read())
    entry = next(e for e in manifest["models"] if e["name"] == INT8)
    manifest["models"].append({**entry, "version": "2"})
    manifest.setdefault("aliases", {})[INT8] = {"stable": {"1": 50, "2": 50}}
    text_s3.put_object(Bucket=BUCKET, Key=MANIFEST, Body=json.dumps(manifest).encode())
    components.cache_clear()
    seen = {}
    for user in (f"user-{i}" for i in range(12)):
        versions = {embed({"model": INT8, "input": FOOD, "user": user})[2]["x-model-version"] for _ in range(2)}
        assert len(versions) == 1
        seen[user] = versions.pop()
        assert embed({"model": INT8, "input": FOOD}, {"X-Routing-Key": user})[2]["x-model-version"] == seen[user]
    assert set(seen.values()) == {"1", "2"}
    assert embed({"model": f"{INT8}:2", "input": FOOD})[2]["x-model-version"] == "2"
    assert embed({"model": f"{INT8}:stable", "input": FOOD, "user": "user-0"})[2]["x-model-version"] == seen["user-0"]


def test_without_a_token_it_is_a_401_in_openais_shape(text_s3: Any) -> None:
    event = http_event("POST", "/openai/v1/embeddings", json.dumps({"model": INT8, "input": FOOD}))
    del event["headers"]["authorization"]
    result = load_function("embeddings").handler(event, lambda_context())
    assert_openai_error(result["statusCode"], json.loads(result["body"]), 401, "Bearer", code="invalid_api_key")


@pytest.mark.parametrize(("content", "status", "words"), [
    ('{"model": "all-minilm-l6-v2", "input": ["a",', 400, "not valid JSON"),
    ("x" * (1024 * 1024 + 1), 413, "larger than"),
])
def test_malformed_and_oversized_bodies_answer_in_openais_shape(text_s3: Any, content: str, status: int,
                                                                words: str) -> None:
    code, body, _ = call("POST", "/openai/v1/embeddings", content)
    assert_openai_error(code, body, status, words)


def test_a_server_failure_is_a_500_naming_the_request_id_and_nothing_of_s3(text_s3: Any) -> None:
    text_s3.delete_object(Bucket=BUCKET, Key=MANIFEST)
    from prediction_service.composition import components

    components.cache_clear()
    status, body, _ = embed({"model": INT8, "input": FOOD})
    assert_openai_error(status, body, 500, "request id")
    assert MANIFEST not in body["error"]["message"] and "s3://" not in body["error"]["message"]
