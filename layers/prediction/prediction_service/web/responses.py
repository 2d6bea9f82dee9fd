"""What every app answers with: JSON bodies without their None fields, and the one error body."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from prediction_service.errors import ErrorWriter, PredictionError, error_body
from prediction_service.protocols.v1.schemas import ErrorBody
from prediction_service.limits import MAX_BODY_BYTES
from prediction_service.timing import elapsed_ms

JSON = "application/json"

# What every API route may answer besides its success, as the OpenAPI document shows it.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request is invalid; `error_message` says why."},
    401: {"model": ErrorBody, "description": "No valid `Authorization: Bearer <token>` header."},
    413: {"model": ErrorBody, "description": f"The body is larger than {MAX_BODY_BYTES} bytes."},
    415: {"model": ErrorBody, "description": "The body is not JSON."},
    500: {"model": ErrorBody, "description": "The server failed; `error_message` names the request id it logged."},
}

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No model of that name in the manifest, or no such version of it."}
}


def json_response(body: BaseModel, status_code: int = 200) -> Response:
    """A pydantic model as JSON, without its None fields (the documents leave them out)."""
    return Response(body.model_dump_json(exclude_none=True), status_code=status_code, media_type=JSON)


def error_response(error: PredictionError, scope: Scope, body: ErrorWriter = error_body) -> JSONResponse:
    """`error` in the app's error body, with its status code, headers, request id and duration."""
    content = body(error, request_id(scope), duration_ms=elapsed_ms(started_at(scope)))
    return JSONResponse(content, status_code=error.http_status, headers=error.headers)


def started_at(scope: Scope) -> float:
    """When the request arrived (middleware.RequestTimer), so durations cover parsing too."""
    return (scope.get("state") or {}).get("started") or time.perf_counter()


def request_id(scope: Scope) -> str:
    """The Lambda request id when there is one (logs and records share it), else a new id,
    kept in the scope so every use within one request agrees."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        context: Any = scope.get("aws.context")
        state["request_id"] = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    return state["request_id"]
