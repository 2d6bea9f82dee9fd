"""Property-based tests (hypothesis): no JSON body makes the request models or the API misbehave."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prediction_service.protocols.v1.schemas import BatchItem, PredictRequest, RunRequest
from pydantic import ValidationError
from support import http_event, lambda_context, load_function

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
keys = st.sampled_from(["inputs", "ids", "probability", "model_name", "run", "x"])
near_valid = st.dictionaries(keys, json_values, max_size=4)
bodies = json_values | near_valid

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(bodies)
@settings(max_examples=300, deadline=None)
def test_request_models_accept_only_clean_data_or_raise_validation_error(raw: Any) -> None:
    for model in (PredictRequest, BatchItem, RunRequest):
        try:
            parsed = model.model_validate(raw)
        except ValidationError:
            continue
        if isinstance(parsed, PredictRequest):
            assert parsed.inputs is None or parsed.ids is None
            for row in parsed.inputs or []:
                assert all(isinstance(v, float) and math.isfinite(v) for v in row)
            assert all(type(i) is int for i in parsed.ids or [])
            assert isinstance(parsed.probability, bool)


@pytest.fixture(scope="module")
def predict() -> Any:
    return load_function("models")


@given(body=bodies, name=st.sampled_from(["user_churn", "drive_stats_a", "nope"]))
@SETTINGS
def test_any_json_body_gets_a_well_formed_non_500_answer(s3: Any, predict: Any, body: Any, name: str) -> None:
    event = http_event("POST", f"/v1/models/{name}/predict", json.dumps(body))
    result = predict.handler(event, lambda_context())
    assert result["statusCode"] in (200, 400, 404), result["body"]
    answer = json.loads(result["body"])
    assert answer["status"] in ("Success", "BadRequest")
    assert (answer["status"] == "Success") == (result["statusCode"] == 200)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(rows=st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=20), probability=st.booleans())
@SETTINGS
def test_any_valid_rows_are_classified_one_label_per_row(s3: Any, predict: Any, rows: list[list[float]],
                                                         probability: bool) -> None:
    body = json.dumps({"inputs": rows, "probability": probability})
    result = predict.handler(http_event("POST", "/v1/models/user_churn/predict", body), lambda_context())
    assert result["statusCode"] == 200, result["body"]
    answer = json.loads(result["body"])
    assert len(answer["prediction"]) == len(rows) and set(answer["prediction"]) <= {0, 1}
    assert ("probabilities" in answer) == probability
