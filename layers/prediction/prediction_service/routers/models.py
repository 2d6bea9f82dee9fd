"""Routes of the models function: list and describe models, forecast from a model's own
data, predict on the caller's data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from ..app import ERROR_RESPONSES, NOT_FOUND
from ..deps import ServiceDep, StartedDep
from ..observability import count_prediction, observe_prediction
from ..responses import json_response
from ..schemas import ModelDetail, ModelList, PredictRequest, PredictResponse

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)
ModelName = Annotated[str, Path(description="a model's name, as GET /v1/models lists it", examples=["drive_stats_a"])]


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: ServiceDep) -> Response:
    """Every model in the manifest, and whether this environment has it loaded."""
    return json_response(service.list_models())


@router.get("/v1/models/{name}", response_model=ModelDetail, responses=NOT_FOUND)
async def describe_model(name: ModelName, service: ServiceDep) -> Response:
    """One model, with the window its forecast starts from or a few ids to try."""
    return json_response(service.describe(name))


@router.get("/v1/models/{name}/predict", response_model=PredictResponse, responses=NOT_FOUND)
async def forecast(name: ModelName, service: ServiceDep, started: StartedDep) -> Response:
    """Forecast from the model's own dataset: the last `lookback` points in, `horizon` values out."""
    return _predict(service, name, PredictRequest(), started)


@router.post("/v1/models/{name}/predict", response_model=PredictResponse, responses=NOT_FOUND)
async def predict(name: ModelName, body: PredictRequest, service: ServiceDep, started: StartedDep) -> Response:
    """Predict on the caller's `inputs` rows or on `ids` looked up in the model's feature table."""
    return _predict(service, name, body, started)


def _predict(service: ServiceDep, name: str, body: PredictRequest, started: float) -> Response:
    with observe_prediction(name):
        prediction = service.predict(name, body, started)
    count_prediction(succeeded=True, inference_ms=prediction.inference_ms)
    return json_response(prediction.response)
