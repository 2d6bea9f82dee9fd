"""Warm request overhead: the whole handler path against the framework's floor, in one run.

- the forecast: `GET /v1/models/drive_stats_a/predict` through the models function's handler
  (API Gateway event in, Powertools, Mangum, FastAPI, cache hit, inference, JSON out, metrics
  flushed);
- the floor: a bare FastAPI app with one `async def` route answering the same JSON, wrapped by
  Mangum(lifespan="off"), given the same event;
- a v2 infer of the same model (`POST /v2/models/drive_stats_a/infer`, the forecast's 30-value
  window as FP32 [1, 30]) through the inference function's handler, against a bare route that
  answers its JSON to the same event;
- for scale, raw `session.run` of the model on that window.

The cases take turns in rounds (v2_protocol.interleaved), so drifts of the machine's speed fall
on all of them alike. Targets: the handler's median at most 2x the bare route's, its p99 under
1000 us; the same two for the v2 infer.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
from harness import HEADER, Timing, start_s3
from v2_protocol import interleaved

ROUNDS = 30
N_PER_ROUND = 100  # 3000 timed calls of each case, after warm-up
WARMUP = 10  # per round, after the warm-up of every case before the first round
MEDIAN_TARGET = 2.0  # x the bare route's median
P99_TARGET_US = 1000.0


def bare_fastapi_handler(method: str, path: str, body: str) -> Any:
    """A FastAPI app with one `async def` route that answers `body` as JSON, behind Mangum."""
    from fastapi import FastAPI
    from fastapi.responses import Response
    from mangum import Mangum

    app = FastAPI()
    answer = body.encode()

    @app.api_route(path, methods=[method])
    async def route(name: str) -> Response:
        return Response(answer, media_type="application/json")

    return Mangum(app, lifespan="off")


def verdict(met: bool) -> str:
    return "met" if met else "missed"


def report(label: str, timing: Timing, bare: Timing) -> dict[str, float]:
    ratio = timing.median_us / bare.median_us
    print(f"{label}: median {timing.median_us:.1f} us = {ratio:.2f}x the bare route's {bare.median_us:.1f} us "
          f"(target <= {MEDIAN_TARGET:g}x: {verdict(ratio <= MEDIAN_TARGET)}); "
          f"p99 {timing.p99_us:.1f} us (target < {P99_TARGET_US:.0f} us: {verdict(timing.p99_us < P99_TARGET_US)})")
    return {"median_us": timing.median_us, "p99_us": timing.p99_us, "over_bare": ratio}


def main() -> dict[str, float]:
    os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp()
    os.environ.setdefault("AWS_LAMBDA_FUNCTION_NAME", "bench")  # as Lambda sets it (the handler then acts as there)
    server, _ = start_s3()
    try:
        from prediction_service.composition import components
        from support import http_event, lambda_context, load_function

        models, inference = load_function("models"), load_function("inference")
        context = lambda_context()
        forecast = http_event("GET", "/v1/models/drive_stats_a/predict")
        answer = models.handler(forecast, context)
        assert answer["statusCode"] == 200, answer["body"]
        window = components().service.describe("drive_stats_a").window  # what the forecast reads
        assert window is not None and len(window) == 30
        infer = http_event("POST", "/v2/models/drive_stats_a/infer", json.dumps(
            {"inputs": [{"name": "X", "shape": [1, 30], "datatype": "FP32", "data": window}]}))
        inferred = inference.handler(infer, context)
        assert inferred["statusCode"] == 200, inferred["body"]
        # the same model on the same window both ways, before anything is timed
        (output,) = json.loads(inferred["body"])["outputs"]
        np.testing.assert_allclose(output["data"], json.loads(answer["body"])["prediction"], rtol=1e-6)
        bare_get = bare_fastapi_handler("GET", "/v1/models/{name}/predict", answer["body"])
        bare_post = bare_fastapi_handler("POST", "/v2/models/{name}/infer", inferred["body"])
        for bare, event, expected in ((bare_get, forecast, answer), (bare_post, infer, inferred)):
            floor = bare(event, context)
            assert floor["statusCode"] == 200 and floor["body"] == expected["body"], floor
        registry = components().registry
        session = registry.runtime(registry.route("drive_stats_a")).session
        x = np.asarray([window], dtype=np.float32)

        timings = interleaved({
            "forecast handler, GET drive_stats_a/predict": lambda: models.handler(forecast, context),
            "bare FastAPI + Mangum route, same GET": lambda: bare_get(forecast, context),
            "v2 infer handler, POST drive_stats_a/infer": lambda: inference.handler(infer, context),
            "bare FastAPI + Mangum route, same v2 POST": lambda: bare_post(infer, context),
            "raw session.run (30 in, 3 out)": lambda: session.run(None, {"X": x}),
        }, ROUNDS, N_PER_ROUND, warmup=WARMUP)
    finally:
        server.stop()
    handler_t, bare_t, v2_t, bare_v2_t, raw_t = timings.values()
    print(f"Warm request overhead (each case {ROUNDS} rounds of {N_PER_ROUND} calls, the cases taking turns)")
    print(HEADER)
    for timing in timings.values():
        print(timing.row())
    figures = {f"forecast_{k}": v for k, v in report("forecast handler", handler_t, bare_t).items()}
    figures |= {f"v2_{k}": v for k, v in report("v2 infer", v2_t, bare_v2_t).items()}
    print(f"(the v2 infer is {v2_t.median_us / bare_t.median_us:.2f}x the bare GET route; the forecast handler is "
          f"{handler_t.median_us - raw_t.median_us:.1f} us over raw session.run, {raw_t.median_us:.1f} us)")
    return figures | {"bare_us": bare_t.median_us, "bare_v2_us": bare_v2_t.median_us, "raw_us": raw_t.median_us}


if __name__ == "__main__":
    main()
