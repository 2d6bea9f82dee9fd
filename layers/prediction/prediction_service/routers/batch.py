"""Route of the batch function: several models in one request, run in parallel."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

from ..app import ERROR_RESPONSES
from ..deps import RequestIdDep, RoutingKeyDep, ServiceDep, StartedDep
from ..errors import error_body
from ..observability import count_prediction, log_error, record_shadow
from ..outcomes import Failure, Prediction
from ..responses import json_response
from ..schemas import BatchPredictRequest, BatchPredictResponse, PredictResponse
from ..timing import elapsed_ms

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
        results = service.predict_batch(body.predictions, key)
    except Exception:  # only a failure of the batch machinery itself gets here
        logger.exception("batch prediction failed as a whole")
        return Response(BATCH_FAILED, 500, media_type="text/plain")
    items = [_item(result, request_id) for result in results]
    answer = json_response(BatchPredictResponse(duration_ms=elapsed_ms(started), predictions=items))
    shadows = service.shadows.collect([r.shadow if isinstance(r, Prediction) else None for r in results])
    for result, shadow in zip(results, shadows, strict=True):
        if isinstance(result, Prediction):
            record_shadow(result.route, shadow)
    return answer


def _item(result: Prediction | Failure, request_id: str) -> PredictResponse:
    """One item's answer, with its metrics and log line written here, on the request's thread."""
    if isinstance(result, Prediction):
        count_prediction(succeeded=True, inference_ms=result.inference_ms)
        return result.response
    count_prediction(succeeded=False)
    log_error(result.error, result.route)
    return PredictResponse(**error_body(result.error, request_id), duration_ms=result.duration_ms)
