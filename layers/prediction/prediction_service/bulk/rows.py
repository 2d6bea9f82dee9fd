"""Rows of a dataset as a model's inputs, and its outputs as records: the bulk job's codec.

Each row is checked alone (`parse` raises `RowError`, with a reason a person can act on), so a
malformed row is refused and the rest of its batch goes on. The rows that pass are stacked into
one data-plane call (`inputs`), and its arrays split back into one record per row (`records`).
A CSV cell is text and a JSON Lines value is JSON: both are read.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from prediction_service.catalog.manifest import ClassifierEntry, ForecastEntry, ModelSpec, OnnxEntry, TextEntry
from prediction_service.dataplane.types import Inputs
from prediction_service.errors import BadInputError
from prediction_service.limits import MAX_TEXT_CHARACTERS, MAX_TEXTS, max_values
from prediction_service.runtime import text
from prediction_service.runtime.base import DTYPES

if TYPE_CHECKING:
    from prediction_service.bulk.job import Columns
    from prediction_service.runtime.base import Runtime, TensorSpec

LABEL, PROBABILITIES = "label", "probabilities"
MAX_ROWS_PER_CALL = 4096  # a numeric model's rows in one run: past this, a bigger batch is no faster
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SEPARATORS = re.compile(r"[\s,;]+")


class RowError(ValueError):
    """A row that cannot be scored; its message is the reason written to the errors object."""


class RowCodec(ABC):
    """One model's rows: the columns it reads, how many rows one data-plane call takes
    (`rows_per_call`), and how many are read before they are scored (`window`)."""

    columns: tuple[str, ...]
    rows_per_call: int

    @property
    def window(self) -> int:
        return self.rows_per_call

    def parse(self, row: Mapping[str, Any]) -> Any:
        """A row's input, checked; raises RowError."""
        return self._parse([_cell(row, column) for column in self.columns])

    @abstractmethod
    def _parse(self, cells: list[Any]) -> Any: ...

    @abstractmethod
    def inputs(self, parsed: Sequence[Any]) -> Inputs:
        """The data plane's inputs for these rows (raises BadInputError if they cannot go together)."""

    @abstractmethod
    def records(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        """One record of outputs per row, in order."""


def row_codec(columns: Columns, interface: ModelSpec, runtime: Runtime) -> RowCodec:
    """The codec of a model of `interface`'s kind, its columns from the job (or the model's own
    names). Raises BadInputError when the job's columns cannot map to the model's inputs."""
    _check_kind_columns(columns, interface)
    if isinstance(interface, ClassifierEntry):
        return ClassifierRows(interface, runtime, columns.features or interface.inputs)
    if isinstance(interface, ForecastEntry):
        return ForecastRows(interface, runtime, columns.window or "window")
    if isinstance(interface, TextEntry):
        return TextRows(columns.text or "text")
    if isinstance(interface, OnnxEntry):
        return TensorRows(runtime, columns.inputs or {spec.name: spec.name for spec in runtime.inputs})
    raise BadInputError(f"model {interface.name!r} is a {interface.kind} model, which bulk jobs cannot score")


_KIND_COLUMNS = {ClassifierEntry: "features", ForecastEntry: "window", TextEntry: "text", OnnxEntry: "inputs"}


def _check_kind_columns(columns: Columns, interface: ModelSpec) -> None:
    """Refuses a mapping meant for another kind of model (`window` for a classifier...)."""
    allowed = _KIND_COLUMNS.get(type(interface))
    for name in _KIND_COLUMNS.values():
        if name != allowed and getattr(columns, name) is not None:
            raise BadInputError(f"model {interface.name!r} is a {interface.kind} model: it reads "
                                f"`columns.{allowed}`, and `columns.{name}` is for another kind")


class ClassifierRows(RowCodec):
    def __init__(self, entry: ClassifierEntry, runtime: Runtime, features: Sequence[str]) -> None:
        if len(features) != len(entry.inputs):
            raise BadInputError(f"model {entry.name!r} takes {len(entry.inputs)} features "
                                f"({', '.join(entry.inputs)}); columns.features names {len(features)}")
        self.entry = entry
        self.input_name = runtime.inputs[0].name
        self.columns = tuple(features)
        self.rows_per_call = _rows_per_call(len(features))

    def _parse(self, cells: list[Any]) -> list[float]:
        return [_number(cell, column) for cell, column in zip(cells, self.columns, strict=True)]

    def inputs(self, parsed: Sequence[Any]) -> Inputs:
        return Inputs({self.input_name: np.asarray(parsed, dtype=np.float32)}, [LABEL, PROBABILITIES])

    def records(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        classes = self.entry.classes
        labels, probabilities = np.asarray(arrays[0]).astype(int), np.asarray(arrays[1], dtype=np.float64)
        return [{"label": classes[label], "probabilities": dict(zip(classes, row, strict=True))}
                for label, row in zip(labels.tolist(), probabilities.tolist(), strict=True)]


class ForecastRows(RowCodec):
    def __init__(self, entry: ForecastEntry, runtime: Runtime, window: str) -> None:
        self.entry = entry
        self.input_name, self.output_name = runtime.inputs[0].name, runtime.outputs[0].name
        self.columns = (window,)
        self.rows_per_call = _rows_per_call(entry.lookback)

    def _parse(self, cells: list[Any]) -> np.ndarray:
        return _numbers(cells[0], self.columns[0], self.entry.lookback)

    def inputs(self, parsed: Sequence[Any]) -> Inputs:
        return Inputs({self.input_name: np.asarray(parsed, dtype=np.float32)}, [self.output_name])

    def records(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        values = np.asarray(arrays[0], dtype=np.float64).reshape(-1, self.entry.horizon)
        if not np.isfinite(values).all():
            raise BadInputError("the model's forecast is not finite for these windows: their values are too large")
        return [{"forecast": row} for row in values.tolist()]


class TextRows(RowCodec):
    rows_per_call = MAX_TEXTS

    def __init__(self, column: str) -> None:
        self.columns = (column,)

    @property
    def window(self) -> int:
        return 4 * MAX_TEXTS

    def _parse(self, cells: list[Any]) -> str:
        value, column = cells[0], self.columns[0]
        if not isinstance(value, str):
            raise RowError(f"column {column!r} must be text, got {_json_type(value)}")
        if not value.strip():
            raise RowError(f"column {column!r} is empty")
        if len(value) > MAX_TEXT_CHARACTERS:
            raise RowError(f"column {column!r} has {len(value)} characters; a text may have at most "
                           f"{MAX_TEXT_CHARACTERS}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RowError(f"column {column!r} holds a lone surrogate at character {exc.start}") from None
        return value

    def inputs(self, parsed: Sequence[Any]) -> Inputs:
        return Inputs({text.TEXT: np.asarray(parsed, dtype=object)}, [text.EMBEDDING, text.TOKEN_COUNT, text.TRUNCATED])

    def records(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        vectors, counts, truncated = (np.asarray(a) for a in arrays)
        return [{"embedding": v, "token_count": c, "truncated": t}
                for v, c, t in zip(vectors.astype(np.float32).tolist(), counts.tolist(), truncated.tolist(),
                                   strict=True)]


class TensorRows(RowCodec):
    """A generic ONNX model: one column per input, each cell a value of the input's shape without
    its first (batch) dimension, converted to the input's datatype."""

    def __init__(self, runtime: Runtime, mapping: Mapping[str, str]) -> None:
        specs = {spec.name: spec for spec in runtime.inputs}
        unknown = sorted(set(mapping) - set(specs))
        missing = sorted(set(specs) - set(mapping))
        if unknown or missing:
            raise BadInputError(
                f"columns.inputs must map each of the model's inputs ({', '.join(specs)}) to a column"
                + (f"; it has no input {unknown[0]!r}" if unknown else f"; {missing[0]!r} is not mapped"))
        self.specs = [specs[name] for name in specs]
        for spec in self.specs:
            if spec.datatype is None or not spec.shape or spec.shape[0] not in (-1, 1):
                raise BadInputError(f"input {spec.name!r} ({spec.onnx_type} {list(spec.shape)}) has no batch "
                                    "dimension a bulk job can fill")
        self.columns = tuple(mapping[spec.name] for spec in self.specs)
        self.outputs = [spec.name for spec in runtime.outputs]
        batched = all(spec.shape[0] == -1 for spec in self.specs)
        values = sum(int(np.prod([d for d in spec.shape[1:] if d > 0] or [1])) for spec in self.specs)
        self.rows_per_call = _rows_per_call(values) if batched else 1

    def _parse(self, cells: list[Any]) -> dict[str, np.ndarray]:
        return {spec.name: _tensor(cell, spec, column)
                for spec, cell, column in zip(self.specs, cells, self.columns, strict=True)}

    def inputs(self, parsed: Sequence[Any]) -> Inputs:
        try:
            feeds = {spec.name: np.stack([row[spec.name] for row in parsed]) for spec in self.specs}
        except ValueError as exc:  # rows whose free dimensions differ: scored one by one instead
            raise BadInputError("these rows' values have different shapes") from exc
        return Inputs(feeds, list(self.outputs))

    def records(self, arrays: list[np.ndarray]) -> list[dict[str, Any]]:
        columns = [_plain(np.asarray(array)) for array in arrays]
        return [dict(zip(self.outputs, values, strict=True)) for values in zip(*columns, strict=True)]


def _rows_per_call(values_per_row: int) -> int:
    return max(1, min(MAX_ROWS_PER_CALL, max_values() // max(values_per_row, 1)))


def _cell(row: Mapping[str, Any], column: str) -> Any:
    if column not in row or row[column] is None:
        raise RowError(f"column {column!r} is missing")
    return row[column]


def _json_type(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
            str: "text"}.get(type(value), type(value).__name__)


def _number(cell: Any, column: str) -> float:
    """A cell as one finite float32-sized number (text or JSON); the common case, without numpy."""
    if isinstance(cell, bool) or not isinstance(cell, (int, float, str)):
        return float(_numbers(cell, column, 1)[0])  # a list of one, or the refusal
    try:
        value = float(cell)
    except (ValueError, OverflowError):
        return float(_numbers(cell, column, 1)[0])  # "[1.5]", "", "1;2": the general reader decides
    if not math.isfinite(value):
        raise RowError(f"column {column!r} must hold finite numbers (no NaN or Infinity)")
    if abs(value) > _FLOAT32_MAX:
        raise RowError(f"column {column!r} holds a number too large for float32")
    return value


def _numbers(cell: Any, column: str, count: int) -> np.ndarray:
    """A cell as `count` finite float32-sized numbers: a number, a JSON list, or (text) numbers
    separated by spaces, commas or semicolons."""
    values: Any = cell
    if isinstance(cell, str):
        stripped = cell.strip()
        if not stripped:
            raise RowError(f"column {column!r} is empty")
        if stripped.startswith("["):
            try:
                values = json.loads(stripped)
            except ValueError:
                raise RowError(f"column {column!r} is not a JSON list of numbers") from None
        else:
            values = _SEPARATORS.split(stripped)
    if not isinstance(values, list):
        values = [values]
    if any(isinstance(v, bool) or not isinstance(v, (int, float, str)) for v in values):
        raise RowError(f"column {column!r} must hold numbers")
    try:
        array = np.asarray([float(v) for v in values], dtype=np.float64)
    except (ValueError, OverflowError):
        raise RowError(f"column {column!r} must hold numbers, got {_short(cell)}") from None
    if array.shape != (count,):
        raise RowError(f"column {column!r} must hold {count} number{'s' if count > 1 else ''}, got {array.size}")
    if not np.isfinite(array).all():
        raise RowError(f"column {column!r} must hold finite numbers (no NaN or Infinity)")
    if np.abs(array).max() > _FLOAT32_MAX:
        raise RowError(f"column {column!r} holds a number too large for float32")
    return array


def _tensor(cell: Any, spec: TensorSpec, column: str) -> np.ndarray:
    value = cell
    if isinstance(cell, str) and spec.datatype != "BYTES":
        try:
            value = json.loads(cell)
        except ValueError:
            raise RowError(f"column {column!r} must hold JSON for input {spec.name!r}, got {_short(cell)}") from None
    want = spec.shape[1:]
    try:
        if spec.datatype == "BYTES":
            array = np.asarray(value, dtype=object)
            if not all(isinstance(v, str) for v in array.reshape(-1)):
                raise ValueError
        elif spec.datatype == "BOOL":
            array = np.asarray(value)
            if array.dtype != np.bool_:
                raise ValueError
        else:
            array = _typed(np.asarray(value), spec.datatype or "")
    except (ValueError, TypeError, OverflowError):
        raise RowError(f"column {column!r} must hold {spec.datatype} values for input {spec.name!r}") from None
    if array.ndim != len(want) or any(w > 0 and w != got for w, got in zip(want, array.shape, strict=True)):
        shape = [d if d > 0 else "any" for d in want]
        raise RowError(f"column {column!r} has shape {list(array.shape)}; input {spec.name!r} takes {shape} per row")
    return array


def _typed(array: np.ndarray, datatype: str) -> np.ndarray:
    """Numbers as `datatype`, refusing what it cannot hold (booleans, text, fractions for integers,
    values out of range, NaN)."""
    if array.dtype.kind not in "iuf":
        raise ValueError
    dtype = DTYPES[datatype]
    if dtype.kind in "iu":
        if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise ValueError
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError
        return array.astype(dtype)
    if not np.isfinite(array).all() or (array.size and np.abs(array).max() > np.finfo(dtype).max):
        raise ValueError
    return array.astype(dtype)


def _plain(array: np.ndarray) -> list[Any]:
    """An output's rows as JSON values (BYTES as text)."""
    if array.dtype.kind in "OSU":
        flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
        return np.asarray(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
