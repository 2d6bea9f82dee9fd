"""ASGI middleware every function's app runs: stage paths, timing, bearer tokens, JSON bodies.

Plain ASGI classes rather than Starlette's BaseHTTPMiddleware: each costs a few
microseconds per request instead of a task and a stream per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prediction_service.errors import (
    AuthConfigError,
    ErrorWriter,
    PayloadTooLargeError,
    PredictionError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    error_body,
)
from prediction_service.observability import log_error
from prediction_service.limits import MAX_BODY_BYTES
from prediction_service.web.auth import bearer_token, default_verifier
from prediction_service.web.responses import JSON, error_response

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


_JSON_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"")
_BINARY = b"application/octet-stream"


class JsonBodyGuard:
    """Every route takes JSON: a body over `max_bytes` gets 413, another media type 415.

    A body labelled `application/x-www-form-urlencoded` is read as JSON: that is what
    `curl --data '{...}'` sends, as in the documents this API follows, and no route
    takes a form. So is a body with no Content-Type at all. `binary`: also take `application/octet-stream` (the v2 protocol's
    binary tensor extension). The body is read here once and replayed to the app.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES, binary: bool = False, error_body: ErrorWriter = error_body
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.media_types = (*_JSON_TYPES, _BINARY) if binary else _JSON_TYPES
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        media_type = next((v.split(b";")[0].strip().lower() for k, v in headers if k == b"content-type"), b"")
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                error = PayloadTooLargeError(f"the request body is larger than {self.max_bytes} bytes")
                await refuse(error, scope, receive, send, self.error_body)
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if body and media_type not in self.media_types and not media_type.endswith(b"+json"):
            binary = " or binary tensors (application/octet-stream)" if _BINARY in self.media_types else ""
            message = f"send JSON (Content-Type: application/json){binary}, not {media_type.decode('latin-1')}"
            await refuse(UnsupportedMediaTypeError(message), scope, receive, send, self.error_body)
            return
        if body and media_type in (b"application/x-www-form-urlencoded", b""):  # read as JSON, labelled so
            headers = [*((k, v) for k, v in headers if k != b"content-type"), (b"content-type", JSON.encode())]
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
    `public_paths`: paths that reveal nothing and need no token (health probes).
    """

    def __init__(
        self, app: ASGIApp, *, public_paths: Collection[str] = (), error_body: ErrorWriter = error_body
    ) -> None:
        self.app = app
        self.public_paths = frozenset(public_paths)
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in self.public_paths:
            await self.app(scope, receive, send)
            return
        given = [v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"]
        header = given[0] if len(given) == 1 else None  # two headers are malformed: neither decides
        try:
            principal = default_verifier().verify(header)
        except Exception as exc:  # no hashes, or SSM unreachable: fail closed
            error = exc if isinstance(exc, AuthConfigError) else AuthConfigError(f"cannot read token hashes: {exc!r}")
            await refuse(error, scope, receive, send, self.error_body)
            return
        if principal is None:
            reason = "missing or malformed Authorization header" if bearer_token(header) is None else "unknown token"
            error = UnauthorizedError(f"{reason}: send 'Authorization: Bearer <token>'")
            await refuse(error, scope, receive, send, self.error_body)
            return
        scope.setdefault("state", {})["principal"] = principal.id
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path as the routes see it (without a stage's root_path)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def refuse(error: PredictionError, scope: Scope, receive: Receive, send: Send, body: ErrorWriter) -> None:
    """Answer the request with `error` in the app's error body, and log it."""
    log_error(error)
    await error_response(error, scope, body)(scope, receive, send)
