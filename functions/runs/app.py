"""Runs function: the ML playground's `POST /api/runs` (a pipeline block runs its model)."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below.
from prediction_service.runtime import cache_stats, prefetch_in_background

prefetch_in_background()

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from mangum import Mangum
from prediction_service.observability import instrument
from prediction_service.api import create_app, get_runner, started_at
from prediction_service.runs import BlockRunner, RunRequest, RunResponse

app = create_app("Playground runs", "Online inference in the shape of an ML playground's block runs.")
Runner = Annotated[BlockRunner, Depends(get_runner)]


def request_id(request: Request) -> str:
    """The Lambda request id when there is one, so records and logs share it."""
    context = request.scope.get("aws.context")
    return getattr(context, "aws_request_id", None) or str(uuid.uuid4())


@app.post("/api/runs", response_model=RunResponse)
async def create_run(body: RunRequest, request: Request, runner: Runner) -> Response:
    result = runner.run(body.run, request_id(request), started_at(request))
    return JSONResponse(result.body, status_code=result.http_status)


handler = instrument(Mangum(app, lifespan="off"), cache_stats)
