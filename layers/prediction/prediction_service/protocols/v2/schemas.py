"""Bodies of the Open Inference Protocol ("v2", kserve/open-inference-protocol,
specification/protocol/inference_rest.md), as pydantic models: what the v2 routes take and
answer, and what the OpenAPI document shows. Plain pydantic, no numpy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt

from prediction_service.protocols.schema import Schema

PLATFORM = "onnx_onnxv1"
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"
]
MAX_TENSORS = 64  # inputs or outputs named in one request
MAX_DIMENSION = 2**31  # one dimension of a shape (onnxruntime's int64 dims, kept within what JSON clients send)
# Triton's binary extension: the length of the JSON part, before the tensors' bytes.
HEADER_LENGTH = "inference-header-content-length"


class Parameters(Schema):
    """Key/value parameters. Those of Triton's binary tensor extension are typed; others pass."""

    model_config = ConfigDict(extra="allow")

    binary_data_size: StrictInt | None = Field(default=None, ge=0, description="bytes of this tensor after the JSON")
    binary_data: StrictBool | None = Field(default=None, description="answer this output as raw bytes")
    binary_data_output: StrictBool | None = Field(default=None, description="answer every output as raw bytes")


class RequestInput(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    shape: list[Annotated[StrictInt, Field(ge=0, le=MAX_DIMENSION)]] = Field(
        max_length=16, description=f"each dimension from 0 to {MAX_DIMENSION}")
    datatype: str = Field(description="one of " + ", ".join(Datatype.__args__))  # type: ignore[attr-defined]
    parameters: Parameters | None = None
    data: Any = Field(default=None, description="row-major values, flat or nested; absent with binary_data_size")


class RequestOutput(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    parameters: Parameters | None = None


class InferenceRequest(Schema):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1.5, 30, 2, 4]}],
                    "outputs": [{"name": "probabilities"}],
                }
            ]
        },
    )

    id: str | None = Field(default=None, max_length=256)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=MAX_TENSORS)
    outputs: list[RequestOutput] | None = Field(
        default=None, min_length=1, max_length=MAX_TENSORS, description="the outputs to answer (all when absent)")


class ResponseOutput(Schema):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(Schema):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(Schema):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dynamic dimension")


class ModelMetadata(Schema):
    name: str
    versions: list[str]
    platform: str = PLATFORM
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(Schema):
    name: str
    version: str
    extensions: list[str]


class ServerLive(Schema):
    live: bool


class ServerReady(Schema):
    ready: bool


class ModelReady(Schema):
    name: str
    ready: bool


class ProtocolError(Schema):
    """The protocol's error body, for every refused or failed v2 request."""

    error: str
