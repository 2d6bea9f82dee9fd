"""Request and response bodies. Responses follow the documents the API is modelled on:
the batch response validates against the public `POST /v1/predict` JSON schema."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from prediction_service.catalog.manifest import VERSION  # a version or alias, as the manifest spells them
from prediction_service.protocols.schema import Schema
from prediction_service.limits import MAX_TEXTS

MAX_ROWS = 1000  # rows (or ids) in one prediction request
MAX_BATCH_ITEMS = 16  # predictions in one batch request

FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[list[FiniteFloat], Field(min_length=1)]

# The rule `_one_source` checks, for the OpenAPI document: never two sources at once.
_LISTS = {"inputs": {"type": "array"}, "ids": {"type": "array"}, "texts": {"type": "array"}}
_NOT_BOTH_SOURCES = {
    "not": {
        "anyOf": [
            {"required": list(pair), "properties": {key: _LISTS[key] for key in pair}}
            for pair in (("inputs", "ids"), ("inputs", "texts"), ("ids", "texts"))
        ]
    }
}


class PredictRequest(Schema):
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
    texts: list[StrictStr] | None = Field(
        default=None, min_length=1, max_length=MAX_TEXTS, description="text-embedding models: the texts to embed"
    )
    version: StrictStr | None = Field(
        default=None, pattern=VERSION, description="a version or alias of the model (default: what its name serves)"
    )
    members: StrictBool = Field(default=False, description="ensembles: each member's own prediction too")

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if sum(source is not None for source in (self.inputs, self.ids, self.texts)) > 1:
            raise ValueError("give one of inputs, ids or texts, not several")
        return self


class BatchItem(PredictRequest):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={**_NOT_BOTH_SOURCES, "examples": [{"model_name": "drive_stats_a"}]}
    )

    model_name: str = Field(min_length=1, max_length=128)


class BatchPredictRequest(Schema):
    """Body of `POST /v1/predict`. A request that breaks this shape is refused whole (400);
    an item that fails at prediction time (unknown model, wrong width) fails alone."""

    model_config = ConfigDict(extra="forbid")

    predictions: list[BatchItem] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS, description="the predictions to make, each with its model"
    )

    @model_validator(mode="after")
    def _texts_in_all(self) -> BatchPredictRequest:
        """A batch's items share one request's budget: its texts together, as one request's."""
        texts = sum(len(item.texts or ()) for item in self.predictions)
        if texts > MAX_TEXTS:
            raise ValueError(f"a batch may carry at most {MAX_TEXTS} texts in all (its items together), not {texts}")
        return self


class PredictStatus(str, Enum):
    SUCCESS = "Success"
    BAD_REQUEST = "BadRequest"
    INTERNAL_ERROR = "InternalError"


class MemberPrediction(Schema):
    """One member's own answer inside an ensemble's (with `members: true`)."""

    model_name: str
    model_version: str
    prediction: list[int | float] | None = None
    probabilities: list[list[float]] | None = None


class PredictResponse(Schema):
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
    embeddings: list[list[float]] | None = Field(default=None, description="text models: one unit vector per text")
    token_counts: list[int] | None = Field(
        default=None, description="text models: word pieces the model read of each text, special tokens included"
    )
    truncated: list[bool] | None = Field(
        default=None, description="text models: whether a text was longer than the model reads (max_tokens)"
    )
    members: list[MemberPrediction] | None = Field(default=None, description="ensembles, with members=true")
    duration_ms: int = Field(ge=0)
    error_message: str | None = None


class BatchPredictResponse(Schema):
    duration_ms: int = Field(ge=0)
    predictions: list[PredictResponse]


class ModelInfo(Schema):
    name: str
    version: str
    kind: str
    lookback: int | None = None
    horizon: int | None = None
    description: str | None = None
    inputs: int | None = Field(
        default=None, description="values in one input row (forecast and classifier models; generic ONNX models "
        "take named tensors: GET /v2/models/{name} lists them)"
    )
    input_names: list[str] | None = None
    classes: list[str] | None = None
    group: str | None = None
    block: str | None = None
    max_tokens: int | None = Field(default=None, description="text models: word pieces read of each text")
    versions: list[str] = Field(description="every version, shadows included; `version` is the one the bare name "
                                "serves most")
    aliases: dict[str, dict[str, int]] | None = Field(
        default=None, description="alias -> {version: weight}; a request for the bare name follows `stable`"
    )
    shadows: dict[str, str] | None = Field(default=None, description="version -> the version that shadows it")
    members: list[str] | None = Field(default=None, description="ensembles: the models they combine")
    loaded: bool


class ModelList(Schema):
    models: list[ModelInfo]


class ModelDetail(ModelInfo):
    """Body of `GET /v1/models/{name}`: the model, and samples of the data it serves from."""

    window: list[float] | None = Field(
        default=None, description="forecast models: the last `lookback` points of the dataset GET .../predict uses"
    )
    example_ids: list[int] | None = Field(
        default=None, description="classifiers: a few ids of the feature table, to try `ids` with"
    )


class ErrorBody(Schema):
    """The one body of every refused request (4xx) and failure (5xx) the API itself writes
    (errors.error_body). A 5xx message ends with the request id under which the detail is logged."""

    status: PredictStatus = PredictStatus.BAD_REQUEST
    model_name: str | None = Field(default=None, description="the model the request named, when it named one")
    error_message: str
    duration_ms: int | None = Field(default=None, ge=0)


# -- playground runs (POST /api/runs) ---------------------------------------------------


class RunVariables(Schema):
    """Block variables; unknown keys are accepted (the playground passes any kwargs) and ignored."""

    model_config = ConfigDict(extra="allow")

    user_ids: list[StrictInt] | None = Field(default=None, min_length=1, max_length=MAX_ROWS)
    inputs: list[Row] | None = Field(default=None, min_length=1, max_length=MAX_ROWS)
    probability: StrictBool = False
    version: StrictStr | None = Field(default=None, pattern=VERSION, description="a version or alias of the model")


class RunSpec(Schema):
    model_config = ConfigDict(extra="forbid")

    pipeline_uuid: str = Field(min_length=1, max_length=256)
    block_uuid: str = Field(min_length=1, max_length=256)
    project: str | None = Field(default=None, max_length=256)
    variables: RunVariables = Field(default_factory=RunVariables)
    record: StrictBool = True
    store_variables: StrictBool = True
    run_upstream_blocks: StrictBool = Field(
        default=False,
        description="fetch the manifest and the model's files from S3 again first "
        "(at most once per MODEL_REVALIDATE_SECONDS per model; within that period the cached copy serves)",
    )
    incomplete_only: StrictBool = False


# The playground document's request: the OpenAPI document shows it as the example.
DOCUMENT_EXAMPLE: dict[str, Any] = {
    "run": {
        "pipeline_uuid": "ml_inference_online",
        "block_uuid": "ml/inference/online/predictions",
        "project": "machine_learning",
        "variables": {"probability": True, "user_ids": [1, 5, 100]},
        "record": True,
        "store_variables": True,
        "run_upstream_blocks": False,
        "incomplete_only": False,
    }
}


class RunRequest(Schema):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [DOCUMENT_EXAMPLE]})

    run: RunSpec


class RunOutput(Schema):
    output: list[Any]
    model_name: str | None = Field(default=None, description="the model the block names")
    model_version: str | None = Field(default=None, description="the version that answered")


class RunResponse(Schema):
    run: RunOutput
