"""Warm request overhead: the whole handler path against raw `session.run` on the same input.

Handler path: API Gateway event in, Mangum, FastAPI, cache hit, inference, JSON out.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
from harness import HEADER, start_s3, time_calls

N = 5000


def main() -> dict[str, float]:
    os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp()
    server, _ = start_s3()
    from prediction_service.runtime import default_service
    from support import http_event, lambda_context, load_function

    predict = load_function("predict")
    window = [round(0.45 + 0.004 * i, 3) for i in range(30)]
    event = http_event("POST", "/v1/models/drive_stats_a/predict", json.dumps({"inputs": [window]}))
    context = lambda_context()
    assert predict.handler(event, context)["statusCode"] == 200
    registry = default_service().registry
    session = registry.session(registry.spec("drive_stats_a"))
    x = np.asarray([window], dtype=np.float32)
    raw = time_calls("raw session.run (30 in, 3 out)", lambda: session.run(None, {"X": x}), N)
    handler = time_calls("handler: event -> JSON (POST predict)", lambda: predict.handler(event, context), N)
    server.stop()
    overhead = handler.median_us - raw.median_us
    print("Warm request overhead")
    print(HEADER)
    print(raw.row())
    print(handler.row())
    print(f"overhead: {overhead:.1f} us median (target <= 150 us); handler/raw ratio {handler.median_us / raw.median_us:.1f}x")
    return {"raw_us": raw.median_us, "handler_us": handler.median_us, "overhead_us": overhead}


if __name__ == "__main__":
    main()
