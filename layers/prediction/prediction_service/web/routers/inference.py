"""Routes of the inference function: the Open Inference Protocol (v2), as KServe, Triton and
MLServer speak it, with Triton's binary tensor extension. Every error answers the
protocol's `{"error": "..."}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from prediction_service.protocols.v2.schemas import (
    HEADER_LENGTH,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ProtocolError,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from prediction_service.limits import LAMBDA_PAYLOAD_BYTES
from prediction_service.web.concurrency import compute
from prediction_service.web.deps import InferenceDep, RoutingKeyDep
from prediction_service.web.responses import JSON, json_response, started_at

HEALTH_PATHS = ("/v2/health/live", "/v2/health/ready")
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
    return json_response(await compute(service.metadata, name))  # may load a model


@router.get("/v2/models/{name}/versions/{version}", response_model=ModelMetadata, responses=NOT_FOUND)
async def model_version_metadata(name: ModelName, version: Version, service: InferenceDep) -> Response:
    return json_response(await compute(service.metadata, name, version))


READY = {503: {"model": ModelReady, "description": "The model's files cannot be loaded now."}, **NOT_FOUND}


@router.get("/v2/models/{name}/ready", response_model=ModelReady, responses=READY)
async def model_ready(name: ModelName, service: InferenceDep) -> Response:
    return await _ready(service, name, None)


@router.get("/v2/models/{name}/versions/{version}/ready", response_model=ModelReady, responses=READY)
async def model_version_ready(name: ModelName, version: Version, service: InferenceDep) -> Response:
    return await _ready(service, name, version)


@router.post("/v2/models/{name}/infer", response_model=InferenceResponse, openapi_extra=INFER_BODY,
             responses=NOT_FOUND)
async def infer(name: ModelName, request: Request, service: InferenceDep, key: RoutingKeyDep) -> Response:
    """Run the model on named tensors; `outputs` chooses which it answers (all by default)."""
    return await _infer(service, name, None, request, await request.body(), key)


@router.post("/v2/models/{name}/versions/{version}/infer", response_model=InferenceResponse,
             openapi_extra=INFER_BODY, responses=NOT_FOUND)
async def infer_version(
    name: ModelName, version: Version, request: Request, service: InferenceDep, key: RoutingKeyDep
) -> Response:
    """The same, for one version (or alias) of the model."""
    return await _infer(service, name, version, request, await request.body(), key)


async def _ready(service: InferenceDep, name: str, version: str | None) -> Response:
    ready = await compute(service.ready, name, version)  # may load a model
    return json_response(ModelReady(name=name, ready=ready), 200 if ready else 503)


async def _infer(service: InferenceDep, name: str, version: str | None, request: Request, body: bytes,
           key: str | None) -> Response:
    headers = {k: request.headers[k] for k in ("content-encoding", HEADER_LENGTH) if k in request.headers}
    encoded = (await compute(service.infer, name, version, body, headers, key, started_at(request.scope))).value
    if not encoded.binary:
        return Response(encoded.json, media_type=JSON)
    return Response(
        b"".join([encoded.json, *encoded.binary]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(encoded.json))},
    )
