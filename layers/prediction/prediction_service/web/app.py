"""The app factory every function uses: its routers, the ASGI middleware, and one exception
handler per kind of error, all answering with the one error body (errors.error_body)."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Collection

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from prediction_service import __version__
from prediction_service.errors import (
    UNEXPECTED,
    BadInputError,
    ErrorWriter,
    MethodNotAllowedError,
    PredictionError,
    RouteNotFoundError,
    describe_errors,
    error_body,
    error_param,
)
from prediction_service.observability import forget_route, log_error
from prediction_service.limits import MAX_BODY_BYTES
from prediction_service.web.middleware import BearerAuth, JsonBodyGuard, RequestTimer, StagePrefix
from prediction_service.web.responses import error_response

# FastAPI checks each route's models against pydantic.v1 (to refuse v1 models) by importing it,
# 50 ms of a cold start on a 2-core machine; no v1 model exists here, so the functions declare it
# absent and the check answers "not v1" without the import. (Set only if nothing imported it.)
sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
# Request bodies' validators are built on first use (schemas.Schema); pydantic then notes that
# the `alias` FastAPI gives a body parameter means nothing to the model, which is so.
warnings.filterwarnings("ignore", message="The 'alias' attribute with value 'body'", module="pydantic")

logger = logging.getLogger(__name__)

async def _prediction_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PredictionError)
    log_error(exc)
    forget_route()  # a failed prediction's version is on the line just written, and on no later one
    return error_response(exc, request.scope, request.app.state.error_body)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """Request bodies that break their schema: 400 (not FastAPI's 422), naming the model if the path does."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    error = BadInputError(describe_errors(errors), model_name=request.path_params.get("name"),
                          param=error_param(errors))
    return await _prediction_error(request, error)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a method the route lacks, a body that is not UTF-8)."""
    assert isinstance(exc, StarletteHTTPException)
    error: PredictionError
    if exc.status_code == 404:
        error = RouteNotFoundError(request.method, request.url.path)
    elif exc.status_code == 405:
        allowed = [m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()]
        error = MethodNotAllowedError(request.method, allowed)
    elif exc.status_code < 500:
        error = BadInputError(str(exc.detail))
    else:
        error = PredictionError(UNEXPECTED, detail=str(exc.detail))
    return await _prediction_error(request, error)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(PredictionError(UNEXPECTED), request.scope, request.app.state.error_body)


def create_app(
    *routers: APIRouter,
    title: str,
    description: str,
    public: bool = False,
    public_paths: Collection[str] = (),
    binary_bodies: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
    error_body: ErrorWriter = error_body,
) -> FastAPI:
    """A function's app serving `routers`.

    `public`: no bearer token asked at all (documentation pages); `public_paths`: these paths
    only (health probes). `binary_bodies` and `max_body_bytes`: what the JSON body guard lets
    through. `error_body`: how every refusal and failure is written (the v2 routes use the
    protocol's `{"error": ...}`).

    The apps serve no OpenAPI document of their own: the docs function serves one for the
    whole API (web/openapi.py).
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
    app.state.error_body = error_body
    for router in routers:
        # The routes themselves, not `include_router`: FastAPI would build every route of an
        # included router a second time, on its first request (about 10 ms of each cold start),
        # for the prefixes and dependencies these routers do not use.
        app.router.routes.extend(router.routes)
    if not public:
        app.add_middleware(JsonBodyGuard, max_bytes=max_body_bytes, binary=binary_bodies, error_body=error_body)
        app.add_middleware(BearerAuth, public_paths=public_paths, error_body=error_body)
    app.add_middleware(RequestTimer)
    app.add_middleware(StagePrefix)
    app.add_exception_handler(PredictionError, _prediction_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app
