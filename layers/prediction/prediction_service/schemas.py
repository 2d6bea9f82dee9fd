"""Request and response bodies. Responses follow the documents the API is modelled on:
the batch response validates against the public `POST /v1/predict` JSON schema."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

MAX_ROWS = 1000  # rows (or ids) in one prediction request
MAX_BATCH_ITEMS = 16  # predictions in one batch request

FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[list[FiniteFloat], Field(min_length=1)]

# The rule `_one_source` checks, for the OpenAPI document: never both lists at once.
_NOT_BOTH_SOURCES = {
    "not": {
        "required": ["inputs", "ids"],
        "properties": {"inputs": {"type": "array"}, "ids": {"type": "array"}},
    }
}


class PredictRequest(BaseModel):
    """Body of `POST /v1/models/{name}/predict`; empty means "forecast from the model's data"."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={**_NOT_BOTH_SOURCES, "examples": [{"ids": [1, 5, 100], "probability": True}]}
    )

    inputs: list[Row] | None = Field(
        default=None, min_length=1, max_length=MAX_ROWS, description="rows of input values"
    )
    ids: list[StrictInt] | None = Field(
        default=None, min_length=1, max_length=MAX_ROWS, description="ids looked up in the model's feature table"
    )
    probability: StrictBool = Field(default=False, description="class probabilities instead of labels")

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if self.inputs is not None and self.ids is not None:
            raise ValueError("give either inputs or ids, not both")
        return self


class BatchItem(PredictRequest):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={**_NOT_BOTH_SOURCES, "examples": [{"model_name": "drive_stats_a"}]}
    )

    model_name: str = Field(min_length=1, max_length=128)


class BatchPredictRequest(BaseModel):
    """Body of `POST /v1/predict`. A request that breaks this shape is refused whole (400);
    an item that fails at prediction time (unknown model, wrong width) fails alone."""

    predictions: list[BatchItem] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS, description="the predictions to make, each with its model"
    )


class PredictStatus(str, Enum):
    SUCCESS = "Success"
    BAD_REQUEST = "BadRequest"
    INTERNAL_ERROR = "InternalError"


class PredictResponse(BaseModel):
    status: PredictStatus
    model_name: str
    model_version: str | None = None
    lookback: int | None = None
    prediction: list[int | float] | None = Field(
        default=None, description="forecast values, or one class label per row"
    )
    probabilities: list[list[float]] | None = Field(
        default=None, description="with probability=true: one list of class probabilities per row"
    )
    classes: list[str] | None = Field(default=None, description="class names, in probability order")
    duration_ms: int = Field(ge=0)
    error_message: str | None = None


class BatchPredictResponse(BaseModel):
    duration_ms: int = Field(ge=0)
    predictions: list[PredictResponse]


class ModelInfo(BaseModel):
    name: str
    version: str
    kind: str
    lookback: int | None = None
    horizon: int | None = None
    inputs: int = Field(description="values in one input row")
    input_names: list[str] | None = None
    classes: list[str] | None = None
    group: str | None = None
    block: str | None = None
    loaded: bool


class ModelList(BaseModel):
    models: list[ModelInfo]


class ModelDetail(ModelInfo):
    """Body of `GET /v1/models/{name}`: the model, and samples of the data it serves from."""

    window: list[float] | None = Field(
        default=None, description="forecast models: the last `lookback` points of the dataset GET .../predict uses"
    )
    example_ids: list[int] | None = Field(
        default=None, description="classifiers: a few ids of the feature table, to try `ids` with"
    )


class ErrorBody(BaseModel):
    """The body of a refused request (4xx) or of a failure (5xx)."""

    status: PredictStatus = PredictStatus.BAD_REQUEST
    model_name: str | None = None
    error_message: str
    duration_ms: int | None = Field(default=None, ge=0)


class UnauthorizedBody(BaseModel):
    """401: no valid `Authorization: Bearer <token>` header."""

    message: str = "Unauthorized"
    error_message: str | None = None
