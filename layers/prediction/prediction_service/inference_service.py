"""Any ONNX model through the Open Inference Protocol (v2): metadata read from the graph,
readiness, and inference on named tensors in JSON or in Triton's binary extension.

Every mistake a caller can make raises BadInputError (400) or a 404; only the server's
own failures (a model that cannot load) are 500s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from . import __version__
from .errors import BadInputError, PredictionError, VersionNotFoundError
from .inference import OnnxModel, TensorSpec
from .manifest import ModelSpec
from .protocol import InferenceRequest, ModelMetadata, Parameters, RequestInput, ServerMetadata, TensorMetadata
from .registry import ModelRegistry
from .tensors import DTYPES, from_binary, from_json, to_binary, to_json
from .text import TextEncoder

SERVER_NAME = "onnx-prediction-api"
EXTENSIONS = ["binary_tensor_data"]
# onnxruntime's errors for inputs the graph cannot compute on (sizes that disagree between
# inputs, values an operator refuses): the caller's data, so 400.
_RUN_ERRORS = (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail,
               ort.capi.onnxruntime_pybind11_state.RuntimeException)


@dataclass(frozen=True)
class Inference:
    """An answer: the JSON part (`outputs` without the binary ones' data), the binary
    outputs' bytes in order, and the milliseconds spent in the model itself."""

    body: dict[str, Any]
    binary: list[bytes]
    inference_ms: float


class InferenceService:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

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
        spec = self._spec(name, version)
        model = self._served(spec)
        return ModelMetadata(
            name=spec.name, versions=[spec.version], inputs=_metadata(model.inputs), outputs=_metadata(model.outputs)
        )

    def ready(self, name: str, version: str | None = None) -> bool:
        """Whether the model's files load and verify (loading them if needed): a probe that
        answers true can be followed by an inference that pays no download."""
        spec = self._spec(name, version)
        try:
            self.registry.load(spec)
        except PredictionError:
            return False
        return True

    def infer(self, name: str, version: str | None, request: InferenceRequest, binary: memoryview) -> Inference:
        spec = self._spec(name, version)
        model = self._served(spec)
        feeds = _feeds(model, request, binary)
        wanted = _outputs(model, request)
        run = model.run if isinstance(model, TextEncoder) else model.session.run
        started = time.perf_counter()
        try:
            arrays = run([spec_.name for spec_, _ in wanted], feeds)
        except _RUN_ERRORS as exc:
            reason = str(exc).splitlines()[0][:300]
            raise BadInputError(f"the model could not run on these inputs: {reason}", model_name=spec.name) from exc
        inference_ms = (time.perf_counter() - started) * 1000
        outputs, chunks = [], []
        for (output, as_binary), array in zip(wanted, arrays, strict=True):
            array = np.asarray(array)
            entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": list(array.shape)}
            if as_binary:
                raw = to_binary(array)
                entry["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            else:
                entry["data"] = to_json(output.name, array)
            outputs.append(entry)
        body: dict[str, Any] = {"model_name": spec.name, "model_version": spec.version}
        if request.id is not None:
            body["id"] = request.id
        body["outputs"] = outputs
        return Inference(body, chunks, inference_ms)

    def _served(self, spec: ModelSpec) -> OnnxModel | TextEncoder:
        """The model as the protocol sees it: its graph, or for a text model the tokenizer in front
        of it (text in, embeddings out)."""
        if not self.registry.files_in_memory(spec, tables=False):
            self.registry.load(spec, tables=False)  # the model and its tokenizer at once (no data tables)
        model = self.registry.model(spec)
        if spec.kind == "text-embedding":
            return TextEncoder(model, self.registry.tokenizer(spec), spec.max_tokens)
        return model

    def _spec(self, name: str, version: str | None) -> ModelSpec:
        spec = self.registry.spec(name)
        if version is not None and version != spec.version:
            raise VersionNotFoundError(name, version, [spec.version])
        return spec


def _metadata(specs: tuple[TensorSpec, ...]) -> list[TensorMetadata]:
    return [TensorMetadata(name=s.name, datatype=s.datatype or f"UNSUPPORTED:{s.onnx_type}", shape=list(s.shape))
            for s in specs]


def _feeds(model: OnnxModel | TextEncoder, request: InferenceRequest, binary: memoryview) -> dict[str, np.ndarray]:
    """The request's inputs as arrays, each checked against the graph's input of that name."""
    graph = {spec.name: spec for spec in model.inputs}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for given in request.inputs:
        spec = graph.get(given.name)
        if spec is None:
            raise BadInputError(f"the model has no input {given.name!r}; its inputs: {_names(model.inputs)}")
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
    missing = [spec.name for spec in model.inputs if spec.name not in feeds]
    if missing:
        raise BadInputError(f"missing input(s) {', '.join(map(repr, missing))}; the model takes: {_names(model.inputs)}")
    return feeds


def _check_signature(given: RequestInput, spec: TensorSpec) -> None:
    if given.datatype not in DTYPES:
        raise BadInputError(f"input {given.name!r}: unknown datatype {given.datatype!r}; use one of {', '.join(DTYPES)}")
    if spec.datatype is None:
        raise BadInputError(f"input {given.name!r} is of type {spec.onnx_type}, which the protocol cannot carry")
    if given.datatype != spec.datatype:
        raise BadInputError(f"input {given.name!r} is {spec.datatype}, not {given.datatype}")
    if any(d < 0 for d in given.shape):
        raise BadInputError(f"input {given.name!r}: shape dimensions must be >= 0")
    if len(given.shape) != len(spec.shape) or any(w not in (-1, g) for g, w in zip(given.shape, spec.shape)):
        raise BadInputError(f"input {given.name!r} has shape {list(spec.shape)} (-1: any size), not {given.shape}")


def _outputs(model: OnnxModel | TextEncoder, request: InferenceRequest) -> list[tuple[TensorSpec, bool]]:
    """The outputs to answer (all the protocol can carry, unless the request names some), each
    with whether it goes as raw bytes."""
    default_binary = bool(request.parameters and request.parameters.binary_data_output)
    graph = {spec.name: spec for spec in model.outputs}
    if request.outputs is None:
        return [(spec, default_binary) for spec in model.outputs if spec.datatype is not None]
    chosen: list[tuple[TensorSpec, bool]] = []
    for wanted in request.outputs:
        spec = graph.get(wanted.name)
        if spec is None:
            raise BadInputError(f"the model has no output {wanted.name!r}; its outputs: {_names(model.outputs)}")
        if spec.datatype is None:
            raise BadInputError(f"output {wanted.name!r} is of type {spec.onnx_type}, which the protocol cannot carry")
        if any(spec is c for c, _ in chosen):
            raise BadInputError(f"output {wanted.name!r} is asked for twice")
        flag = wanted.parameters.binary_data if wanted.parameters else None
        chosen.append((spec, default_binary if flag is None else flag))
    return chosen


def _names(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{s.name} ({s.datatype or s.onnx_type} {list(s.shape)})" for s in specs)
