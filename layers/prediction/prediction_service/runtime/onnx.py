"""An ONNX graph as a runtime: an onnxruntime session sized for a small Lambda, and its tensors."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from prediction_service.errors import BadInputError, IntegrityError
from prediction_service.runtime.base import ONNX_DATATYPES, Feeds, Runtime, TensorSpec

# onnxruntime's errors for inputs the graph cannot compute on (sizes that disagree between
# inputs, values an operator refuses): the caller's data, so 400.
_RUN_ERRORS = (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail,
               ort.capi.onnxruntime_pybind11_state.RuntimeException)


class OnnxModel(Runtime):
    """A loaded graph: its session, and its inputs and outputs read from the graph."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.inputs = _specs(session.get_inputs())
        self.outputs = _specs(session.get_outputs())

    def run(self, output_names: Sequence[str], feeds: Feeds, *, shrink_arena: bool = False) -> list[np.ndarray]:
        """`shrink_arena`: give the memory this run took beyond the arena's first chunk back at its end
        (onnxruntime keeps its peak otherwise: one large request would hold it for good)."""
        if not output_names:
            return []  # onnxruntime reads an empty list as "every output"
        try:
            return self.session.run(list(output_names), dict(feeds), _SHRINK if shrink_arena else None)
        except _RUN_ERRORS as exc:
            raise BadInputError(f"the model could not run on these inputs: {caller_message(str(exc))}",
                                detail=str(exc)) from exc


def _shrinking() -> ort.RunOptions:
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


_SHRINK = _shrinking()


def caller_message(text: str) -> str:
    """onnxruntime's refusal cut to what a caller can act on: the operator that failed and why,
    without the build's source paths, C++ function names or the assertion's own expression."""
    text = " ".join(text.split())
    node = _NODE.search(text)
    reason = text.split("Status Message:", 1)[1] if "Status Message:" in text else _PREFIX.sub("", text)
    for internal in (_SOURCE_PATH, _CPP_FUNCTION, _ASSERTION):
        reason = internal.sub(" ", reason)
    reason = " ".join(reason.split()).strip(" .:") or "the model refused them"
    where = f"its {node.group(1)} operator failed: " if node else ""
    return (where + reason)[:300]


_NODE = re.compile(r"running (\w+) node")
_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_SOURCE_PATH = re.compile(r"\S*/\S+\.(?:h|hpp|cc|cpp|c)(?::\d+)?")
_CPP_FUNCTION = re.compile(r"(?:[\w<>,*&]+ )*[\w<>]+(?:::[\w<>~]+)+\([^)]*\)(?: const)?")
_ASSERTION = re.compile(r"[^.]*? was false\.")


def load_model_file(path: str | os.PathLike[str]) -> OnnxModel:
    """A model from its file: onnxruntime reads the file itself, so its bytes are never all in
    Python memory (what the cache uses: a model of hundreds of MB loads within its own size)."""
    return _load(os.fspath(path))


def load_model(raw: bytes) -> OnnxModel:
    """A model from bytes already in memory (small files, tests)."""
    return _load(raw)


def _load(source: str | bytes) -> OnnxModel:
    """A session sized for a small Lambda (one thread per run)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise IntegrityError("the file is not a valid ONNX model", detail=f"not a valid ONNX model: {exc}") from exc
    return OnnxModel(session)


def _specs(args: Sequence[ort.NodeArg]) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(
            name=arg.name,
            datatype=ONNX_DATATYPES.get(arg.type),
            onnx_type=arg.type,
            shape=tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or ())),
        )
        for arg in args
    )
