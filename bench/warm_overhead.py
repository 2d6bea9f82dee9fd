"""Warm request overhead: the whole handler path against raw `session.run` on the same input.

Handler path: API Gateway event in, Mangum, FastAPI, cache hit, inference, JSON out.
For scale, the same run also times the floor: a bare FastAPI app with one async route
that validates the same body and returns a constant, wrapped by Mangum.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
from harness import HEADER, start_s3, time_calls

N = 5000


def bare_fastapi_handler() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import Response
    from mangum import Mangum
    from prediction_service.protocols.v1.schemas import PredictRequest

    app = FastAPI()

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, body: PredictRequest) -> Response:
        return Response('{"status":"Success"}', media_type="application/json")

    return Mangum(app, lifespan="off")


def main() -> dict[str, float]:
    os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp()
    server, _ = start_s3()
    from prediction_service.composition import components
    from support import http_event, lambda_context, load_function

    predict = load_function("models")
    window = [round(0.45 + 0.004 * i, 3) for i in range(30)]
    event = http_event("POST", "/v1/models/drive_stats_a/predict", json.dumps({"inputs": [window]}))
    context = lambda_context()
    assert predict.handler(event, context)["statusCode"] == 200
    registry = components().registry
    session = registry.model(registry.spec("drive_stats_a")).session
    x = np.asarray([window], dtype=np.float32)
    raw = time_calls("raw session.run (30 in, 3 out)", lambda: session.run(None, {"X": x}), N)
    handler = time_calls("handler: event -> JSON (POST predict)", lambda: predict.handler(event, context), N)
    bare = bare_fastapi_handler()
    floor = time_calls("floor: bare FastAPI + Mangum, same body", lambda: bare(event, context), N)
    server.stop()
    overhead = handler.median_us - raw.median_us
    print("Warm request overhead")
    print(HEADER)
    print(raw.row())
    print(handler.row())
    print(floor.row())
    print(f"overhead: {overhead:.1f} us median (target <= 150 us); handler/raw ratio {handler.median_us / raw.median_us:.1f}x")
    print(f"of which the bare FastAPI + Mangum floor: {floor.median_us:.1f} us")
    return {"raw_us": raw.median_us, "handler_us": handler.median_us, "overhead_us": overhead, "floor_us": floor.median_us}


if __name__ == "__main__":
    main()
