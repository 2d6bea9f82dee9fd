"""The v2 tensor codec: every datatype in JSON and in Triton's binary layout, and the values
that do not fit refused with a 400 that names the tensor."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from prediction_service.errors import BadInputError
from prediction_service.protocols.v2.tensors import DTYPES, from_binary, from_json, to_binary, to_json

SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True, True, False, False],
    "UINT8": [0, 1, 2, 128, 254, 255],
    "UINT16": [0, 1, 2, 300, 65534, 65535],
    "UINT32": [0, 1, 2, 70000, 4294967294, 4294967295],
    "UINT64": [0, 1, 2, 2**40, 2**63 - 1, 5],
    "INT8": [-128, -1, 0, 1, 2, 127],
    "INT16": [-32768, -1, 0, 1, 2, 32767],
    "INT32": [-(2**31), -1, 0, 1, 2, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 1, 2, 2**63 - 1],
    "FP16": [0.5, -1.0, 2.0, 65504.0, -0.25, 0.0],
    "FP32": [0.5, -1.25, 3.4e38, -1e-3, 0.0, 7.0],
    "FP64": [0.5, -1.25, 1e300, -1e-300, 0.0, 7.0],
    "BYTES": ["a", "", "héllo", "zwei wörter", "🙂", "x" * 40],
}


def expected_array(datatype: str, values: list[Any]) -> np.ndarray:
    return np.array(values, dtype=object if datatype == "BYTES" else DTYPES[datatype]).reshape(2, 3)


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_json_data_flat_or_nested_round_trips(datatype: str) -> None:
    values = SAMPLES[datatype]
    flat = from_json("t", datatype, [2, 3], values)
    nested = from_json("t", datatype, [2, 3], [values[:3], values[3:]])
    expected = expected_array(datatype, values)
    assert flat.shape == nested.shape == (2, 3)
    assert flat.dtype == expected.dtype and (flat == expected).all() and (nested == expected).all()
    assert to_json("t", flat) == to_json("t", expected) == [type(v)(x) for v, x in zip(values, to_json("t", flat), strict=True)]


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_binary_data_round_trips(datatype: str) -> None:
    expected = expected_array(datatype, SAMPLES[datatype])
    raw = to_binary(expected)
    decoded = from_binary("t", datatype, [2, 3], raw)
    assert (decoded == expected).all() and decoded.shape == (2, 3)
    if datatype != "BYTES":
        assert raw == expected.astype(DTYPES[datatype]).tobytes() and len(raw) == 6 * DTYPES[datatype].itemsize


def test_bytes_use_a_little_endian_length_prefix() -> None:
    raw = to_binary(np.array(["ab", "c"], dtype=object))
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 1) + b"c"


@pytest.mark.parametrize(
    ("datatype", "data", "words"),
    [
        ("INT8", [128], "[-128, 127]"),
        ("UINT8", [-1], "[0, 255]"),
        ("UINT64", [-1], "[0, 18446744073709551615]"),
        ("INT64", [2**64], "[-9223372036854775808, 9223372036854775807]"),
        ("INT32", [1.5], "integers"),
        ("INT32", [True], "numbers"),
        ("FP32", [True], "numbers"),
        ("FP32", ["1.0"], "numbers"),
        ("FP32", [1e39], "absolute value"),
        ("FP16", [70000.0], "absolute value"),
        ("BOOL", [1], "true or false"),
        ("BYTES", [1], "strings"),
        ("FP32", {"a": 1}, "numbers"),
        ("FP32", [[1.0, 2.0], [3.0]], "list of values"),
        ("FP32", [float("nan")], "finite"),
        ("FP64", [float("inf")], "finite"),
    ],
)
def test_values_that_do_not_fit_are_refused(datatype: str, data: Any, words: str) -> None:
    shape = [len(data)] if isinstance(data, list) and data and not isinstance(data[0], list) else [1]
    with pytest.raises(BadInputError) as info:
        from_json("pixels", datatype, shape, data)
    assert "'pixels'" in info.value.message and words in info.value.message, info.value.message
    assert info.value.http_status == 400


def test_a_shape_whose_product_differs_from_the_data_is_refused() -> None:
    with pytest.raises(BadInputError, match=r"shape \[2, 2\] holds 4 values, data has 3"):
        from_json("x", "FP32", [2, 2], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("datatype", "raw", "words"),
    [
        ("FP32", b"\x00" * 7, "takes 8 bytes"),
        ("BOOL", b"\x02\x00", "0 or 1"),
        ("BYTES", struct.pack("<I", 5) + b"abc", "longer than"),
        ("BYTES", b"\x01\x00", "length prefix"),
        ("BYTES", struct.pack("<I", 1) + b"a", "holds 2 values"),
        ("BYTES", struct.pack("<I", 1) + b"\xff" + struct.pack("<I", 0), "UTF-8"),
    ],
)
def test_binary_data_that_does_not_fit_is_refused(datatype: str, raw: bytes, words: str) -> None:
    with pytest.raises(BadInputError, match=words):
        from_binary("x", datatype, [2], raw)


def test_an_output_holding_nan_must_be_asked_for_as_binary() -> None:
    with pytest.raises(BadInputError, match="binary_data"):
        to_json("scores", np.array([1.0, np.nan], dtype=np.float32))
    assert np.isnan(from_binary("x", "FP32", [1], np.array([np.nan], dtype="<f4").tobytes())).all()
