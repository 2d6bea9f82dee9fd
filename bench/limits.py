"""The request limits (prediction_service/limits.py) against their targets, each case in a fresh
process holding the function's models, against moto S3 on 127.0.0.1:

- the largest request the limits accept, for every shipped model: it finishes within 10 s and adds
  at most 300 MB over the warm process;
- requests over a limit: refused within 100 ms and 50 MB;
- `TEXT_REQUESTS` (100 by default) largest requests to each text model: RSS after them within 1.3x
  of its value after the first.

    python bench/limits.py [--text-requests N]
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from harness import ROOT, start_s3

SECONDS, ADDED_MB = 10.0, 300
REFUSE_SECONDS, REFUSE_MB = 0.1, 50
TEXT_GROWTH = 1.3
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi").split(" ")


def rows_json(name: str, rows: int, width: int, datatype: str = "FP32") -> str:
    zero = "0" if datatype != "BOOL" else "false"
    return json.dumps({"name": name, "shape": [rows, width], "datatype": datatype, "data": ["ZEROS"]}).replace(
        '"ZEROS"', ",".join([zero] * (rows * width)))


def largest(model: str) -> tuple[str, str, str, dict[str, str]]:
    """(function, path, body, headers) of the largest request the limits accept for `model`."""
    if model.startswith("all-minilm"):
        texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(300)) for i in range(64)]  # 256 word pieces
        return "models", f"/v1/models/{model}/predict", json.dumps({"texts": texts}), {}
    if model == "digits":
        rows = 28_000  # 64 pixels and a threshold a row in, ~208 B of JSON answer a row out: 6 MB at ~30,000 rows
        pixels = rows_json("pixels", rows, 64, "UINT8").replace(f"[{rows}, 64]", f"[{rows}, 8, 8]")
        threshold = json.dumps({"name": "min_confidence", "shape": [rows], "datatype": "FP32", "data": [0.5] * rows},
                               separators=(",", ":"))
        return "inference", f"/v2/models/{model}/infer", '{"inputs": [' + pixels + "," + threshold + "]}", {}
    # within 6 MB and within what the answer's JSON can hold (a label and two probabilities: ~45 bytes a row)
    width, rows = (4, 130_000) if model == "user_churn" else (30, 100_000)
    return "inference", f"/v2/models/{model}/infer", '{"inputs": [' + rows_json("X", rows, width) + "]}", {}


def refused() -> dict[str, tuple[str, str, Any, dict[str, str]]]:
    bomb = b'{"inputs": [{"name": "X", "shape": [7500000, 4], "datatype": "FP32", "data": [' + b"0," * 30_000_000
    return {
        "gzip body unpacking to 60 MB": ("inference", "/v2/models/user_churn/infer",
                                         gzip.compress(bomb + b"0]}]}", 9),
                                         {"content-encoding": "gzip"}),
        "shape of 30 M values": ("inference", "/v2/models/user_churn/infer",
                                 json.dumps({"inputs": [{"name": "X", "shape": [7_500_000, 4], "datatype": "FP32",
                                                         "data": [0.0] * 4}]}), {}),
        "answer beyond 6 MB (786,000 rows)": ("inference", "/v2/models/user_churn/infer",
                                              '{"inputs": [' + rows_json("X", 786_000, 4).replace(".0", "") + "]}",
                                              {}),
        "batch of 16 x 64 texts": ("batch", "/v1/predict", json.dumps({"predictions": [
            {"model_name": "all-minilm-l6-v2", "texts": ["a text"] * 64}] * 16}), {}),
        "body of 7 MB": ("inference", "/v2/models/user_churn/infer", "x" * (7 * 1024 * 1024), {}),
    }


# -- in the child process -------------------------------------------------------------------


def rss_mb() -> float:
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024


def peak_mb() -> float:
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS starts again from the current RSS


def call(function: Any, path: str, body: str | bytes, headers: dict[str, str]) -> dict[str, Any]:
    import base64

    from support import http_event, lambda_context

    event = http_event("POST", path, body if isinstance(body, str) else None, headers)
    if isinstance(body, bytes):
        event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    return function.handler(event, lambda_context())


def measure(kind: str, name: str, repeat: int) -> dict[str, Any]:
    """In the child: warm the model with a small request, then time the case and read the memory."""
    import contextlib
    import io

    from support import load_function

    function_name, path, body, headers = largest(name) if kind == "largest" else refused()[name]
    function = load_function(function_name)
    model = path.split("/")[3] if kind == "largest" else "user_churn"
    small = {"models": '{"texts": ["warm"]}'}.get(function_name)
    with contextlib.redirect_stdout(io.StringIO()):
        if small:
            call(load_function("models"), f"/v1/models/{model}/predict", small, {})
        else:
            warm_function, warm_path, warm_body, _ = largest(model) if kind == "largest" else largest("user_churn")
            call(load_function(warm_function), warm_path, json.dumps(_one_row(json.loads(warm_body))), {})
        warm = rss_mb()
        reset_peak()
        seconds, statuses, after = [], [], []
        for _ in range(repeat):
            started = time.perf_counter()
            result = call(function, path, body, headers)
            seconds.append(time.perf_counter() - started)
            statuses.append(result["statusCode"])
            after.append(rss_mb())
    return {"warm_mb": warm, "peak_mb": peak_mb(), "after_mb": after, "seconds": seconds, "statuses": statuses,
            "answer": result["body"][:200]}


def _one_row(request: dict[str, Any]) -> dict[str, Any]:
    for tensor in request["inputs"]:
        count = 1
        for d in tensor["shape"][1:]:
            count *= d
        tensor["shape"][0] = 1
        tensor["data"] = tensor["data"][:count]
    return request


# -- the benchmark ----------------------------------------------------------------------------


def run_case(kind: str, name: str, repeat: int = 1) -> dict[str, Any]:
    env = dict(os.environ, MODEL_CACHE_DIR=tempfile.mkdtemp(), POWERTOOLS_METRICS_DISABLED="true")
    command = [sys.executable, __file__, "--case", kind, name, str(repeat)]
    out = subprocess.run(command, cwd=ROOT / "bench", env=env, capture_output=True, text=True)  # noqa: S603
    if out.returncode != 0:
        raise RuntimeError(f"limits.py --case {kind} {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.split("BENCH ", 1)[1])


def main(text_requests: int = 100) -> dict[str, float]:
    server, _ = start_s3()
    figures: dict[str, float] = {}
    try:
        from harness import BUCKET
        from local_api import text_models
        from publish_models import publish

        publish(server.client(), BUCKET, text_models=text_models())
        print(f"The largest request the limits accept, each model in a fresh process (targets: within {SECONDS:g} s, "
              f"at most {ADDED_MB} MB over the warm process)")
        print(f"{'model':24} {'status':>6} {'seconds':>8} {'peak MB over warm':>18} {'held after MB':>14}  verdict")
        for model in ("drive_stats_a", "drive_stats_b", "drive_stats_mean", "user_churn", "digits",
                      "all-minilm-l6-v2", "all-minilm-l6-v2-fp32"):
            r = run_case("largest", model)
            added = r["peak_mb"] - r["warm_mb"]
            ok = r["statuses"][0] == 200 and r["seconds"][0] <= SECONDS and added <= ADDED_MB
            print(f"{model:24} {r['statuses'][0]:>6} {r['seconds'][0]:>8.2f} {added:>18.0f} "
                  f"{r['after_mb'][0] - r['warm_mb']:>14.0f}  {'met' if ok else 'missed'}")
            figures[f"{model}_largest_s"] = r["seconds"][0]
        print(f"\nRequests over a limit (targets: refused within {REFUSE_SECONDS * 1000:g} ms and {REFUSE_MB} MB)")
        print(f"{'request':36} {'status':>6} {'ms':>8} {'peak MB over warm':>18}  verdict")
        for name in refused():
            r = run_case("refused", name)
            added = r["peak_mb"] - r["warm_mb"]
            ok = r["statuses"][0] in (400, 413) and r["seconds"][0] <= REFUSE_SECONDS and added <= REFUSE_MB
            print(f"{name:36} {r['statuses'][0]:>6} {r['seconds'][0] * 1000:>8.1f} {added:>18.0f}  "
                  f"{'met' if ok else 'missed'}")
        print(f"\n{text_requests} largest requests to each text model (target: RSS after them within {TEXT_GROWTH}x "
              "of its value after the first)")
        for model in ("all-minilm-l6-v2", "all-minilm-l6-v2-fp32"):
            r = run_case("largest", model, text_requests)
            first, last = r["after_mb"][0], r["after_mb"][-1]
            print(f"{model:24} RSS after the first {first:.0f} MB, after {len(r['after_mb'])} {last:.0f} MB "
                  f"({last / first:.2f}x, {'met' if last <= TEXT_GROWTH * first else 'missed'}); "
                  f"seconds median {sorted(r['seconds'])[len(r['seconds']) // 2]:.2f}, max {max(r['seconds']):.2f}")
            figures[f"{model}_rss_growth"] = last / first
    finally:
        server.stop()
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--case"]:
        print("BENCH " + json.dumps(measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        count = int(sys.argv[sys.argv.index("--text-requests") + 1]) if "--text-requests" in sys.argv else 100
        main(count)
