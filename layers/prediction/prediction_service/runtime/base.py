"""What a served model is, whatever it is built from: its inputs and outputs, and `run`.

Every protocol speaks to a model through this interface only. Datatypes use the Open
Inference Protocol's names (FP32, INT64, BYTES...), the field's common vocabulary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# datatype -> numpy dtype (little-endian, as Triton's binary extension sends it)
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}

# onnxruntime's element types -> datatypes (what a graph's inputs and outputs declare)
ONNX_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """An input or output: -1 for a dynamic dimension; `datatype` None when no protocol can
    carry the graph's type (a sequence, a map)."""

    name: str
    datatype: str | None
    onnx_type: str
    shape: tuple[int, ...]


class Runtime(ABC):
    """A served model: `inputs` and `outputs` describe it, `run` computes the outputs named.

    `run` raises BadInputError when the model refuses the caller's tensors (sizes that
    disagree, values an operator refuses) and a server error when the model itself fails.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @abstractmethod
    def run(self, output_names: Sequence[str], feeds: Feeds) -> list[np.ndarray]:
        """The outputs `output_names`, in that order, computed on `feeds`."""

    @property
    def members(self) -> Sequence[Member]:
        """The models an ensemble combines (none for any other runtime)."""
        return ()

    def run_with_members(self, output_names: Sequence[str], feeds: Feeds) -> tuple[list[np.ndarray],
                                                                                  list[list[np.ndarray]]]:
        """`run`'s outputs, and each member's own outputs (an ensemble's; others have no members)."""
        return self.run(output_names, feeds), []

    def agrees(self, output_name: str, live: np.ndarray, shadow: np.ndarray) -> bool:
        """Whether a shadow's output agrees with the live one (see `outputs_agree`)."""
        return outputs_agree(live, shadow)


@dataclass(frozen=True)
class Member:
    """A model an ensemble combines: the version that serves it for this request, and its weight."""

    name: str
    version: str
    weight: float
    runtime: Runtime


def outputs_agree(live: np.ndarray | Sequence[object], shadow: np.ndarray | Sequence[object]) -> bool:
    """The same shape, and equal values, or for floats every value within 1%."""
    live, shadow = np.asarray(live), np.asarray(shadow)
    if live.shape != shadow.shape:
        return False
    if live.dtype.kind == "f":
        return bool(np.allclose(shadow, live, rtol=0.01, atol=1e-9))
    return bool(np.array_equal(live, shadow))


def describe(specs: Sequence[TensorSpec]) -> str:
    """Tensors as a message names them: `x (FP32 [-1, 3]), ...`."""
    return ", ".join(f"{s.name} ({s.datatype or s.onnx_type} {list(s.shape)})" for s in specs)
