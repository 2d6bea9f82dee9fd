"""Dependencies the routes share, each declared once as an `Annotated` alias.

The composition root is imported on first use, not at import: the docs function builds
its OpenAPI document from these routers and must not load onnxruntime, numpy or boto3.
The dependencies are `async` on purpose: FastAPI runs plain `def` dependencies in a
worker thread, a hop that costs more than the whole prediction on the warm path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Query, Request

from prediction_service.web.responses import request_id, started_at

if TYPE_CHECKING:
    from prediction_service.protocols.openai.service import EmbeddingsService
    from prediction_service.protocols.v1.runs import BlockRunner
    from prediction_service.protocols.v1.service import PredictionService
    from prediction_service.protocols.v2.service import InferenceService


async def get_service() -> PredictionService:
    from prediction_service.composition import components

    return components().service


async def get_inference() -> InferenceService:
    from prediction_service.composition import components

    return components().inference


async def get_embeddings() -> EmbeddingsService:
    from prediction_service.composition import components

    return components().embeddings


async def get_runner() -> BlockRunner:
    from prediction_service.composition import components

    return components().runner


async def get_routing_key(
    key: Annotated[str | None, Header(alias="X-Routing-Key", max_length=256, description=(
        "sticky routing: requests with one key always reach the same version of a weighted alias"))] = None,
) -> str | None:
    return key or None


async def get_started(request: Request) -> float:
    return started_at(request.scope)


async def get_request_id(request: Request) -> str:
    return request_id(request.scope)


ServiceDep = Annotated["PredictionService", Depends(get_service)]
RunnerDep = Annotated["BlockRunner", Depends(get_runner)]
InferenceDep = Annotated["InferenceService", Depends(get_inference)]
EmbeddingsDep = Annotated["EmbeddingsService", Depends(get_embeddings)]
StartedDep = Annotated[float, Depends(get_started)]
RoutingKeyDep = Annotated[str | None, Depends(get_routing_key)]
VersionQuery = Annotated[str | None, Query(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$", max_length=32,
    description="a version or alias of the model (default: what its name serves)", examples=["1.0"])]
RequestIdDep = Annotated[str, Depends(get_request_id)]
