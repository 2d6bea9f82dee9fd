"""Predict function: list models, forecast from a model's own data, predict on caller data."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below.
from prediction_service.runtime import cache_stats, prefetch_in_background

prefetch_in_background()

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from mangum import Mangum
from prediction_service.observability import instrument
from prediction_service.api import create_app, get_service, json_response, respond, started_at
from prediction_service.schemas import ModelList, PredictRequest, PredictResponse
from prediction_service.service import PredictionService

app = create_app("Model predictions", "Predictions from the ONNX models named in the manifest.")
Service = Annotated[PredictionService, Depends(get_service)]


@app.get("/v1/models", response_model=ModelList)
async def list_models(service: Service) -> Response:
    return json_response(service.list_models())


@app.get("/v1/models/{name}/predict", response_model=PredictResponse)
async def forecast(name: str, request: Request, service: Service) -> Response:
    """Forecast from the model's own dataset: the last `lookback` points in, `horizon` values out."""
    return respond(service.predict(name, PredictRequest(), started_at(request)))


@app.post("/v1/models/{name}/predict", response_model=PredictResponse)
async def predict(name: str, body: PredictRequest, request: Request, service: Service) -> Response:
    """Predict on the caller's `inputs` rows or on `ids` looked up in the model's feature table."""
    return respond(service.predict(name, body, started_at(request)))


handler = instrument(Mangum(app, lifespan="off"), cache_stats)
