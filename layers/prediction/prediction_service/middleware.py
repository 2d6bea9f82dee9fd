"""ASGI middleware every function's app runs: stage paths, timing, bearer tokens, JSON bodies.

Plain ASGI classes rather than Starlette's BaseHTTPMiddleware: each costs a few
microseconds per request instead of a task and a stream per request.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import bearer_token, default_verifier
from .errors import AuthConfigError, PayloadTooLargeError, PredictionError, UnauthorizedError, UnsupportedMediaTypeError
from .observability import log_error
from .responses import JSON, error_response

logger = logging.getLogger(__name__)


class StagePrefix:
    """Behind a named API Gateway stage (anything but `$default`) request paths start with
    `/<stage>`. That prefix becomes the ASGI `root_path`: routes still match, and what links
    to the API (the docs page, the OpenAPI `servers`) keeps the stage in its URLs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            stage = ((scope.get("aws.event") or {}).get("requestContext") or {}).get("stage")
            prefix = f"/{stage}"
            if stage and stage != "$default" and (scope["path"] + "/").startswith(prefix + "/"):
                scope = dict(scope, root_path=prefix)
        await self.app(scope, receive, send)


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
                error = PayloadTooLargeError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
                await refuse(error, scope, receive, send)
                return
            if not message.get("more_body"):
                break
        if body and media_type not in _JSON_TYPES and not media_type.endswith(b"+json"):
            message = f"send JSON (Content-Type: application/json), not {media_type.decode('latin-1')}"
            await refuse(UnsupportedMediaTypeError(message), scope, receive, send)
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

    Every request is checked here, also behind API Gateway's Lambda authorizer: the
    authorizer's context in the event (`requestContext.authorizer.lambda`) is not proof,
    as anyone allowed to invoke the function directly can write it. The token hashes are
    read once and cached (auth.TOKEN_HASHES_MAX_AGE), so the check costs a SHA-256.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            principal = default_verifier().verify(header)
        except Exception as exc:  # no hashes, or SSM unreachable: fail closed
            error = exc if isinstance(exc, AuthConfigError) else AuthConfigError(f"cannot read token hashes: {exc!r}")
            await refuse(error, scope, receive, send)
            return
        if principal is None:
            reason = "missing or malformed Authorization header" if bearer_token(header) is None else "unknown token"
            await refuse(UnauthorizedError(f"{reason}: send 'Authorization: Bearer <token>'"), scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal.id
        await self.app(scope, receive, send)


async def refuse(error: PredictionError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer the request with `error` in the one error body, and log it."""
    log_error(error)
    await error_response(error, scope)(scope, receive, send)
