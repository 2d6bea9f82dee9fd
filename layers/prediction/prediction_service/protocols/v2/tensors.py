"""Tensors as the Open Inference Protocol (v2) carries them: its datatypes, JSON data (flat or
nested, row-major) and Triton's binary tensor extension (raw little-endian bytes; BYTES
elements each prefixed by a 4-byte little-endian length).

Every check a caller's tensor can fail raises BadInputError (400), naming the tensor.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from prediction_service.errors import BadInputError
from prediction_service.runtime.base import DTYPES, ONNX_DATATYPES

__all__ = ["DTYPES", "ONNX_DATATYPES", "from_binary", "from_json", "to_binary", "to_json"]

_LENGTH = struct.Struct("<I")


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def from_json(name: str, datatype: str, shape: Sequence[int], data: Any) -> np.ndarray:
    """A tensor from JSON `data` (flat or nested lists) of `shape`, refusing values that do not fit."""
    dtype = DTYPES[datatype]
    try:
        values = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadInputError(f"input {name!r}: data must be a list of values (flat, or nested evenly)") from exc
    flat = values.reshape(-1)
    expected = element_count(shape)
    if flat.size != expected:
        raise BadInputError(f"input {name!r}: shape {list(shape)} holds {expected} values, data has {flat.size}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise BadInputError(f"input {name!r}: BYTES data must be strings")
        return flat.reshape(shape)
    if datatype != "BOOL" and _holds_bool(data):  # numpy reads true as 1 beside numbers
        raise BadInputError(f"input {name!r}: {datatype} data must be numbers, not true or false")
    if dtype.kind in "iu" and flat.dtype.kind in "fO":
        # beyond int64 numpy reads floats or objects: read the JSON integers again, exactly
        flat = _exact_integers(name, datatype, np.asarray(data, dtype=object).reshape(-1), flat, dtype)
    _check_kind(name, datatype, flat)
    return _fit(name, datatype, flat, dtype).reshape(shape)


def _exact_integers(
    name: str, datatype: str, values: np.ndarray, flat: np.ndarray, dtype: np.dtype[Any]
) -> np.ndarray:
    """JSON integers numpy could not hold as int64 (UINT64's upper half), read exactly."""
    if not all(type(v) is int for v in values):
        return flat  # not all integers: _check_kind says what is wrong
    info = np.iinfo(dtype)
    if any(v < info.min or v > info.max for v in values):
        raise BadInputError(f"input {name!r}: {datatype} values must lie in [{info.min}, {info.max}]")
    return np.array(values.tolist(), dtype=dtype)


def from_binary(name: str, datatype: str, shape: Sequence[int], raw: bytes | memoryview) -> np.ndarray:
    """A tensor from its raw bytes (Triton's binary tensor extension)."""
    expected = element_count(shape)
    if datatype == "BYTES":
        return _bytes_elements(name, raw, expected).reshape(shape)
    dtype = DTYPES[datatype]
    if len(raw) != expected * dtype.itemsize:
        raise BadInputError(
            f"input {name!r}: shape {list(shape)} of {datatype} takes {expected * dtype.itemsize} bytes, "
            f"binary_data_size gives {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise BadInputError(f"input {name!r}: BOOL bytes must be 0 or 1")
    if datatype.startswith("FP"):
        array = array.astype(dtype.newbyteorder("="), copy=False)
    return array.reshape(shape)


def to_json(name: str, array: np.ndarray) -> list[Any]:
    """Flat, row-major values of an output tensor (BYTES as UTF-8 strings). JSON cannot carry
    NaN or Infinity: such an output must be asked for as binary data."""
    flat = array.reshape(-1)
    if flat.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        raise BadInputError(
            f"output {name!r} holds NaN or Infinity, which JSON cannot carry; "
            'ask for it as binary data (outputs: [{"name": ..., "parameters": {"binary_data": true}}])'
        )
    return flat.tolist()


def to_binary(array: np.ndarray) -> bytes:
    """Raw bytes of an output tensor, as the binary tensor extension lays them out."""
    flat = array.reshape(-1)
    if flat.dtype == object:
        parts = []
        for value in flat:
            encoded = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts += [_LENGTH.pack(len(encoded)), encoded]
        return b"".join(parts)
    return np.ascontiguousarray(flat, dtype=flat.dtype.newbyteorder("<")).tobytes()


def _check_kind(name: str, datatype: str, flat: np.ndarray) -> None:
    """JSON types must match the datatype: booleans for BOOL, integers for integer types, numbers for FP."""
    kind = flat.dtype.kind
    if datatype == "BOOL":
        if kind != "b":
            raise BadInputError(f"input {name!r}: BOOL data must be true or false")
        return
    if kind not in "iuf":
        raise BadInputError(f"input {name!r}: {datatype} data must be numbers")
    if not datatype.startswith("FP") and kind == "f":
        raise BadInputError(f"input {name!r}: {datatype} data must be integers")


def _fit(name: str, datatype: str, flat: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """Cast to `dtype`, refusing values out of its range (an integer that would wrap, a float that would be inf)."""
    if flat.size == 0 or dtype.kind == "b":
        return flat.astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = flat.min(), flat.max()
        if low < info.min or high > info.max:
            raise BadInputError(f"input {name!r}: {datatype} values must lie in [{info.min}, {info.max}]")
        return flat.astype(dtype)
    if not np.isfinite(flat).all():
        raise BadInputError(
            f"input {name!r}: JSON data must be finite numbers (NaN and Infinity are not JSON); "
            "send them as binary data"
        )
    limit = float(np.finfo(dtype).max)
    if float(np.abs(flat).max()) > limit:
        raise BadInputError(f"input {name!r}: {datatype} values must have an absolute value below {limit:.4g}")
    return flat.astype(dtype)


def _bytes_elements(name: str, raw: bytes | memoryview, count: int) -> np.ndarray:
    view = memoryview(raw)
    elements: list[str] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise BadInputError(f"input {name!r}: BYTES data ends inside an element's length prefix")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise BadInputError(f"input {name!r}: a BYTES element is longer than the data left")
        try:
            elements.append(bytes(view[offset : offset + length]).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadInputError(f"input {name!r}: BYTES elements must be UTF-8 text for ONNX strings") from exc
        offset += length
    if len(elements) != count:
        raise BadInputError(f"input {name!r}: the shape holds {count} values, the BYTES data has {len(elements)}")
    result = np.empty(count, dtype=object)
    result[:] = elements
    return result


def _holds_bool(data: Any) -> bool:
    """Whether JSON data (a value, or lists of them, nested) holds a boolean anywhere."""
    stack = [data]
    while stack:
        value = stack.pop()
        if type(value) is bool:
            return True
        if type(value) is list:
            stack.extend(value)
    return False
