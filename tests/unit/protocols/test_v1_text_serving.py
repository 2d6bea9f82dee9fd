"""A real pretrained text model served end to end: all-MiniLM-L6-v2 (built from the pinned
package by models/build_text_model.py), published with its tokenizer.json, embedding texts
through /v1 and through the v2 protocol's BYTES input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support import BUCKET, http_event, lambda_context, load_function

INT8, FP32 = "all-minilm-l6-v2", "all-minilm-l6-v2-fp32"
FOOD, BREAD, MOVIE = "A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."


def embed_v1(name: str, texts: list[str]) -> tuple[int, dict[str, Any]]:
    event = http_event("POST", f"/v1/models/{name}/predict", json.dumps({"texts": texts}))
    result = load_function("models").handler(event, lambda_context())
    return result["statusCode"], json.loads(result["body"])


@pytest.mark.parametrize("name", [INT8, FP32])
def test_texts_get_unit_embeddings_with_token_counts_and_truncation(text_s3: Any, name: str) -> None:
    status, body = embed_v1(name, [FOOD, BREAD, MOVIE, "word " * 400])
    assert status == 200, body
    vectors = np.asarray(body["embeddings"])
    assert vectors.shape == (4, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert body["token_counts"] == [8, 11, 8, 256] and body["truncated"] == [False, False, False, True]
    assert vectors[0] @ vectors[1] > 0.7 > 0.1 > vectors[0] @ vectors[2]
    assert body["model_name"] == name and body["status"] == "Success"


def test_the_v2_protocol_takes_text_as_bytes(text_s3: Any) -> None:
    inference = load_function("inference")
    metadata = json.loads(inference.handler(http_event("GET", f"/v2/models/{INT8}"), lambda_context())["body"])
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"][0] == {"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": [FOOD, BREAD]}]}
    result = inference.handler(http_event("POST", f"/v2/models/{INT8}/infer", json.dumps(body)), lambda_context())
    assert result["statusCode"] == 200, result["body"]
    outputs = {o["name"]: o for o in json.loads(result["body"])["outputs"]}
    vectors = np.asarray(outputs["embedding"]["data"]).reshape(outputs["embedding"]["shape"])
    assert outputs["token_count"]["data"] == [8, 11] and outputs["truncated"]["data"] == [False, False]
    assert np.allclose(vectors, embed_v1(INT8, [FOOD, BREAD])[1]["embeddings"], atol=1e-6)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["x"] * 65}, "64"),
        ({"texts": ["x" * 10_001]}, "10000 characters"),
        ({"texts": [1]}, "texts.0"),
        ({"texts": ["x"], "ids": [1]}, "not several"),
        ({"inputs": [[1.0]]}, "texts"),
    ],
)
def test_text_limits_are_400s(text_s3: Any, body: dict[str, Any], words: str) -> None:
    event = http_event("POST", f"/v1/models/{INT8}/predict", json.dumps(body))
    result = load_function("models").handler(event, lambda_context())
    answer = json.loads(result["body"])
    assert result["statusCode"] == 400 and words in answer["error_message"], answer


def test_texts_sent_to_a_model_that_is_not_a_text_model_are_refused(text_s3: Any) -> None:
    status, body = embed_v1("user_churn", [FOOD])
    assert status == 400 and "text-embedding" in body["error_message"]


def test_the_tokenizer_is_checksummed_like_every_file(text_s3: Any) -> None:
    text_s3.put_object(Bucket=BUCKET, Key="models/text/tokenizer.json", Body=b'{"version": "1.0"}')
    status, body = embed_v1(INT8, [FOOD])
    assert status == 500 and "sha256" in body["error_message"]
