"""Batch function: several models in one request, run in parallel, each with its own status."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below.
from prediction_service.runtime import cache_stats, prefetch_in_background

prefetch_in_background()

import logging
from typing import Annotated

from fastapi import Depends
from fastapi.responses import Response
from mangum import Mangum
from prediction_service.observability import instrument
from prediction_service.api import create_app, get_service, json_response
from prediction_service.schemas import BatchPredictRequest, BatchPredictResponse
from prediction_service.service import PredictionService

app = create_app("Batch predictions", "Many models in one request, for ensembling and A/B tests.")
Service = Annotated[PredictionService, Depends(get_service)]
logger = logging.getLogger(__name__)


@app.post(
    "/v1/predict",
    response_model=BatchPredictResponse,
    responses={500: {"content": {"text/plain": {}}, "description": "the batch as a whole could not run"}},
)
async def predict_batch(body: BatchPredictRequest, service: Service) -> Response:
    try:
        result = service.predict_batch(body.predictions)
    except Exception:  # only a failure of the batch machinery itself gets here
        logger.exception("batch prediction failed as a whole")
        return Response("An unexpected error occurred while processing batch predictions", 500, media_type="text/plain")
    return json_response(result)


handler = instrument(Mangum(app, lifespan="off"), cache_stats)
