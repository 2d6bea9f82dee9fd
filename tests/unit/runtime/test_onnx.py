"""The ONNX runtime on the shipped files, and the /v1 codec's checks and answers around it."""

from __future__ import annotations

import numpy as np
import pytest
from prediction_service.catalog.manifest import ForecastEntry
from prediction_service.errors import BadInputError, IntegrityError, ModelOutputError
from prediction_service.protocols.v1.codec import encode_forecast, input_matrix
from prediction_service.protocols.v1.schemas import PredictRequest
from prediction_service.runtime.onnx import OnnxModel, load_model
from prediction_service.storage.tables import Table
from support import ROOT


def model(name: str) -> OnnxModel:
    return load_model((ROOT / "models" / f"{name}.onnx").read_bytes())


def forecast_entry(horizon: int) -> ForecastEntry:
    return ForecastEntry(name="f", kind="forecast", file="f.onnx", sha256="0" * 64, lookback=30, horizon=horizon,
                         dataset={"file": "d.csv", "sha256": "0" * 64, "column": "c"})


def forecast(runtime: OnnxModel, window: np.ndarray, horizon: int) -> list[float]:
    arrays = runtime.run([runtime.outputs[0].name], {runtime.inputs[0].name: window})
    return encode_forecast(PredictRequest(), forecast_entry(horizon), arrays, from_caller=False)["prediction"]


def test_forecast_returns_horizon_floats_close_to_the_series() -> None:
    series = Table.parse((ROOT / "models/data/drive_stats_daily.csv").read_bytes()).column("failure_rate_pct")
    window = input_matrix(series[-33:-3][None, :], 30)
    values = forecast(model("drive_stats_a"), window, 3)
    assert len(values) == 3 and all(isinstance(v, float) for v in values)
    assert np.abs(np.array(values) - series[-3:]).max() < 0.1


def test_forecast_with_a_wrong_horizon_in_the_manifest_is_a_model_output_error() -> None:
    with pytest.raises(ModelOutputError, match="returned 3 values, the manifest says 5"):
        forecast(model("drive_stats_a"), np.zeros((1, 30), dtype=np.float32), 5)


def test_classify_returns_labels_and_probabilities_that_agree() -> None:
    rows = input_matrix([[1.0, 60.0, 2.0, 5.0], [12.0, 0.0, 60.0, 0.0]], 4)
    runtime = model("user_churn")
    labels, probabilities = (a.tolist() for a in runtime.run(["label", "probabilities"], {"X": rows}))
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


def test_an_empty_list_of_outputs_runs_nothing() -> None:
    """onnxruntime reads an empty list as "every output": the runtime answers none instead."""
    assert model("user_churn").run([], {"X": np.zeros((1, 4), dtype=np.float32)}) == []


def test_inputs_the_graph_refuses_are_the_callers_mistake() -> None:
    with pytest.raises(BadInputError, match="could not run on these inputs"):
        model("user_churn").run(["label"], {"X": np.zeros((1, 5), dtype=np.float32)})
