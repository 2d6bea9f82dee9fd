"""What each event file in events/ must produce: HTTP status, and per-item statuses for batches.

Shared by the in-process event tests and the `sam local invoke` tests, so both
check the same behaviour from the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# function directory (functions/<dir>) -> the SAM logical id serving it
FUNCTIONS = {"predict": "PredictFunction", "batch": "BatchPredictFunction"}


@dataclass(frozen=True)
class Expected:
    function: str
    status_code: int
    status: str | None = None  # the body's "status" for single-model answers
    item_statuses: list[str] = field(default_factory=list)  # batch answers, in order


EXPECTED: dict[str, Expected] = {
    "list_models.json": Expected("predict", 200),
    "forecast_drive_stats_a.json": Expected("predict", 200, "Success"),
    "forecast_unknown_model.json": Expected("predict", 404, "BadRequest"),
    "forecast_classifier_without_inputs.json": Expected("predict", 400, "BadRequest"),
    "predict_forecast_window.json": Expected("predict", 200, "Success"),
    "predict_ids_probability.json": Expected("predict", 200, "Success"),
    "predict_ids_labels.json": Expected("predict", 200, "Success"),
    "predict_feature_rows.json": Expected("predict", 200, "Success"),
    "predict_malformed_json.json": Expected("predict", 400, "BadRequest"),
    "predict_wrong_width.json": Expected("predict", 400, "BadRequest"),
    "predict_nan.json": Expected("predict", 400, "BadRequest"),
    "predict_unknown_ids.json": Expected("predict", 400, "BadRequest"),
    "predict_unknown_model.json": Expected("predict", 404, "BadRequest"),
    "batch_drive_stats.json": Expected("batch", 200, item_statuses=["Success", "Success"]),
    "batch_mixed_statuses.json": Expected(
        "batch", 200, item_statuses=["Success", "Success", "BadRequest", "BadRequest"]
    ),
    "batch_empty.json": Expected("batch", 400, "BadRequest"),
    "batch_malformed_json.json": Expected("batch", 400, "BadRequest"),
}
