"""The v2 routes (Open Inference Protocol) through the inference function's real handler:
metadata read from the graph, every datatype in JSON and binary, and a model the code has
never seen served from a three-line manifest entry."""

from __future__ import annotations

import base64
import json
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from prediction_service.protocols.v2.tensors import DTYPES, to_binary
from support import BUCKET, ROOT, http_event, lambda_context, load_function, publish_with

ONNX_TYPES = {
    "BOOL": TensorProto.BOOL, "UINT8": TensorProto.UINT8, "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32, "UINT64": TensorProto.UINT64, "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16, "INT32": TensorProto.INT32, "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16, "FP32": TensorProto.FLOAT, "FP64": TensorProto.DOUBLE, "BYTES": TensorProto.STRING,
}


def call(function: Any, method: str, path: str, body: Any = None, *, binary: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    event = http_event(method, path, None if body is None else json.dumps(body), headers)
    if binary is not None:
        event["headers"]["content-type"] = "application/octet-stream"
        event.update(body=base64.b64encode(binary).decode(), isBase64Encoded=True)
    result = function.handler(event, lambda_context())
    raw = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"].encode()
    if result["headers"]["content-type"] == "application/json":
        return result["statusCode"], result["headers"], json.loads(raw)
    return result["statusCode"], result["headers"], raw


def echo_model(shapes: dict[str, list[int | str]]) -> bytes:
    """A graph the code has never seen: for each datatype an input `in_<dt>` of the given shape
    (strings: dynamic dimensions) and an output `out_<dt>` equal to it."""
    inputs, outputs, nodes = [], [], []
    for datatype, shape in shapes.items():
        kind = ONNX_TYPES[datatype]
        inputs.append(helper.make_tensor_value_info(f"in_{datatype}", kind, shape))
        outputs.append(helper.make_tensor_value_info(f"out_{datatype}", kind, shape))
        nodes.append(helper.make_node("Identity", [f"in_{datatype}"], [f"out_{datatype}"]))
    graph = helper.make_graph(nodes, "echo", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


SHAPES = {dt: ["batch", 3] for dt in ONNX_TYPES}
VALUES = {
    "BOOL": [True, False, True], "UINT8": [0, 7, 255], "UINT16": [0, 7, 65535], "UINT32": [0, 7, 4294967295],
    "UINT64": [0, 7, 2**63], "INT8": [-128, 0, 127], "INT16": [-32768, 0, 32767], "INT32": [-(2**31), 0, 2**31 - 1],
    "INT64": [-(2**63), 0, 2**63 - 1], "FP16": [0.5, -2.0, 65504.0], "FP32": [0.5, -2.25, 2.0**127],
    "FP64": [0.5, -2.25, 1e300], "BYTES": ["a", "", "héllo 🙂"],
}


@pytest.fixture
def echo(s3: Any, tmp_path: Path) -> str:
    publish_with(s3, tmp_path, "echo_all_types", echo_model(SHAPES))
    return "echo_all_types"


def test_server_metadata_and_health(s3: Any, inference: Any) -> None:
    assert call(inference, "GET", "/v2")[2] == {
        "name": "onnx-prediction-api", "version": "0.1.0", "extensions": ["binary_tensor_data"]
    }
    assert call(inference, "GET", "/v2/health/live", headers={"authorization": ""})[:3:2] == (200, {"live": True})
    assert call(inference, "GET", "/v2/health/ready", headers={"authorization": ""})[:3:2] == (200, {"ready": True})


def test_health_ready_is_503_when_the_manifest_cannot_be_read(s3: Any, inference: Any) -> None:
    s3.delete_object(Bucket=BUCKET, Key="models/manifest.yaml")
    assert call(inference, "GET", "/v2/health/ready", headers={"authorization": ""})[:3:2] == (503, {"ready": False})


def test_every_other_route_needs_a_token(s3: Any, inference: Any) -> None:
    for method, path in [("GET", "/v2"), ("GET", "/v2/models/user_churn"), ("GET", "/v2/models/user_churn/ready"),
                         ("POST", "/v2/models/user_churn/infer")]:
        status, headers, body = call(inference, method, path, {}, headers={"authorization": ""})
        assert status == 401 and set(body) == {"error"} and headers["www-authenticate"] == "Bearer", path


def test_metadata_of_the_shipped_models_is_read_from_their_graphs(s3: Any, inference: Any) -> None:
    status, _, churn = call(inference, "GET", "/v2/models/user_churn")
    assert status == 200 and churn == {
        "name": "user_churn", "versions": ["1.0", "1.1"], "platform": "onnx_onnxv1",  # 1.1: a shadow
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
    }
    forecast = call(inference, "GET", "/v2/models/drive_stats_a/versions/1.0")[2]
    assert forecast["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 30]}]


def test_unknown_models_and_versions_are_404s_that_name_what_exists(s3: Any, inference: Any) -> None:
    assert call(inference, "GET", "/v2/models/nope")[0] == 404
    status, _, body = call(inference, "GET", "/v2/models/user_churn/versions/2.0/ready")
    assert status == 404 and body == {"error": "model 'user_churn' has no version '2.0'; its versions: 1.0, 1.1"}
    assert call(inference, "POST", "/v2/models/nope/versions/1/infer", {"inputs": []})[0] in (400, 404)


def test_v2_answers_the_same_forecast_as_v1(s3: Any, inference: Any) -> None:
    window = [round(0.45 + 0.004 * i, 3) for i in range(30)]
    v1 = load_function("models").handler(
        http_event("POST", "/v1/models/drive_stats_a/predict", json.dumps({"inputs": [window]})), lambda_context()
    )
    body = {"id": "f-1", "inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": window}]}
    status, _, v2 = call(inference, "POST", "/v2/models/drive_stats_a/infer", body)
    assert status == 200 and v2["id"] == "f-1" and v2["model_version"] == "1.0"
    (output,) = v2["outputs"]
    assert output["shape"] == [1, 3] and output["datatype"] == "FP32"
    assert output["data"] == pytest.approx(json.loads(v1["body"])["prediction"], rel=1e-6)


def test_every_datatype_in_json_both_ways(echo: str, inference: Any) -> None:
    inputs = [{"name": f"in_{dt}", "shape": [1, 3], "datatype": dt, "data": VALUES[dt]} for dt in VALUES]
    status, _, body = call(inference, "POST", f"/v2/models/{echo}/infer", {"inputs": inputs})
    assert status == 200, body
    got = {o["name"]: o for o in body["outputs"]}
    for dt, values in VALUES.items():
        assert got[f"out_{dt}"]["datatype"] == dt and got[f"out_{dt}"]["shape"] == [1, 3]
        assert got[f"out_{dt}"]["data"] == values, dt


def test_every_datatype_in_binary_both_ways(echo: str, inference: Any) -> None:
    arrays = {dt: np.array([VALUES[dt]], dtype=object if dt == "BYTES" else DTYPES[dt]) for dt in VALUES}
    raws = {dt: to_binary(a) for dt, a in arrays.items()}
    header = json.dumps({
        "inputs": [{"name": f"in_{dt}", "shape": [1, 3], "datatype": dt, "parameters": {"binary_data_size": len(raws[dt])}}
                   for dt in VALUES],
        "outputs": [{"name": f"out_{dt}", "parameters": {"binary_data": True}} for dt in VALUES],
    }).encode()
    status, headers, raw = call(inference, "POST", f"/v2/models/{echo}/infer", binary=header + b"".join(raws.values()),
                                headers={"inference-header-content-length": str(len(header))})
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    length = int(headers["inference-header-content-length"])
    answer, offset = json.loads(raw[:length]), length
    for output in answer["outputs"]:
        size = output["parameters"]["binary_data_size"]
        dt = output["datatype"]
        assert "data" not in output and raw[offset : offset + size] == raws[dt], dt
        offset += size
    assert offset == len(raw)


def test_outputs_choose_what_is_answered_and_binary_per_output(s3: Any, inference: Any) -> None:
    rows = {"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1.5, 30, 2, 4]}
    body = {"inputs": [rows], "outputs": [{"name": "probabilities"}]}
    status, _, answer = call(inference, "POST", "/v2/models/user_churn/infer", body)
    assert status == 200 and [o["name"] for o in answer["outputs"]] == ["probabilities"]
    body = {"inputs": [rows], "parameters": {"binary_data_output": True},
            "outputs": [{"name": "label", "parameters": {"binary_data": False}}, {"name": "probabilities"}]}
    status, headers, raw = call(inference, "POST", "/v2/models/user_churn/infer", body)
    header = json.loads(raw[: int(headers["inference-header-content-length"])])
    label, probabilities = header["outputs"]
    assert label["data"] == [1] and probabilities["parameters"]["binary_data_size"] == 8
    assert np.frombuffer(raw[-8:], "<f4").sum() == pytest.approx(1.0, abs=1e-6)


BAD = [
    ("shape and data disagree", {"inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
     "holds 8 values, data has 4"),
    ("wrong datatype", {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 4]}]},
     "is FP32, not INT32"),
    ("unknown datatype", {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP8", "data": [1, 2, 3, 4]}]},
     "unknown datatype"),
    ("missing input", {"inputs": [{"name": "Y", "shape": [1], "datatype": "FP32", "data": [1]}]}, "no input 'Y'"),
    ("unknown output", {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
                        "outputs": [{"name": "logits"}]}, "no output 'logits'"),
    ("wrong rank", {"inputs": [{"name": "X", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}, "has shape"),
    ("wrong width", {"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, "has shape"),
    ("negative dimension", {"inputs": [{"name": "X", "shape": [-1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
     "greater than or equal to 0"),
    ("value beyond FP32", {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1e39, 2, 3, 4]}]},
     "absolute value"),
    ("no data", {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32"}]}, "no data"),
    ("input twice", {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}] * 2},
     "given twice"),
    ("no inputs", {"inputs": []}, "inputs"),
    ("not an object", [1, 2], "object"),
    ("unknown field", {"inputs": [], "priority": 1}, "priority"),
]


@pytest.mark.parametrize(("body", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_client_mistakes_are_400s_in_the_protocols_error_shape(s3: Any, inference: Any, body: Any, words: str) -> None:
    status, headers, answer = call(inference, "POST", "/v2/models/user_churn/infer", body)
    assert status == 400 and headers["content-type"] == "application/json"
    assert set(answer) == {"error"} and words in answer["error"], answer


def test_binary_sizes_that_do_not_add_up_are_400s(s3: Any, inference: Any) -> None:
    def header(size: int) -> bytes:
        return json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                                       "parameters": {"binary_data_size": size}}]}).encode()

    for size, tail, words in [(16, b"\0" * 8, "runs past the end"), (16, b"\0" * 20, "4 bytes after"),
                              (12, b"\0" * 12, "takes 16 bytes")]:
        head = header(size)
        status, _, answer = call(inference, "POST", "/v2/models/user_churn/infer", binary=head + tail,
                                 headers={"inference-header-content-length": str(len(head))})
        assert status == 400 and words in answer["error"], answer
    status, _, answer = call(inference, "POST", "/v2/models/user_churn/infer", binary=b"{}",
                             headers={"inference-header-content-length": "99"})
    assert status == 400 and "inference-header-content-length" in answer["error"]


def test_a_body_over_lambdas_payload_limit_is_413(s3: Any, inference: Any) -> None:
    data = [0.5] * (1_700_000)
    status, _, answer = call(inference, "POST", "/v2/models/user_churn/infer",
                             {"inputs": [{"name": "X", "shape": [425_000, 4], "datatype": "FP32", "data": data}]})
    assert status == 413 and "larger than 6291456 bytes" in answer["error"]


def test_a_model_the_code_has_never_seen_is_served_from_three_manifest_lines(
    s3: Any, tmp_path: Path, inference: Any
) -> None:
    """Zero-code onboarding: random input names, ranks and datatypes, generated here."""
    rng = random.Random(20261125)
    datatypes = rng.sample([dt for dt in ONNX_TYPES if dt != "BYTES"], 4) + ["BYTES"]
    shapes = {dt: ["n", *[rng.randint(1, 3) for _ in range(rng.randint(0, 2))]] for dt in datatypes}
    names = {dt: f"t{rng.randrange(10**6)}_{dt.lower()}" for dt in datatypes}
    model = onnx.load_from_string(echo_model(shapes))
    for value_info in [*model.graph.input, *model.graph.output]:
        value_info.name = value_info.name.replace(value_info.name.split("_", 1)[1], names[value_info.name.split("_", 1)[1]])
    for node in model.graph.node:
        node.input[0] = "in_" + names[node.input[0].split("_", 1)[1]]
        node.output[0] = "out_" + names[node.output[0].split("_", 1)[1]]
    publish_with(s3, tmp_path, "never_seen", model.SerializeToString())

    metadata = call(inference, "GET", "/v2/models/never_seen")[2]
    assert {i["name"]: (i["datatype"], i["shape"]) for i in metadata["inputs"]} == {
        f"in_{names[dt]}": (dt, [-1, *shapes[dt][1:]]) for dt in datatypes
    }
    inputs = []
    for spec in metadata["inputs"]:
        shape = [2, *spec["shape"][1:]]
        count = int(np.prod(shape))
        data = [f"s{i}" for i in range(count)] if spec["datatype"] == "BYTES" else \
            [bool(i % 2) if spec["datatype"] == "BOOL" else i % 100 for i in range(count)]
        inputs.append({"name": spec["name"], "shape": shape, "datatype": spec["datatype"], "data": data})
    status, _, answer = call(inference, "POST", "/v2/models/never_seen/infer", {"inputs": inputs})
    assert status == 200, answer
    for given in inputs:
        (output,) = [o for o in answer["outputs"] if o["name"] == "out_" + given["name"][3:]]
        assert output["data"] == given["data"] and output["shape"] == given["shape"]
    assert call(inference, "GET", "/v2/models/never_seen/ready")[2] == {"name": "never_seen", "ready": True}


def test_v1_routes_point_a_generic_model_to_v2(echo: str) -> None:
    result = load_function("models").handler(http_event("POST", f"/v1/models/{echo}/predict", '{"inputs": [[1]]}'),
                                             lambda_context())
    assert result["statusCode"] == 400 and f"POST /v2/models/{echo}/infer" in json.loads(result["body"])["error_message"]


def test_bytes_binary_length_prefix_is_what_tritonclient_sends(echo: str, inference: Any) -> None:
    """The BYTES layout checked against the extension's spec, built by hand here."""
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"x", b"yz", b""))
    header = json.dumps({"inputs": [{"name": f"in_{dt}", "shape": [1, 3], "datatype": dt,
                                     **({"parameters": {"binary_data_size": len(raw)}} if dt == "BYTES" else
                                        {"data": VALUES[dt]})} for dt in VALUES],
                         "outputs": [{"name": "out_BYTES"}]}).encode()
    status, _, answer = call(inference, "POST", f"/v2/models/{echo}/infer", binary=header + raw,
                             headers={"inference-header-content-length": str(len(header))})
    assert status == 200 and answer["outputs"][0]["data"] == ["x", "yz", ""]


def test_the_shipped_digits_model_takes_named_inputs_of_two_types_and_ranks_and_answers_strings(
    s3: Any, inference: Any
) -> None:
    metadata = call(inference, "GET", "/v2/models/digits")[2]
    assert metadata["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 8, 8]},
                                  {"name": "min_confidence", "datatype": "FP32", "shape": [-1]}]
    assert metadata["outputs"][0] == {"name": "label", "datatype": "BYTES", "shape": [-1]}
    rows = [line.split(",") for line in (ROOT / "models/data/digits_holdout.csv").read_text().splitlines()
            if line and not line.startswith("#")][1:]
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    truth = [r[0] if r[0] in names else names[int(r[0])] for r in rows]
    pixels = [[int(v) for v in r[1:]] for r in rows]
    body = {"inputs": [{"name": "pixels", "shape": [len(rows), 8, 8], "datatype": "UINT8", "data": pixels},
                       {"name": "min_confidence", "shape": [len(rows)], "datatype": "FP32", "data": [0.0] * len(rows)}],
            "outputs": [{"name": "label"}]}
    status, _, answer = call(inference, "POST", "/v2/models/digits/infer", body)
    assert status == 200
    labels = answer["outputs"][0]["data"]
    assert sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth) >= 0.9
    body["inputs"][1]["data"] = [1.01] * len(rows)
    assert set(call(inference, "POST", "/v2/models/digits/infer", body)[2]["outputs"][0]["data"]) == {"unsure"}


def test_a_malformed_event_is_refused_in_the_protocols_error_body(inference: Any) -> None:
    event = http_event("POST", "/v2/models/user_churn/infer", "{}")
    event.update(isBase64Encoded=True, body="not base64!")
    result = inference.handler(event, lambda_context())
    assert result["statusCode"] == 400 and set(json.loads(result["body"])) == {"error"}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_requests_are_read(s3: Any, inference: Any, encoding: str) -> None:
    """tritonclient's request_compression_algorithm: the body gzip- or zlib-compressed."""
    import gzip
    import zlib

    body = json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1.5, 30, 2, 4]}]})
    packed = gzip.compress(body.encode()) if encoding == "gzip" else zlib.compress(body.encode())
    status, _, answer = call(inference, "POST", "/v2/models/user_churn/infer", binary=packed,
                             headers={"content-encoding": encoding})
    assert status == 200 and answer["outputs"][0]["data"] == [1]
    status, _, answer = call(inference, "POST", "/v2/models/user_churn/infer", binary=b"not packed",
                             headers={"content-encoding": encoding})
    assert status == 400 and encoding in answer["error"]


def test_an_unknown_content_encoding_is_415(s3: Any, inference: Any) -> None:
    status, _, answer = call(inference, "POST", "/v2/models/user_churn/infer", binary=b"xx",
                             headers={"content-encoding": "br"})
    assert status == 415 and "'br'" in answer["error"]


def test_nan_in_json_is_refused_and_an_output_json_cannot_carry_must_be_binary(echo: str, inference: Any) -> None:
    inputs = [{"name": f"in_{dt}", "shape": [1, 3], "datatype": dt, "data": VALUES[dt]} for dt in VALUES]
    inputs[11]["data"] = [float("nan"), 1.0, 2.0]  # FP64
    event = http_event("POST", f"/v2/models/{echo}/infer", json.dumps({"inputs": inputs}))  # json writes NaN
    result = inference.handler(event, lambda_context())
    assert result["statusCode"] == 400 and "finite" in json.loads(result["body"])["error"]
    raw = np.array([[np.nan, 1.0, 2.0]], dtype="<f8").tobytes()
    inputs[11] = {"name": "in_FP64", "shape": [1, 3], "datatype": "FP64", "parameters": {"binary_data_size": len(raw)}}
    header = json.dumps({"inputs": inputs, "outputs": [{"name": "out_FP64"}]}).encode()
    status, _, answer = call(inference, "POST", f"/v2/models/{echo}/infer", binary=header + raw,
                             headers={"inference-header-content-length": str(len(header))})
    assert status == 400 and "binary_data" in answer["error"]
    header = json.dumps({"inputs": inputs, "outputs": [{"name": "out_FP64", "parameters": {"binary_data": True}}]})
    status, headers, body = call(inference, "POST", f"/v2/models/{echo}/infer", binary=header.encode() + raw,
                                 headers={"inference-header-content-length": str(len(header))})
    assert status == 200 and np.isnan(np.frombuffer(body[-24:], "<f8")[0])
