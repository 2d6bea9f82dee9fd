"""Routes of the models function: list and describe models, forecast from a model's own
data, predict on the caller's data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from prediction_service.errors import BadInputError
from prediction_service.protocols.v1.schemas import ModelDetail, ModelList, PredictRequest, PredictResponse
from prediction_service.web.concurrency import compute
from prediction_service.web.deps import RoutingKeyDep, ServiceDep, StartedDep, VersionQuery
from prediction_service.web.responses import ERROR_RESPONSES, NOT_FOUND, json_response

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)
ModelName = Annotated[str, Path(description="a model's name, as GET /v1/models lists it", examples=["drive_stats_a"])]


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: ServiceDep) -> Response:
    """Every model in the manifest, and whether this environment has it loaded."""
    return json_response(service.list_models())


@router.get("/v1/models/{name}", response_model=ModelDetail, responses=NOT_FOUND)
async def describe_model(name: ModelName, service: ServiceDep, version: VersionQuery = None) -> Response:
    """One model with its versions, aliases and shadows, and the window its forecast starts from or
    a few ids to try (of `version`, if given)."""
    return json_response(service.describe(name, version))


@router.get("/v1/models/{name}/predict", response_model=PredictResponse, responses=NOT_FOUND)
async def forecast(
    name: ModelName, service: ServiceDep, started: StartedDep, key: RoutingKeyDep, version: VersionQuery = None
) -> Response:
    """Forecast from the model's own dataset: the last `lookback` points in, `horizon` values out."""
    return await _predict(service, name, PredictRequest(), started, version, key)


@router.post("/v1/models/{name}/predict", response_model=PredictResponse, responses=NOT_FOUND)
async def predict(
    name: ModelName, body: PredictRequest, service: ServiceDep, started: StartedDep, key: RoutingKeyDep,
    version: VersionQuery = None,
) -> Response:
    """Predict on the caller's `inputs` rows or on `ids` looked up in the model's feature table."""
    return await _predict(service, name, body, started, version, key)


async def _predict(
    service: ServiceDep, name: str, body: PredictRequest, started: float, version: str | None, key: str | None
) -> Response:
    if version is not None and body.version not in (None, version):
        raise BadInputError(f"version {version!r} (query) and {body.version!r} (body) disagree: give one")
    answer = await compute(service.predict, name, body, started, routing_key=key, version=version)
    return json_response(answer.value)
