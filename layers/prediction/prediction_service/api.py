"""FastAPI wiring every function shares: app factory, dependencies, error bodies, JSON responses."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .middleware import JSON, MAX_BODY_BYTES, BearerAuth, JsonBodyGuard, RequestTimer, StagePrefix
from .runs import BlockRunner
from .composition import default_runner, default_service
from .schemas import ErrorBody, UnauthorizedBody
from .service import Outcome, PredictionService, describe_errors, elapsed_ms

logger = logging.getLogger(__name__)


# What every API route may answer besides its success, as the OpenAPI document shows it.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request is invalid; `error_message` says why."},
    401: {"model": UnauthorizedBody, "description": "No valid `Authorization: Bearer <token>` header."},
    413: {"model": ErrorBody, "description": f"The body is larger than {MAX_BODY_BYTES} bytes."},
    415: {"model": ErrorBody, "description": "The body is not JSON."},
    500: {"model": ErrorBody, "description": "The server failed; the error is logged."},
}


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No model of that name in the manifest."}
}


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


def json_response(body: Any, status_code: int = 200) -> Response:
    """A pydantic model as JSON, without its None fields (the documents leave them out)."""
    return Response(body.model_dump_json(exclude_none=True), status_code=status_code, media_type=JSON)


def respond(outcome: Outcome) -> Response:
    return json_response(outcome.response, outcome.http_status)


def error_response(
    status_code: int, message: str, request: Request, *, model_name: str | None = None, status: str = "BadRequest"
) -> Response:
    duration_ms = elapsed_ms(started_at(request))
    body = ErrorBody(status=status, model_name=model_name, error_message=message, duration_ms=duration_ms)
    return json_response(body, status_code)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    body: dict[str, Any] = {"status": "BadRequest"}
    if "name" in request.path_params:
        body["model_name"] = request.path_params["name"]
    body["error_message"] = describe_errors(exc.errors())
    body["duration_ms"] = elapsed_ms(started_at(request))
    return JSONResponse(body, status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own refusals (a body that is not UTF-8, a method the route lacks) in our error shape."""
    assert isinstance(exc, StarletteHTTPException)
    status = "BadRequest" if exc.status_code < 500 else "InternalError"
    body = {"status": status, "error_message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"status": "InternalError", "error_message": "the server could not answer; the error is logged"}
    return JSONResponse(body, status_code=500)


def create_app(*routers: APIRouter, title: str, description: str, public: bool = False) -> FastAPI:
    """A function's app serving `routers`. `public`: no bearer token asked (documentation pages).

    The apps serve no OpenAPI document of their own: the docs function serves one for the
    whole API (prediction_service.openapi).
    """
    # strict_content_type=False: a JSON body without a Content-Type header is still JSON.
    # FastAPI's native OpenTelemetry is off: it costs more per request than a prediction,
    # and Lambda's own logs, metrics and traces cover what it would record.
    app = FastAPI(
        title=title,
        description=description,
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        strict_content_type=False,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    for router in routers:
        app.include_router(router)
    if not public:
        app.add_middleware(JsonBodyGuard)
        app.add_middleware(BearerAuth)
    app.add_middleware(RequestTimer)
    app.add_middleware(StagePrefix)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    return app
