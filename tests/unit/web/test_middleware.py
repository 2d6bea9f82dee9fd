"""The JSON body guard: what a body's Content-Type decides, through a function's real handler."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import http_event, lambda_context, load_function


@pytest.fixture
def models(s3: Any) -> Any:
    return load_function("models")


def answer(function: Any, content_type: str | None, body: str = '{"ids": [1, 5]}') -> tuple[int, dict[str, Any]]:
    event = http_event("POST", "/v1/models/user_churn/predict", body)
    if content_type is None:
        del event["headers"]["content-type"]
    else:
        event["headers"]["content-type"] = content_type
    result = function.handler(event, lambda_context())
    return result["statusCode"], json.loads(result["body"])


@pytest.mark.parametrize("content_type", [None, "application/json", "application/x-www-form-urlencoded",
                                          "application/json; charset=utf-8", "application/vnd.api+json"])
def test_a_json_body_is_read_as_json_whatever_label_curl_gives_it(models: Any, content_type: str | None) -> None:
    """Bug: a body with no Content-Type got 400 "body: Input should be a valid dictionary"."""
    status, body = answer(models, content_type)
    assert status == 200, body
    assert body["status"] == "Success" and len(body["prediction"]) == 2


def test_other_media_types_are_refused_with_415(models: Any) -> None:
    status, body = answer(models, "text/csv", "1,2,3")
    assert status == 415 and "send JSON" in body["error_message"]


def test_a_missing_content_type_with_a_body_that_is_not_json_is_a_400(models: Any) -> None:
    status, body = answer(models, None, "not json")
    assert status == 400 and "not valid JSON" in body["error_message"]
