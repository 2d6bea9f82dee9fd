"""Route of the batch function: several models in one request, run in parallel."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

from prediction_service.protocols.v1.schemas import BatchPredictRequest, BatchPredictResponse
from prediction_service.timing import elapsed_ms
from prediction_service.web.concurrency import compute
from prediction_service.web.deps import RequestIdDep, RoutingKeyDep, ServiceDep, StartedDep
from prediction_service.web.responses import ERROR_RESPONSES, json_response

router = APIRouter(tags=["batch"], responses=ERROR_RESPONSES)
logger = logging.getLogger(__name__)

BATCH_FAILED = "An unexpected error occurred while processing batch predictions"


@router.post(
    "/v1/predict",
    response_model=BatchPredictResponse,
    responses={500: {"content": {"text/plain": {}}, "description": "the batch as a whole could not run"}},
)
async def predict_batch(
    body: BatchPredictRequest, service: ServiceDep, started: StartedDep, request_id: RequestIdDep, key: RoutingKeyDep
) -> Response:
    """Each item has its own status and duration: one failing item never fails the others."""
    try:
        results = await compute(service.predict_batch, body.predictions, key)
    except Exception:  # only a failure of the batch machinery itself gets here
        logger.exception("batch prediction failed as a whole")
        return Response(BATCH_FAILED, 500, media_type="text/plain")
    items = [service.item_response(result, request_id) for result in results]
    return json_response(BatchPredictResponse(duration_ms=elapsed_ms(started), predictions=items))
