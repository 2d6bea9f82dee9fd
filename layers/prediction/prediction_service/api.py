"""FastAPI wiring every function shares: app factory, error bodies, JSON responses, timing."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .auth import bearer_token, default_verifier
from .runs import BlockRunner
from .runtime import default_runner, default_service
from .service import Outcome, PredictionService, describe_errors, elapsed_ms

logger = logging.getLogger(__name__)

JSON = "application/json"


class RequestTimer:
    """Stamps the arrival time into the request state, so `duration_ms` covers parsing too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["started"] = time.perf_counter()
        await self.app(scope, receive, send)


MAX_BODY_BYTES = 1024 * 1024
_JSON_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"")


class JsonBodyGuard:
    """Every route takes JSON: a body over MAX_BODY_BYTES gets 413, another media type 415.

    A body labelled `application/x-www-form-urlencoded` is read as JSON: that is what
    `curl --data '{...}'` sends, as in the documents this API follows, and no route
    takes a form. The body is read here once (it is small) and replayed to the app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        media_type = next((v.split(b";")[0].strip().lower() for k, v in headers if k == b"content-type"), b"")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                message = f"the request body is larger than {MAX_BODY_BYTES} bytes"
                await send_json(send, 413, {"status": "BadRequest", "error_message": message})
                return
            if not message.get("more_body"):
                break
        if body and media_type not in _JSON_TYPES and not media_type.endswith(b"+json"):
            message = f"send JSON (Content-Type: application/json), not {media_type.decode('latin-1')}"
            await send_json(send, 415, {"status": "BadRequest", "error_message": message})
            return
        if media_type == b"application/x-www-form-urlencoded":
            headers = [(k, JSON.encode() if k == b"content-type" else v) for k, v in headers]
            scope = dict(scope, headers=headers)
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class BearerAuth:
    """Refuses requests without a valid `Authorization: Bearer <token>` with 401.

    Behind API Gateway the Lambda authorizer has already checked the token and put
    its principal in the request context; only API Gateway can set that, so such
    requests pass. Everything else (the local server, a direct invocation) is
    checked here against the same token hashes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or gateway_principal(scope):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            principal = default_verifier().verify(header)
        except Exception:
            logger.exception("cannot check bearer tokens; refusing the request")
            body = {"message": "Internal Server Error", "error_message": "authentication is not configured"}
            await send_json(send, 500, body)
            return
        if principal is None:
            reason = "missing or malformed Authorization header" if bearer_token(header) is None else "unknown token"
            logger.info("refused %s %s: %s", scope["method"], scope["path"], reason)
            body = {"message": "Unauthorized", "error_message": f"{reason}: send 'Authorization: Bearer <token>'"}
            await send_json(send, 401, body, [(b"www-authenticate", b"Bearer")])
            return
        scope.setdefault("state", {})["principal"] = principal.id
        await self.app(scope, receive, send)


def gateway_principal(scope: Scope) -> str | None:
    """The principal API Gateway's Lambda authorizer approved, if the request came through it."""
    context = (scope.get("aws.event") or {}).get("requestContext") or {}
    return ((context.get("authorizer") or {}).get("lambda") or {}).get("principal")


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = json.dumps(body).encode()
    all_headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(raw)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": raw})


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
