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
from .ensembles import soft_vote, weighted_mean
from .errors import (
    BadInputError,
    IntegrityError,
    ModelLoadError,
    ModelNotFoundError,
    PredictionError,
    VersionNotFoundError,
)
from .inference import OnnxModel, TensorSpec, outputs_agree
from .manifest import Manifest, ModelSpec
from .protocol import InferenceRequest, ModelMetadata, Parameters, RequestInput, ServerMetadata, TensorMetadata
from .registry import ModelRegistry
from .routing import Route, route
from .shadows import Shadow, ShadowPool, ShadowRun
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
    """An answer: the JSON part (`outputs` without the binary ones' data), the binary outputs'
    bytes in order, the milliseconds spent in the model itself, the route that chose the
    version, and its shadow if that version has one (running: the edge collects it)."""

    body: dict[str, Any]
    binary: list[bytes]
    inference_ms: float
    route: Route
    shadow: Shadow | None = None


class EnsembleModel:
    """An ensemble as the protocol sees it: its first member's inputs and outputs. A run runs every
    member on the same tensors and combines their outputs as /v1 does (ensembles.py): forecasters'
    outputs by their weighted mean, classifiers' `probabilities` by the soft vote, whose largest
    gives `label`. Members whose graphs take or give other tensors are refused."""

    def __init__(self, name: str, members: list[OnnxModel], weights: list[float], classifier: bool) -> None:
        first = members[0]
        for member in members[1:]:
            if (member.inputs, member.outputs) != (first.inputs, first.outputs):
                raise IntegrityError(f"its members' graphs take or give different tensors: {_names(first.inputs)} "
                                     f"against {_names(member.inputs)}")
        self.name = name
        self.inputs, self.outputs = first.inputs, first.outputs
        self._members, self._weights, self._classifier = members, weights, classifier

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        answers = [dict(zip([o.name for o in m.outputs], m.session.run(None, feeds), strict=True))
                   for m in self._members]
        if self._classifier:
            labels, probabilities = soft_vote([a["probabilities"] for a in answers], self._weights)
            combined = {"label": labels, "probabilities": probabilities.astype(np.float32)}
        else:
            first = answers[0]
            combined = {o.name: weighted_mean([a[o.name] for a in answers], self._weights).astype(first[o.name].dtype)
                        for o in self.outputs}
        return [combined[name] for name in names]


Served = OnnxModel | TextEncoder | EnsembleModel


class InferenceService:
    def __init__(self, registry: ModelRegistry, shadows: ShadowPool) -> None:
        self.registry = registry
        self.shadows = shadows

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
        spec = manifest.get(name, version)
        model = self._served(spec, manifest)
        return ModelMetadata(name=spec.name, versions=[v.version for v in manifest.versions(name)],
                             inputs=_metadata(model.inputs), outputs=_metadata(model.outputs))

    def ready(self, name: str, version: str | None = None) -> bool:
        """Whether the files of every version that may answer load and verify (loading them if
        needed): a probe that answers true can be followed by an inference that pays no download."""
        try:
            for spec in self.registry.manifest().reachable(name, version):
                self.registry.load(spec, tables=False)
        except (ModelNotFoundError, VersionNotFoundError):
            raise
        except PredictionError:
            return False
        return True

    def infer(self, name: str, version: str | None, request: InferenceRequest, binary: memoryview,
              routing_key: str | None = None) -> Inference:
        chosen = route(self.registry.manifest(), name, version, routing_key)
        spec = chosen.spec
        model = self._served(spec, chosen.manifest)
        feeds = _feeds(model, request, binary)
        wanted = _outputs(model, request)
        names = [spec_.name for spec_, _ in wanted]
        started = time.perf_counter()
        arrays = _run(model, names, feeds, spec.name)
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
        return Inference(body, chunks, inference_ms, chosen, self._start_shadow(chosen, names, feeds, arrays))

    def _start_shadow(self, chosen: Route, names: list[str], feeds: dict[str, np.ndarray],
                      live: list[np.ndarray]) -> Shadow | None:
        """The shadow of the version that answered, on the same tensors (None without one)."""
        manifest = chosen.manifest or self.registry.manifest()
        shadow = manifest.shadow_for(chosen.spec)
        if shadow is None:
            return None

        def run() -> ShadowRun:
            answer = _run(self._served(shadow, manifest), names, feeds, shadow.name)
            return ShadowRun(None, all(outputs_agree(a, b) for a, b in zip(live, answer, strict=True)))

        return self.shadows.start(shadow.version, run)

    def _served(self, spec: ModelSpec, manifest: Manifest | None = None) -> Served:
        """The model as the protocol sees it: its graph; for a text model, the tokenizer in front of
        it (text in, embeddings out); for an ensemble, its members run together."""
        if spec.members is not None:
            manifest = manifest or self.registry.manifest()
            try:
                return EnsembleModel(spec.name, [self._served_file(m) for m in manifest.members_of(spec)],
                                     [m.weight for m in spec.members], classifier=spec.classes is not None)
            except IntegrityError as exc:
                raise ModelLoadError(spec.name, exc) from exc
        return self._served_file(spec)

    def _served_file(self, spec: ModelSpec) -> OnnxModel | TextEncoder:
        if not self.registry.files_in_memory(spec, tables=False):
            self.registry.load(spec, tables=False)  # the model and its tokenizer at once (no data tables)
        model = self.registry.model(spec)
        if spec.kind == "text-embedding":
            return TextEncoder(model, self.registry.tokenizer(spec), spec.max_tokens)
        return model


def _run(model: Served, names: list[str], feeds: dict[str, np.ndarray], name: str) -> list[np.ndarray]:
    """The model's outputs `names` on `feeds`; onnxruntime's refusals of the caller's tensors are 400s."""
    run = model.session.run if isinstance(model, OnnxModel) else model.run
    try:
        return run(names, feeds)
    except _RUN_ERRORS as exc:
        reason = str(exc).splitlines()[0][:300]
        raise BadInputError(f"the model could not run on these inputs: {reason}", model_name=name) from exc


def _metadata(specs: tuple[TensorSpec, ...]) -> list[TensorMetadata]:
    return [TensorMetadata(name=s.name, datatype=s.datatype or f"UNSUPPORTED:{s.onnx_type}", shape=list(s.shape))
            for s in specs]


def _feeds(model: Served, request: InferenceRequest, binary: memoryview) -> dict[str, np.ndarray]:
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
    if len(given.shape) != len(spec.shape) or any(
        w not in (-1, g) for g, w in zip(given.shape, spec.shape, strict=True)
    ):
        raise BadInputError(f"input {given.name!r} has shape {list(spec.shape)} (-1: any size), not {given.shape}")


def _outputs(model: Served, request: InferenceRequest) -> list[tuple[TensorSpec, bool]]:
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
