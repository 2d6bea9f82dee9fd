"""OpenAI's embeddings API, as its reference defines the bodies: `POST /embeddings` and
`GET /models`, with OpenAI's error body. Served under `/openai/v1`, so a client's
`base_url` is `<API URL>/openai/v1`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from prediction_service.catalog.manifest import NAME, VERSION
from prediction_service.errors import PredictionError
from prediction_service.protocols.schema import Schema

MAX_INPUTS = 2048  # OpenAI's own limit on one request's array of inputs
# `name` or `name:version` (a version or an alias: `all-minilm-l6-v2:stable`)
MODEL_ID = f"{NAME[:-1]}(:{VERSION[1:-1]})?$"
MODEL_ID_LENGTH = 97
TOKEN_IDS = ("input holds token ids; this API tokenizes with each model's own tokenizer, so send the "
             "texts as strings (LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))")


class EmbeddingRequest(Schema):
    """Body of `POST /openai/v1/embeddings`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"model": "all-minilm-l6-v2", "input": ["A man is eating food.", "A man rides a horse."]}]})

    input: StrictStr | list[StrictStr] = Field(
        description=f"a text, or an array of up to {MAX_INPUTS} texts (OpenAI's limit; one request here embeds at "
        "most 64: 413 beyond), none empty (arrays of token ids are refused: they come from another tokenizer)")
    model: StrictStr = Field(pattern=MODEL_ID, max_length=MODEL_ID_LENGTH, description=(
        "a text model's name as GET /openai/v1/models lists it, or `name:version` for one of its versions or "
        "aliases (`all-minilm-l6-v2:1`)"), examples=["all-minilm-l6-v2"])
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="`float`: arrays of numbers; `base64`: each embedding's little-endian "
        "float32 bytes, base64-encoded (the openai client asks for it unless told otherwise)")
    dimensions: int | None = Field(
        default=None, strict=True, gt=0, le=65536, description="the model's own size, or one of the shorter "
        "sizes its manifest entry lists as `matryoshka_dimensions`")
    user: StrictStr | None = Field(default=None, max_length=256, description=(
        "the caller's end user: the routing key, so one user stays on one version while a rollout's weights "
        "stay the same (as the X-Routing-Key header)"))
    truncate: StrictBool = Field(default=False, description=(
        "not in OpenAI's API: embed the first tokens of an input longer than the model reads, instead of "
        "refusing it (the answer's X-Truncated-Inputs header lists the inputs cut)"))

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        """The refusals OpenAI's reference implies, each with a message that says what to send."""
        if isinstance(value, str):
            if not value:
                raise PydanticCustomError("empty_input", "input must not be an empty string")
            return value
        if not isinstance(value, list):
            raise PydanticCustomError("input_type", "input must be a string or an array of strings")
        if not value:
            raise PydanticCustomError("empty_input", "input must not be an empty array")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value) or all(
                isinstance(v, list) for v in value):
            raise PydanticCustomError("token_ids", TOKEN_IDS)
        for index, text in enumerate(value):
            if not isinstance(text, str):
                raise PydanticCustomError("input_type", "input[{index}] must be a string", {"index": index})
            if not text:
                raise PydanticCustomError("empty_input", "input[{index}] is an empty string", {"index": index})
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="numbers, or base64 of little-endian float32")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="the model's own tokens (word pieces) over every input")
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="always 0: the manifest keeps no creation time")
    owned_by: str


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="`invalid_request_error` for the caller's mistakes, `server_error` for ours")
    param: str | None = Field(description="the request field at fault, when one is")
    code: str | None = Field(description="a machine-readable reason, when there is one")


class OpenAIError(BaseModel):
    """OpenAI's error body; a server error's message names the request id the logs keep."""

    error: OpenAIErrorDetail


# Reasons that have no code of their own, by status (OpenAI's names where it has them).
_CODES = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
          415: "unsupported_media_type"}


def error_body(error: PredictionError, request_id: str | None = None, **_: Any) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}`, as OpenAI answers."""
    message = error.message
    server = error.http_status >= 500
    if server and request_id:
        message = f"{message} (request id {request_id})"
    return {"error": {"message": message, "type": "server_error" if server else "invalid_request_error",
                      "param": error.param, "code": error.code or _CODES.get(error.http_status)}}
