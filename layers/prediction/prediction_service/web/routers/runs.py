"""Route of the runs function: the ML playground's `POST /api/runs`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from prediction_service.protocols.v1.schemas import RunRequest, RunResponse
from prediction_service.web.concurrency import compute
from prediction_service.web.deps import RequestIdDep, RoutingKeyDep, RunnerDep, StartedDep
from prediction_service.web.responses import ERROR_RESPONSES, NOT_FOUND, json_response

router = APIRouter(tags=["playground runs"], responses=ERROR_RESPONSES)


@router.post("/api/runs", response_model=RunResponse, responses=NOT_FOUND)
async def create_run(
    body: RunRequest, runner: RunnerDep, started: StartedDep, request_id: RequestIdDep, key: RoutingKeyDep
) -> Response:
    """Run a pipeline block's model on `variables.user_ids`; `record: true` writes a record to S3."""
    return json_response((await compute(runner.run, body.run, request_id, started, key)).value)
