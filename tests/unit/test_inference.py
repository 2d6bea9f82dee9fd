"""Inference on the shipped ONNX files, and the input checks in front of it."""

from __future__ import annotations

import numpy as np
import pytest
from support import ROOT
from prediction_service.errors import BadInputError, IntegrityError, ModelOutputError
from prediction_service.inference import classify, forecast, input_matrix, load_model
from prediction_service.tables import Table


def session(name: str):  # noqa: ANN201 - onnxruntime type
    return load_model((ROOT / "models" / f"{name}.onnx").read_bytes()).session


def test_forecast_returns_horizon_floats_close_to_the_series() -> None:
    series = Table.parse((ROOT / "models/data/drive_stats_daily.csv").read_bytes()).column("failure_rate_pct")
    window = input_matrix(series[-33:-3][None, :], 30)
    values = forecast(session("drive_stats_a"), window, 3)
    assert len(values) == 3 and all(isinstance(v, float) for v in values)
    assert np.abs(np.array(values) - series[-3:]).max() < 0.1


def test_forecast_with_a_wrong_horizon_in_the_manifest_is_a_model_output_error() -> None:
    with pytest.raises(ModelOutputError, match="returned 3 values, the manifest says 5"):
        forecast(session("drive_stats_a"), np.zeros((1, 30), dtype=np.float32), 5)


def test_classify_returns_labels_and_probabilities_that_agree() -> None:
    rows = input_matrix([[1.0, 60.0, 2.0, 5.0], [12.0, 0.0, 60.0, 0.0]], 4)
    labels, probabilities = (a.tolist() for a in classify(session("user_churn"), rows, 2))
    assert labels == [1, 0]  # idle, ticket-heavy user churns; active long-time user stays
    assert [int(np.argmax(p)) for p in probabilities] == labels
    assert all(abs(sum(p) - 1) < 1e-6 for p in probabilities)


def test_not_onnx_bytes_are_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="not a valid ONNX"):
        load_model(b"definitely not a model")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1.0, 2.0]], "must have 3 values"),
        ([[1.0, 2.0, 3.0], [1.0]], "same length"),
        ([], "non-empty"),
        ([1.0, 2.0, 3.0], "list of rows"),
        ([[1.0, float("nan"), 3.0]], "finite"),
        ([[1.0, float("inf"), 3.0]], "finite"),
        ([[1.0, 1e300, 3.0]], "float32"),
        ([["a", "b", "c"]], "numbers"),
    ],
)
def test_bad_rows_are_refused_with_a_clear_message(rows: object, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        input_matrix(rows, 3)  # type: ignore[arg-type]
