"""Routes of the predict function: list and describe models, forecast from a model's own
data, predict on the caller's data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from ..api import ERROR_RESPONSES, NOT_FOUND, error_response, get_service, json_response, respond, started_at
from ..errors import ModelNotFoundError, PredictionError
from ..schemas import ModelDetail, ModelList, PredictRequest, PredictResponse
from ..service import PredictionService

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)
Service = Annotated[PredictionService, Depends(get_service)]
ModelName = Annotated[str, Path(description="a model's name, as GET /v1/models lists it", examples=["drive_stats_a"])]


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: Service) -> Response:
    """Every model in the manifest, and whether this environment has it loaded."""
    return json_response(service.list_models())


@router.get("/v1/models/{name}", response_model=ModelDetail, responses=NOT_FOUND)
async def describe_model(name: ModelName, request: Request, service: Service) -> Response:
    """One model, with the window its forecast starts from or a few ids to try."""
    try:
        return json_response(service.describe(name))
    except ModelNotFoundError as exc:
        return error_response(404, exc.message, request, model_name=name)
    except PredictionError as exc:
        return error_response(500, exc.message, request, model_name=name, status="InternalError")


@router.get("/v1/models/{name}/predict", response_model=PredictResponse, responses=NOT_FOUND)
async def forecast(name: ModelName, request: Request, service: Service) -> Response:
    """Forecast from the model's own dataset: the last `lookback` points in, `horizon` values out."""
    return respond(service.predict(name, PredictRequest(), started_at(request)))


@router.post("/v1/models/{name}/predict", response_model=PredictResponse, responses=NOT_FOUND)
async def predict(name: ModelName, body: PredictRequest, request: Request, service: Service) -> Response:
    """Predict on the caller's `inputs` rows or on `ids` looked up in the model's feature table."""
    return respond(service.predict(name, body, started_at(request)))
