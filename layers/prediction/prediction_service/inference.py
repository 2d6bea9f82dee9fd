"""Running ONNX models: session creation, input checks, forecasts and classifications."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from .errors import BadInputError, IntegrityError, ModelOutputError
from .tensors import ONNX_DATATYPES

_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output as the v2 protocol describes it: -1 for a dynamic dimension;
    `datatype` None when the protocol cannot carry the graph's type (a sequence, a map)."""

    name: str
    datatype: str | None
    onnx_type: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class OnnxModel:
    """A loaded model: its session, and its inputs and outputs read from the graph."""

    session: ort.InferenceSession
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def load_model_file(path: str | os.PathLike[str]) -> OnnxModel:
    """A model from its file: onnxruntime reads the file itself, so its bytes are never all in
    Python memory (what the cache uses: a model of hundreds of MB loads within its own size)."""
    return _load(os.fspath(path))


def load_model(raw: bytes) -> OnnxModel:
    """A model from bytes already in memory (small files, tests)."""
    return _load(raw)


def _load(source: str | bytes) -> OnnxModel:
    """A session sized for a small Lambda (one thread per run), and the graph's inputs and outputs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise IntegrityError("the file is not a valid ONNX model", detail=f"not a valid ONNX model: {exc}") from exc
    return OnnxModel(session, _specs(session.get_inputs()), _specs(session.get_outputs()))


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


def input_matrix(rows: Sequence[Sequence[float]] | np.ndarray, width: int) -> np.ndarray:
    """Rows as a float32 matrix of `width` columns; refuses ragged, non-finite or too-large values."""
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise BadInputError("inputs must be a list of rows of numbers, all of the same length") from exc
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise BadInputError("inputs must be a non-empty list of rows, e.g. [[1.0, 2.0, ...]]")
    if matrix.shape[1] != width:
        raise BadInputError(f"each input row must have {width} values, got {matrix.shape[1]}")
    if not np.isfinite(matrix).all():
        raise BadInputError("inputs must be finite numbers (no NaN or Infinity)")
    if np.abs(matrix).max() > _FLOAT32_MAX:
        raise BadInputError("inputs must fit in float32 (absolute value below 3.4e38)")
    return matrix.astype(np.float32)


def forecast(session: ort.InferenceSession, window: np.ndarray, horizon: int) -> np.ndarray:
    """The next `horizon` values after one window of the series (float64; may be non-finite:
    whether that is the caller's fault depends on where the window came from)."""
    (output,) = session.run(None, {session.get_inputs()[0].name: window})[:1]
    values = np.asarray(output, dtype=np.float64).reshape(-1)
    if values.shape != (horizon,):
        raise ModelOutputError(f"the model returned {values.shape[0]} values, the manifest says {horizon}")
    return values


def classify(session: ort.InferenceSession, rows: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities for each row (outputs `label`, `probabilities`)."""
    labels, probabilities = session.run(["label", "probabilities"], {session.get_inputs()[0].name: rows})
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (rows.shape[0], classes):
        raise ModelOutputError(f"the model returned probabilities of shape {probabilities.shape}, expected "
                               f"{(rows.shape[0], classes)}")
    return np.asarray(labels).astype(int), probabilities


def outputs_agree(live: np.ndarray | Sequence[object], shadow: np.ndarray | Sequence[object]) -> bool:
    """Whether a shadow's output agrees with the live one: the same shape, and equal values, or for
    floats every value within 1%."""
    live, shadow = np.asarray(live), np.asarray(shadow)
    if live.shape != shadow.shape:
        return False
    if live.dtype.kind == "f":
        return bool(np.allclose(shadow, live, rtol=0.01, atol=1e-9))
    return bool(np.array_equal(live, shadow))
