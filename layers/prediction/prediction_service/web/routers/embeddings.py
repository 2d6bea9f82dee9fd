"""Routes of the embeddings function: OpenAI's embeddings API under /openai/v1, so that the
openai client, LangChain and LlamaIndex reach the text models with `base_url=<API URL>/openai/v1`
and `api_key=<token>`. Every error answers OpenAI's `{"error": {...}}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from prediction_service.limits import MAX_BODY_BYTES
from prediction_service.protocols.openai.schemas import (
    MODEL_ID,
    MODEL_ID_LENGTH,
    EmbeddingRequest,
    EmbeddingResponse,
    OpenAIError,
    OpenAIModel,
    OpenAIModelList,
)
from prediction_service.web.concurrency import compute
from prediction_service.web.deps import EmbeddingsDep, RoutingKeyDep, StartedDep
from prediction_service.web.responses import JSON, json_response

PREFIX = "/openai/v1"
VERSION_HEADER = "X-Model-Version"  # the version that answered
TRUNCATED_HEADER = "X-Truncated-Inputs"  # with "truncate": true, the inputs cut to the model's length
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OpenAIError, "description": "The request is invalid; `error.message` says why, `error.param` where."},
    401: {"model": OpenAIError, "description": "No valid `Authorization: Bearer <token>` header (the client's api_key)."},
    413: {"model": OpenAIError, "description": f"The body is larger than {MAX_BODY_BYTES} bytes, or holds more "
          "texts than one request may embed."},
    415: {"model": OpenAIError, "description": "The body is not JSON."},
    500: {"model": OpenAIError, "description": "The server failed; `error.message` names the request id it logged."},
}
NOT_FOUND = {404: {"model": OpenAIError, "description": "No model (or version) of that name."}}
router = APIRouter(tags=["OpenAI-compatible embeddings"], responses=ERRORS)
ModelId = Annotated[str, Path(pattern=MODEL_ID, max_length=MODEL_ID_LENGTH, description="a text model's name, or "
                              "`name:version`", examples=["all-minilm-l6-v2"])]


@router.post(f"{PREFIX}/embeddings", response_model=EmbeddingResponse, responses={
    **NOT_FOUND, 200: {"headers": {
        VERSION_HEADER: {"description": "the model version that answered", "schema": {"type": "string"}},
        TRUNCATED_HEADER: {"description": "with `truncate`: the indices of the inputs cut to the model's length",
                           "schema": {"type": "string"}}}}})
async def create_embeddings(body: EmbeddingRequest, service: EmbeddingsDep, started: StartedDep,
                            key: RoutingKeyDep) -> Response:
    """Embed `input` with a text model, as OpenAI's `POST /v1/embeddings` does."""
    answer = await compute(service.embed, body, key, started)
    headers = {VERSION_HEADER: answer.route.spec.version}
    if answer.value.truncated:
        headers[TRUNCATED_HEADER] = ",".join(map(str, answer.value.truncated))
    return Response(answer.value.json, media_type=JSON, headers=headers)


@router.get(f"{PREFIX}/models", response_model=OpenAIModelList)
async def list_models(service: EmbeddingsDep) -> Response:
    """The text models (the only ones that make embeddings)."""
    return json_response(service.list_models())


@router.get(f"{PREFIX}/models/{{model}}", response_model=OpenAIModel, responses=NOT_FOUND)
async def retrieve_model(model: ModelId, service: EmbeddingsDep) -> Response:
    """One text model; another kind of model is a 400 that names its kind."""
    return json_response(service.retrieve_model(model))
