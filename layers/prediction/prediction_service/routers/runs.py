"""Route of the runs function: the ML playground's `POST /api/runs`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..api import ERROR_RESPONSES, get_runner, started_at
from ..runs import BlockRunner, RunRequest, RunResponse

router = APIRouter(tags=["playground runs"], responses=ERROR_RESPONSES)
Runner = Annotated[BlockRunner, Depends(get_runner)]


def request_id(request: Request) -> str:
    """The Lambda request id when there is one, so records and logs share it."""
    context = request.scope.get("aws.context")
    return getattr(context, "aws_request_id", None) or str(uuid.uuid4())


@router.post("/api/runs", response_model=RunResponse)
async def create_run(body: RunRequest, request: Request, runner: Runner) -> Response:
    """Run a pipeline block's model on `variables.user_ids`; `record: true` writes a record to S3."""
    result = runner.run(body.run, request_id(request), started_at(request))
    return JSONResponse(result.body, status_code=result.http_status)
