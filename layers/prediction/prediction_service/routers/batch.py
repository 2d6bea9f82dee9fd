"""Route of the batch function: several models in one request, run in parallel."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from ..api import ERROR_RESPONSES, get_service, json_response
from ..schemas import BatchPredictRequest, BatchPredictResponse
from ..service import PredictionService

router = APIRouter(tags=["batch"], responses=ERROR_RESPONSES)
Service = Annotated[PredictionService, Depends(get_service)]
logger = logging.getLogger(__name__)

BATCH_FAILED = "An unexpected error occurred while processing batch predictions"


@router.post(
    "/v1/predict",
    response_model=BatchPredictResponse,
    responses={500: {"content": {"text/plain": {}}, "description": "the batch as a whole could not run"}},
)
async def predict_batch(body: BatchPredictRequest, service: Service) -> Response:
    """Each item has its own status and duration: one failing item never fails the others."""
    try:
        result = service.predict_batch(body.predictions)
    except Exception:  # only a failure of the batch machinery itself gets here
        logger.exception("batch prediction failed as a whole")
        return Response(BATCH_FAILED, 500, media_type="text/plain")
    return json_response(result)
