"""The Open Inference Protocol (v2) against /v1, and JSON against Triton's binary tensor extension.

(a) Warm path, same model, same 30-value window: POST /v1/models/drive_stats_a/predict (models
    function) against POST /v2/models/drive_stats_a/infer (inference function), in JSON and in
    binary, through each function's real handler (API Gateway event in, Powertools, Mangum,
    FastAPI, cache hit, inference, answer out). Rounds alternate between the paths, so drift
    on the machine falls on all of them alike. Target: v2 costs no more than v1.
(b) A 1 MiB FP32 tensor (262,144 values) through a generated Identity model published to the
    bench's bucket with a three-line manifest entry: JSON request and answer against binary
    request and answer. Bytes are what crosses Lambda's boundary: the event's body as API
    Gateway sends it (binary base64-encoded, JSON as is) and the body Mangum returns.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from harness import HEADER, ROOT, interleaved, start_s3

ROUNDS = 5
N_PER_ROUND = 1000  # warm path: 5000 calls per path in all
LARGE_N = 15  # 1 MiB tensors: calls per round
LARGE_ROUNDS = 2
ELEMENTS = 262_144  # 1 MiB of FP32
IDENTITY = "identity_1mib"


def identity_model() -> bytes:
    """An ONNX graph FP32 [-1, 262144] -> the same tensor (onnx.helper; no training library)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", ELEMENTS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", ELEMENTS])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def models_with_identity() -> Path:
    """models/ plus the Identity model: its file and a three-line manifest entry, nothing else."""
    directory = Path(tempfile.mkdtemp()) / "models"
    shutil.copytree(ROOT / "models", directory)
    model = identity_model()
    (directory / f"{IDENTITY}.onnx").write_bytes(model)
    with (directory / "manifest.yaml").open("a") as manifest:
        manifest.write(f"\n  - name: {IDENTITY}\n    file: {IDENTITY}.onnx\n"
                       f"    sha256: {hashlib.sha256(model).hexdigest()}\n")
    return directory


def binary_event(path: str, header: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """What API Gateway hands the function for tritonclient's binary request: the body base64-encoded."""
    from support import http_event

    head = json.dumps(header, separators=(",", ":")).encode()
    event = http_event("POST", path, None, {"content-type": "application/octet-stream",
                                            "inference-header-content-length": str(len(head))})
    event.update(body=base64.b64encode(head + raw).decode(), isBase64Encoded=True)
    return event


def answer_bytes(result: dict[str, Any]) -> bytes:
    body = result["body"]
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()


def binary_outputs(result: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    raw = answer_bytes(result)
    length = int(result["headers"]["inference-header-content-length"])
    return json.loads(raw[:length]), raw[length:]


def warm_path(models: Any, inference: Any, context: Any) -> dict[str, float]:
    from support import http_event

    window = [round(0.45 + 0.004 * i, 3) for i in range(30)]
    v1 = http_event("POST", "/v1/models/drive_stats_a/predict", json.dumps({"inputs": [window]}))
    request = {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": window}]}
    v2 = http_event("POST", "/v2/models/drive_stats_a/infer", json.dumps(request))
    v2_binary = binary_event(
        "/v2/models/drive_stats_a/infer",
        {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "parameters": {"binary_data_size": 120}}],
         "parameters": {"binary_data_output": True}},
        np.asarray(window, dtype="<f4").tobytes(),
    )
    # the same forecast three ways, before anything is timed
    forecast = json.loads(models.handler(v1, context)["body"])["prediction"]
    (output,) = json.loads(inference.handler(v2, context)["body"])["outputs"]
    np.testing.assert_allclose(output["data"], forecast, rtol=1e-6)
    _, raw = binary_outputs(inference.handler(v2_binary, context))
    np.testing.assert_allclose(np.frombuffer(raw, "<f4"), forecast, rtol=1e-6)

    timings = interleaved({
        "v1 POST /v1/models/drive_stats_a/predict": lambda: models.handler(v1, context),
        "v2 POST /v2/models/drive_stats_a/infer JSON": lambda: inference.handler(v2, context),
        "v2 ... infer, binary in and out": lambda: inference.handler(v2_binary, context),
    }, ROUNDS, N_PER_ROUND, warmup=50)
    v1_t, v2_t, v2_b = timings.values()
    print("(a) Warm path, drive_stats_a, the same 30-value window (handler: event in -> answer out)")
    print(HEADER)
    for timing in timings.values():
        print(timing.row())
    ratio = v2_t.median_us / v1_t.median_us
    verdict = "met" if ratio <= 1.0 else "missed"
    print(f"v2 JSON / v1: {ratio:.2f}x median, {v2_t.p99_us / v1_t.p99_us:.2f}x p99 (target <= 1.00x: {verdict}); "
          f"v2 binary / v1: {v2_b.median_us / v1_t.median_us:.2f}x median")
    return {"v1_us": v1_t.median_us, "v1_p99_us": v1_t.p99_us, "v2_json_us": v2_t.median_us,
            "v2_json_p99_us": v2_t.p99_us, "v2_binary_us": v2_b.median_us, "v2_binary_p99_us": v2_b.p99_us,
            "v2_over_v1": ratio}


def large_tensor(inference: Any, context: Any) -> dict[str, float]:
    from prediction_service.protocols.v2.service import MAX_JSON_ANSWER_BYTES
    from support import http_event

    path = f"/v2/models/{IDENTITY}/infer"
    rng = np.random.default_rng(12)
    # 8-bit data scaled to [0, 1) (k/256, exact in FP32): at most 10 characters a value in JSON,
    # as tritonclient writes them (float(value)); full-precision floats take about 19.
    quantized = (rng.integers(0, 256, ELEMENTS) / 256).astype(np.float32)
    full = rng.random(ELEMENTS, dtype=np.float32)

    def json_event(values: np.ndarray) -> dict[str, Any]:
        body = {"inputs": [{"name": "x", "shape": [1, ELEMENTS], "datatype": "FP32", "data": values.tolist()}]}
        return http_event("POST", path, json.dumps(body))

    def bin_event(values: np.ndarray) -> dict[str, Any]:
        header = {"inputs": [{"name": "x", "shape": [1, ELEMENTS], "datatype": "FP32",
                              "parameters": {"binary_data_size": ELEMENTS * 4}}],
                  "parameters": {"binary_data_output": True}}
        return binary_event(path, header, values.astype("<f4").tobytes())

    events = {"JSON in, JSON out": json_event(quantized), "binary in, binary out": bin_event(quantized)}
    sizes: dict[str, tuple[int, int, int]] = {}
    for label, event in events.items():  # each answers the tensor it was given, before anything is timed
        result = inference.handler(event, context)
        assert result["statusCode"] == 200, result["body"][:300]
        if result.get("isBase64Encoded"):
            _, raw = binary_outputs(result)
            np.testing.assert_array_equal(np.frombuffer(raw, "<f4"), quantized)
            http_request = len(base64.b64decode(event["body"]))
        else:
            np.testing.assert_array_equal(json.loads(result["body"])["outputs"][0]["data"], quantized)
            http_request = len(event["body"].encode())
        sizes[label] = (http_request, len(event["body"].encode()), len(result["body"].encode()))
    timings = interleaved({label: (lambda e=e: inference.handler(e, context)) for label, e in events.items()},
                          LARGE_ROUNDS, LARGE_N, warmup=2)

    print(f"\n(b) A 1 MiB FP32 tensor ({ELEMENTS:,} values, 8-bit data k/256) through the Identity model "
          f"{IDENTITY}")
    print(f"{'request / answer':24} {'N':>4} {'median ms':>10} {'p99 ms':>8} {'HTTP request B':>15} "
          f"{'event body B':>13} {'answer body B':>14}")
    for label, timing in timings.items():
        http_request, event_body, answer = sizes[label]
        print(f"{label:24} {len(timing.samples):>4} {timing.median_us / 1e3:>10.1f} {timing.p99_us / 1e3:>8.1f} "
              f"{http_request:>15,} {event_body:>13,} {answer:>14,}")
    json_t, bin_t = timings.values()
    print(f"JSON / binary: {json_t.median_us / bin_t.median_us:.1f}x the time, "
          f"{sizes['JSON in, JSON out'][1] / sizes['binary in, binary out'][1]:.1f}x the event body, "
          f"{sizes['JSON in, JSON out'][2] / sizes['binary in, binary out'][2]:.1f}x the answer body")

    # Full-precision random floats: what a JSON answer costs, against the answer limit.
    full_json = json_event(full)
    result = inference.handler(full_json, context)
    full_binary = bin_event(full)
    binary_result = inference.handler(full_binary, context)
    print(f"\nThe same tensor of full-precision random FP32 values (~19 characters a value in JSON), "
          f"against the JSON answer limit {MAX_JSON_ANSWER_BYTES:,} B:")
    print(f"  JSON in, JSON out:     event body {len(full_json['body']):>9,} B -> {result['statusCode']} "
          f"{json.loads(result['body']).get('error', '')}")
    print(f"  binary in, binary out: event body {len(full_binary['body']):>9,} B -> {binary_result['statusCode']} "
          f"answer body {len(binary_result['body']):,} B")
    return {
        "json_ms": json_t.median_us / 1e3, "binary_ms": bin_t.median_us / 1e3,
        "json_event_bytes": sizes["JSON in, JSON out"][1], "binary_event_bytes": sizes["binary in, binary out"][1],
        "json_answer_bytes": sizes["JSON in, JSON out"][2], "binary_answer_bytes": sizes["binary in, binary out"][2],
        "full_precision_json_status": result["statusCode"],
    }


def main() -> dict[str, float]:
    os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp()
    server, _ = start_s3(models_with_identity())
    try:
        from generate_events import EVENT_TOKEN_HASH
        from prediction_service.composition import components
        from prediction_service.web.auth import default_verifier
        from support import lambda_context, load_function

        # the events carry the event files' test token (support.http_event): accept it
        os.environ["API_TOKEN_HASHES"] = EVENT_TOKEN_HASH
        default_verifier.cache_clear()
        components.cache_clear()  # run_all: an earlier benchmark's service points at its own server
        models, inference = load_function("models"), load_function("inference")
        context = lambda_context()
        figures = warm_path(models, inference, context)
        figures |= large_tensor(inference, context)
    finally:
        server.stop()
    return figures


if __name__ == "__main__":
    main()
