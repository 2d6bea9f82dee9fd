"""Routes of the inference function: the Open Inference Protocol (v2), as KServe, Triton and
MLServer speak it, with Triton's binary tensor extension. Every error answers the
protocol's `{"error": "..."}`."""

from __future__ import annotations

import json
import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from ..deps import InferenceDep, RoutingKeyDep
from ..errors import BadInputError, PayloadTooLargeError, UnsupportedMediaTypeError, describe_errors
from ..middleware import LAMBDA_PAYLOAD_BYTES
from ..observability import count_prediction, note_route, observe_prediction, record_shadow
from ..protocol import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ProtocolError,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from ..responses import JSON, json_response

HEALTH_PATHS = ("/v2/health/live", "/v2/health/ready")
HEADER_LENGTH = "inference-header-content-length"
# Lambda's 6 MB limit holds for the answer too (less the response's envelope); a binary answer
# travels base64-encoded, so it may hold three quarters of that.
MAX_JSON_ANSWER_BYTES = LAMBDA_PAYLOAD_BYTES - 4096
MAX_BINARY_ANSWER_BYTES = MAX_JSON_ANSWER_BYTES * 3 // 4
# A compressed request (tritonclient's request_compression_algorithm) may unpack to at most this.
MAX_INFLATED_BYTES = 64 * 1024 * 1024

FAILED = {500: {"model": ProtocolError, "description": "The server failed; `error` names the request id it logged."}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ProtocolError, "description": "The request is invalid for this model; `error` says why."},
    401: {"model": ProtocolError, "description": "No valid `Authorization: Bearer <token>` header."},
    413: {"model": ProtocolError, "description": f"The body is larger than {LAMBDA_PAYLOAD_BYTES} bytes."},
    415: {"model": ProtocolError, "description": "The body is neither JSON nor application/octet-stream."},
    **FAILED,
}
NOT_FOUND = {404: {"model": ProtocolError, "description": "No model (or version) of that name."}}
TAGS: list[str | Any] = ["v2 (Open Inference Protocol)"]
router = APIRouter(tags=TAGS, responses=ERRORS)
health = APIRouter(tags=TAGS, responses=FAILED)  # public probes: no token, no body
ModelName = Annotated[str, Path(description="a model's name, as GET /v1/models lists it", examples=["user_churn"])]
Version = Annotated[str, Path(description="the model's version", examples=["1.0"])]
PUBLIC: dict[str, Any] = {"security": []}  # health probes reveal nothing

# The infer body is read by hand (it may be binary), so its schema is given here for the document.
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Triton's binary tensor extension: the JSON request (its length in the "
                "Inference-Header-Content-Length header), then each input's raw bytes",
            },
        },
    }
}


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata(service: InferenceDep) -> Response:
    return json_response(service.server_metadata())


@health.get("/v2/health/live", response_model=ServerLive, openapi_extra=PUBLIC)
async def server_live() -> Response:
    return json_response(ServerLive(live=True))


@health.get("/v2/health/ready", response_model=ServerReady, openapi_extra=PUBLIC,
            responses={503: {"model": ServerReady, "description": "The manifest cannot be read."}})
async def server_ready(service: InferenceDep) -> Response:
    ready = service.server_ready()
    return json_response(ServerReady(ready=ready), 200 if ready else 503)


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses=NOT_FOUND)
async def model_metadata(name: ModelName, service: InferenceDep) -> Response:
    return json_response(service.metadata(name))


@router.get("/v2/models/{name}/versions/{version}", response_model=ModelMetadata, responses=NOT_FOUND)
async def model_version_metadata(name: ModelName, version: Version, service: InferenceDep) -> Response:
    return json_response(service.metadata(name, version))


READY = {503: {"model": ModelReady, "description": "The model's files cannot be loaded now."}, **NOT_FOUND}


@router.get("/v2/models/{name}/ready", response_model=ModelReady, responses=READY)
async def model_ready(name: ModelName, service: InferenceDep) -> Response:
    return _ready(service, name, None)


@router.get("/v2/models/{name}/versions/{version}/ready", response_model=ModelReady, responses=READY)
async def model_version_ready(name: ModelName, version: Version, service: InferenceDep) -> Response:
    return _ready(service, name, version)


@router.post("/v2/models/{name}/infer", response_model=InferenceResponse, openapi_extra=INFER_BODY,
             responses=NOT_FOUND)
async def infer(name: ModelName, request: Request, service: InferenceDep, key: RoutingKeyDep) -> Response:
    """Run the model on named tensors; `outputs` chooses which it answers (all by default)."""
    return _infer(service, name, None, request, await request.body(), key)


@router.post("/v2/models/{name}/versions/{version}/infer", response_model=InferenceResponse,
             openapi_extra=INFER_BODY, responses=NOT_FOUND)
async def infer_version(
    name: ModelName, version: Version, request: Request, service: InferenceDep, key: RoutingKeyDep
) -> Response:
    """The same, for one version (or alias) of the model."""
    return _infer(service, name, version, request, await request.body(), key)


def _ready(service: InferenceDep, name: str, version: str | None) -> Response:
    ready = service.ready(name, version)
    return json_response(ModelReady(name=name, ready=ready), 200 if ready else 503)


def _infer(service: InferenceDep, name: str, version: str | None, request: Request, body: bytes,
           key: str | None) -> Response:
    with observe_prediction(name):
        parsed, binary = _parse(request, _inflated(request, body))
        result = service.infer(name, version, parsed, binary, key)
        note_route(result.route)
        answer = json.dumps(result.body, separators=(",", ":"), allow_nan=False).encode()
        size = len(answer) + sum(len(chunk) for chunk in result.binary)
        limit = MAX_BINARY_ANSWER_BYTES if result.binary else MAX_JSON_ANSWER_BYTES
        if size > limit:
            raise BadInputError(
                f"the answer would be {size} bytes, more than Lambda can return ({limit}); "
                "ask for fewer outputs, a smaller batch, or binary outputs"
            )
    count_prediction(succeeded=True, inference_ms=result.inference_ms)
    if not result.binary:
        response = Response(answer, media_type=JSON)
    else:
        response = Response(
            b"".join([answer, *result.binary]),
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(answer))},
        )
    (shadow,) = service.shadows.collect([result.shadow])  # after the answer is written, within its bound
    record_shadow(result.route, shadow)
    return response


def _inflated(request: Request, body: bytes) -> bytes:
    """The body, unpacked if it came gzip- or deflate-compressed (Content-Encoding)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaTypeError(f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none")
    unpacker = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        inflated = unpacker.decompress(body, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise BadInputError(f"the body is not valid {encoding} data") from exc
    if unpacker.unconsumed_tail:
        raise PayloadTooLargeError(f"the body unpacks to more than {MAX_INFLATED_BYTES} bytes")
    return inflated


def _parse(request: Request, body: bytes) -> tuple[InferenceRequest, memoryview]:
    """The JSON request, and the binary tensors after it (Inference-Header-Content-Length)."""
    header = request.headers.get(HEADER_LENGTH)
    length = len(body)
    if header is not None:
        if not header.isdigit() or int(header) > len(body):
            raise BadInputError(f"{HEADER_LENGTH} must be the JSON part's length, at most {len(body)}")
        length = int(header)
    try:
        parsed = InferenceRequest.model_validate_json(body[:length])
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        raise BadInputError(describe_errors(errors()) if errors else "the request is not valid JSON") from exc
    return parsed, memoryview(body)[length:]
