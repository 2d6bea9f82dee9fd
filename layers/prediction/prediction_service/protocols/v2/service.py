"""The Open Inference Protocol (v2) over the data plane: metadata read from the runtime,
readiness, and inference on named tensors in JSON or in Triton's binary extension.

Every mistake a caller can make raises BadInputError (400) or a 404; only the server's
own failures (a model that cannot load) are 500s.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from prediction_service import __version__
from prediction_service.catalog.routing import Route
from prediction_service.dataplane.dataplane import DataPlane
from prediction_service.dataplane.types import Answer, Inference, InferRequest, Inputs, Served
from prediction_service.errors import (
    BadInputError,
    ModelNotFoundError,
    PayloadTooLargeError,
    PredictionError,
    UnsupportedMediaTypeError,
    VersionNotFoundError,
    describe_errors,
)
from prediction_service.protocols.v2.schemas import (
    HEADER_LENGTH,
    InferenceRequest,
    ModelMetadata,
    Parameters,
    RequestInput,
    ServerMetadata,
    TensorMetadata,
)
from prediction_service.protocols.v2.tensors import DTYPES, from_binary, from_json, to_binary, to_json
from prediction_service.runtime.base import Runtime, TensorSpec, describe
from prediction_service.limits import (
    LAMBDA_PAYLOAD_BYTES,
    MAX_BINARY_ANSWER_BYTES,
    MB,
    MAX_JSON_ANSWER_BYTES,
    max_values,
    request_memory_bytes,
)

SERVER_NAME = "onnx-prediction-api"
EXTENSIONS = ["binary_tensor_data"]
PRESCAN_BYTES = 256 * 1024  # bodies above this are bounded by their declared shapes before they are parsed
# `"shape": [d, ...]` with dimensions of at most 10 digits (longer ones are refused once parsed)
_DECLARED_SHAPE = re.compile(rb'"shape"\s*:\s*\[((?:\s*[0-9]{1,10}\s*,)*\s*[0-9]{1,10}\s*)\]')
_LEAST_JSON_BYTES = {"FP16": 4, "FP32": 4, "FP64": 4, "BYTES": 3, "BOOL": 5}  # else an integer: `0,`
_LENGTH_DIGITS = re.compile(f"[0-9]{{1,{len(str(LAMBDA_PAYLOAD_BYTES))}}}")


@dataclass(frozen=True)
class Encoded:
    """An infer answer: its JSON part, and the binary outputs' bytes that follow it (if any)."""

    json: bytes
    binary: list[bytes]


class InferenceService:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self.registry = dataplane.registry

    @staticmethod
    def server_metadata() -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)

    def server_ready(self) -> bool:
        """Ready when the manifest can be read (models load on their first request)."""
        try:
            self.registry.manifest()
        except PredictionError:
            return False
        return True

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        """The model's versions, and the inputs and outputs of the version (or alias) named, else of
        the one its name serves most."""
        manifest = self.registry.manifest()
        runtime = self.registry.runtime(Route(manifest.get(name, version), manifest=manifest))
        return ModelMetadata(name=name, versions=[v.version for v in manifest.versions(name)],
                             inputs=_metadata(runtime.inputs), outputs=_metadata(runtime.outputs))

    def ready(self, name: str, version: str | None = None) -> bool:
        """Whether the files of every version that may answer load and verify (loading them if
        needed): a probe that answers true can be followed by an inference that pays no download."""
        try:
            for entry in self.registry.manifest().reachable(name, version):
                self.registry.load(entry, tables=False)
        except (ModelNotFoundError, VersionNotFoundError):
            raise
        except PredictionError:
            return False
        return True

    def infer(self, name: str, version: str | None, body: bytes, headers: dict[str, str],
              routing_key: str | None = None, started: float | None = None) -> Answer[Encoded]:
        """Run the model on the request's tensors, with the data plane's bookkeeping."""
        call = _Call(inflate(body, headers.get("content-encoding")), headers.get(HEADER_LENGTH))
        request = InferRequest(name, call.decode, version=version, routing_key=routing_key,
                               **({"started": started} if started is not None else {}))
        return self.dataplane.serve(request, call.encode)


class _Call:
    """One infer request: decoded against the runtime that answers, then its answer encoded."""

    def __init__(self, body: bytes, header_length: str | None) -> None:
        self.body = body
        self.header_length = header_length
        self.wanted: list[tuple[TensorSpec, bool]] = []

    def decode(self, served: Served) -> Inputs:
        if len(self.body) > PRESCAN_BYTES:  # a large body: its declared shapes bound it before it is parsed
            _check_declared_shapes(self.body, served.runtime)
        self.request, self.binary = parse(self.body, self.header_length)
        _check_size(self.request)
        self.wanted = _outputs(served.runtime, self.request)
        _check_answer_size(self.request, self.wanted)
        feeds = _feeds(served.runtime, self.request, self.binary)
        return Inputs(feeds, [spec.name for spec, _ in self.wanted])

    def encode(self, result: Inference) -> Encoded:
        outputs, chunks = [], []
        for (output, as_binary), array in zip(self.wanted, result.arrays, strict=True):
            array = _as_datatype(np.asarray(array), output)
            entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": list(array.shape)}
            if as_binary:
                raw = to_binary(array)
                entry["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            else:
                entry["data"] = to_json(output.name, array)
            outputs.append(entry)
        body: dict[str, Any] = {"model_name": result.route.name, "model_version": result.route.version}
        if self.request.id is not None:
            body["id"] = self.request.id
        body["outputs"] = outputs
        answer = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        size = len(answer) + sum(len(chunk) for chunk in chunks)
        limit = MAX_BINARY_ANSWER_BYTES if chunks else MAX_JSON_ANSWER_BYTES
        if size > limit:
            raise BadInputError(
                f"the answer would be {size} bytes, more than Lambda can return ({limit}); "
                "ask for fewer outputs, a smaller batch, or binary outputs"
            )
        return Encoded(answer, chunks)


def inflate(body: bytes, encoding: str | None) -> bytes:
    """The body, unpacked if it came gzip- or deflate-compressed (Content-Encoding)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaTypeError(f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none")
    unpacker = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:  # stops at the cap: a small body that unpacks to gigabytes costs at most the cap
        inflated = unpacker.decompress(body, LAMBDA_PAYLOAD_BYTES + 1)
    except zlib.error as exc:
        raise BadInputError(f"the body is not valid {encoding} data") from exc
    if len(inflated) > LAMBDA_PAYLOAD_BYTES:
        raise PayloadTooLargeError(f"the body unpacks to more than {LAMBDA_PAYLOAD_BYTES} bytes, Lambda's payload "
                                   "limit; send a smaller request")
    if not unpacker.eof:
        raise BadInputError(f"the body is not complete {encoding} data")
    return inflated


def parse(body: bytes, header_length: str | None) -> tuple[InferenceRequest, memoryview]:
    """The JSON request, and the binary tensors after it (Inference-Header-Content-Length)."""
    length = len(body)
    if header_length is not None:
        # ASCII digits only (str.isdigit() takes "²", which int() refuses), at most as many as the
        # payload limit has (int() refuses a number of 4,300 digits or more)
        if not _LENGTH_DIGITS.fullmatch(header_length) or int(header_length) > len(body):
            raise BadInputError(f"{HEADER_LENGTH} must be the JSON part's length in digits, at most {len(body)}")
        length = int(header_length)
    try:
        parsed = InferenceRequest.model_validate_json(body[:length])
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        raise BadInputError(describe_errors(errors()) if errors else "the request is not valid JSON") from exc
    return parsed, memoryview(body)[length:]


def _check_declared_shapes(body: bytes, runtime: Runtime) -> None:
    """The bounds a large body can be refused by before its values are parsed (parsing 6 MB of JSON
    takes a tenth of a second and a hundred MB): the shapes it declares hold too many values, or
    even its cheapest output, in its cheapest encoding, cannot fit Lambda's payload. Read from the
    raw bytes; a shape this scan misses is checked once the body is parsed, as every shape is."""
    shapes = [[int(d) for d in match.group(1).split(b",")] for match in _DECLARED_SHAPE.finditer(body)]
    if not shapes:
        return
    values = sum(math.prod(shape) for shape in shapes)
    if values > max_values():
        raise PayloadTooLargeError(
            f"the inputs' shapes hold {values} values; one request may hold at most {max_values()} "
            f"({request_memory_bytes() // MB} MB of this function's memory): send fewer rows per request")
    batch = shapes[0][0] if shapes[0] else 1
    outputs = [spec for spec in runtime.outputs if spec.datatype is not None]
    if not outputs:
        return
    sizes = [(math.prod(batch if d < 0 else d for d in spec.shape) if spec.shape else 1, spec) for spec in outputs]
    json_sizes = [values * _LEAST_JSON_BYTES.get(spec.datatype or "", 2) for values, spec in sizes]
    binary_sizes = [values * (DTYPES[spec.datatype or "UINT8"].itemsize if spec.datatype != "BYTES" else 4)
                    for values, spec in sizes]
    if b'"outputs"' not in body and b'"binary_data' not in body:
        least = sum(json_sizes)  # every output, in JSON: what such a request asks
        fits = least <= MAX_JSON_ANSWER_BYTES
    else:  # the outputs it names are known once parsed: could its cheapest one fit, in either encoding?
        least = min(min(json_sizes), min(binary_sizes))
        fits = min(json_sizes) <= MAX_JSON_ANSWER_BYTES or min(binary_sizes) <= MAX_BINARY_ANSWER_BYTES
    if not fits:
        raise PayloadTooLargeError(
            f"the answer would take at least {least} bytes, more than Lambda can return "
            f"({MAX_JSON_ANSWER_BYTES}); ask for fewer outputs or send fewer rows per request")


def _check_size(request: InferenceRequest) -> None:
    """Refuse, before any value is decoded, a request whose shapes hold more values than one request
    may (limits.max_values, from the function's memory)."""
    values = sum(math.prod(given.shape) for given in request.inputs)
    if values > max_values():
        raise PayloadTooLargeError(
            f"the inputs' shapes hold {values} values; one request may hold at most {max_values()} "
            f"({request_memory_bytes() // MB} MB of this function's memory): send fewer rows per request")


def _check_answer_size(request: InferenceRequest, wanted: list[tuple[TensorSpec, bool]]) -> None:
    """Refuse, before the model runs, a request whose answer cannot fit Lambda's payload: each output's
    fixed dimensions times the request's batch (its first input's first dimension) for the dynamic
    ones, at the fewest bytes a value can take (its size in binary; in JSON `0,` for an integer,
    `0.0,` for a float, `"",` for a string, `true,` for a boolean)."""
    batch = request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 1
    least = 0
    for spec, as_binary in wanted:
        values = math.prod(batch if d < 0 else d for d in spec.shape) if spec.shape else 1
        least += values * (DTYPES[spec.datatype].itemsize if as_binary and spec.datatype != "BYTES"
                           else _LEAST_JSON_BYTES.get(spec.datatype or "", 2))
    limit = MAX_BINARY_ANSWER_BYTES if any(as_binary for _, as_binary in wanted) else MAX_JSON_ANSWER_BYTES
    if least > limit:
        raise PayloadTooLargeError(
            f"the answer would take at least {least} bytes, more than Lambda can return ({limit}); "
            "ask for fewer outputs or send fewer rows per request")


def _as_datatype(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """An output in the datatype the metadata gives it (an ensemble combines in float64)."""
    dtype = DTYPES[spec.datatype] if spec.datatype else array.dtype
    return array if array.dtype == dtype or dtype == np.dtype(object) else array.astype(dtype)


def _metadata(specs: tuple[TensorSpec, ...]) -> list[TensorMetadata]:
    return [TensorMetadata(name=s.name, datatype=s.datatype or f"UNSUPPORTED:{s.onnx_type}", shape=list(s.shape))
            for s in specs]


def _feeds(runtime: Runtime, request: InferenceRequest, binary: memoryview) -> dict[str, np.ndarray]:
    """The request's inputs as arrays, each checked against the runtime's input of that name."""
    graph = {spec.name: spec for spec in runtime.inputs}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for given in request.inputs:
        spec = _named(graph, given.name, "input")
        if given.name in feeds:
            raise BadInputError(f"input {given.name!r} is given twice")
        _check_signature(given, spec)
        size = (given.parameters or Parameters()).binary_data_size
        if size is not None:
            if offset + size > len(binary):
                raise BadInputError(f"input {given.name!r}: binary_data_size {size} runs past the end of the body")
            feeds[given.name] = from_binary(given.name, given.datatype, given.shape, binary[offset : offset + size])
            offset += size
        elif given.data is None:
            raise BadInputError(f"input {given.name!r} has no data (and no binary_data_size)")
        else:
            feeds[given.name] = from_json(given.name, given.datatype, given.shape, given.data)
    if offset != len(binary):
        raise BadInputError(f"the body has {len(binary) - offset} bytes after the tensors its inputs describe")
    missing = [spec.name for spec in runtime.inputs if spec.name not in feeds]
    if missing:
        raise BadInputError(f"missing input(s) {', '.join(map(repr, missing))}; "
                            f"the model takes: {describe(runtime.inputs)}")
    return feeds


def _check_signature(given: RequestInput, spec: TensorSpec) -> None:
    if given.datatype not in DTYPES:
        raise BadInputError(f"input {given.name!r}: unknown datatype {given.datatype!r}; "
                            f"use one of {', '.join(DTYPES)}")
    if spec.datatype is None:
        raise BadInputError(f"input {given.name!r} is of type {spec.onnx_type}, which the protocol cannot carry")
    if given.datatype != spec.datatype:
        raise BadInputError(f"input {given.name!r} is {spec.datatype}, not {given.datatype}")
    if any(d < 0 for d in given.shape):
        raise BadInputError(f"input {given.name!r}: shape dimensions must be >= 0")
    if len(given.shape) != len(spec.shape) or any(
        w not in (-1, g) for g, w in zip(given.shape, spec.shape, strict=True)
    ):
        raise BadInputError(f"input {given.name!r} has shape {list(spec.shape)} (-1: any size), not {given.shape}")


def _outputs(runtime: Runtime, request: InferenceRequest) -> list[tuple[TensorSpec, bool]]:
    """The outputs to answer (all the protocol can carry, unless the request names some), each
    with whether it goes as raw bytes."""
    default_binary = bool(request.parameters and request.parameters.binary_data_output)
    graph = {spec.name: spec for spec in runtime.outputs}
    if request.outputs is None:
        return [(spec, default_binary) for spec in runtime.outputs if spec.datatype is not None]
    chosen: list[tuple[TensorSpec, bool]] = []
    for wanted in request.outputs:
        spec = _named(graph, wanted.name, "output")
        if spec.datatype is None:
            raise BadInputError(f"output {wanted.name!r} is of type {spec.onnx_type}, which the protocol cannot carry")
        if any(spec is c for c, _ in chosen):
            raise BadInputError(f"output {wanted.name!r} is asked for twice")
        flag = wanted.parameters.binary_data if wanted.parameters else None
        chosen.append((spec, default_binary if flag is None else flag))
    return chosen


def _named(graph: dict[str, TensorSpec], name: str, what: str) -> TensorSpec:
    """The runtime's input or output (`what`) called `name`; a 400 naming the ones it has."""
    spec = graph.get(name)
    if spec is None:
        raise BadInputError(f"the model has no {what} {name!r}; its {what}s: {describe(list(graph.values()))}")
    return spec
