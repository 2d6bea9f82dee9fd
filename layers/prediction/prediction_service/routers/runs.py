"""Route of the runs function: the ML playground's `POST /api/runs`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ..app import ERROR_RESPONSES, NOT_FOUND
from ..deps import RequestIdDep, RoutingKeyDep, RunnerDep, StartedDep
from ..observability import count_prediction, forget_route, note_route, record_shadow
from ..responses import json_response
from ..schemas import RunRequest, RunResponse

router = APIRouter(tags=["playground runs"], responses=ERROR_RESPONSES)


@router.post("/api/runs", response_model=RunResponse, responses=NOT_FOUND)
async def create_run(
    body: RunRequest, runner: RunnerDep, started: StartedDep, request_id: RequestIdDep, key: RoutingKeyDep
) -> Response:
    """Run a pipeline block's model on `variables.user_ids`; `record: true` writes a record to S3."""
    try:
        run = runner.run(body.run, request_id, started, key, on_route=note_route)
    except Exception:
        count_prediction(succeeded=False)
        raise  # the version stays on the log lines until the app's handler has logged the failure
    forget_route()
    count_prediction(succeeded=True, inference_ms=run.inference_ms)
    record_shadow(run.route, run.shadow)
    return json_response(run.response)
