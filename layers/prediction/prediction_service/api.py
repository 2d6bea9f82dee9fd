"""FastAPI wiring every function shares: app factory, dependencies, error bodies, JSON responses."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from . import __version__
from .middleware import JSON, BearerAuth, JsonBodyGuard, RequestTimer
from .runs import BlockRunner
from .runtime import default_runner, default_service
from .service import Outcome, PredictionService, describe_errors, elapsed_ms

logger = logging.getLogger(__name__)


def started_at(request: Request) -> float:
    return getattr(request.state, "started", time.perf_counter())


async def get_service() -> PredictionService:
    """Dependency: the service of this execution environment.

    `async` on purpose: FastAPI runs plain `def` dependencies in a worker thread,
    a hop that costs more than the whole prediction on the warm path.
    """
    return default_service()


async def get_runner() -> BlockRunner:
    """Dependency: the playground runner of this execution environment (async: see get_service)."""
    return default_runner()


def respond(outcome: Outcome) -> Response:
    body = outcome.response.model_dump_json(exclude_none=True)
    return Response(body, status_code=outcome.http_status, media_type=JSON)


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(body.model_dump_json(exclude_none=True), status_code=status_code, media_type=JSON)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    body: dict[str, Any] = {"status": "BadRequest"}
    if "name" in request.path_params:
        body["model_name"] = request.path_params["name"]
    body["error_message"] = describe_errors(exc.errors())
    body["duration_ms"] = elapsed_ms(started_at(request))
    return JSONResponse(body, status_code=400)


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"status": "InternalError", "error_message": "the server could not answer; the error is logged"}
    return JSONResponse(body, status_code=500)


def create_app(title: str, description: str) -> FastAPI:
    # strict_content_type=False: a JSON body without a Content-Type header is still JSON.
    # FastAPI's native OpenTelemetry is off: it costs more per request than a prediction,
    # and Lambda's own logs, metrics and traces cover what it would record.
    app = FastAPI(
        title=title,
        description=description,
        version=__version__,
        strict_content_type=False,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.add_middleware(JsonBodyGuard)
    app.add_middleware(BearerAuth)
    app.add_middleware(RequestTimer)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(Exception, _internal_error)
    return app
