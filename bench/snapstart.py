"""SnapStart, as far as it can be measured here: the first request after the hooks ran
(before-snapshot, then after-restore, as Lambda calls them) against a warm request, in the
same process against a moto S3 server. The restore itself (Firecracker resuming the
snapshot) cannot run here; AWS bills and reports it as `Restore Duration`.
"""

from __future__ import annotations

import time
from typing import Any

from harness import HEADER, start_s3, time_calls

WARM_N = 300
CASES = {
    "forecast (GET /v1/models/drive_stats_a/predict)": ("GET", "/v1/models/drive_stats_a/predict", None),
    "classification (POST /v1/models/user_churn/predict)": (
        "POST", "/v1/models/user_churn/predict", '{"ids": [1, 5, 100], "probability": true}'
    ),
}


def main() -> dict[str, float]:
    server, _ = start_s3()
    import snapshot_restore_py
    from support import http_event, lambda_context, load_function

    function = load_function("models")  # registers the hooks
    context = lambda_context()
    started = time.perf_counter()
    for func, args, kwargs in snapshot_restore_py.get_before_snapshot():
        func(*args, **kwargs)
    snapshot_s = time.perf_counter() - started
    started = time.perf_counter()
    for func, args, kwargs in snapshot_restore_py.get_after_restore():
        func(*args, **kwargs)
    restore_s = time.perf_counter() - started
    figures: dict[str, Any] = {"before_snapshot_ms": snapshot_s * 1000, "after_restore_ms": restore_s * 1000}
    print("SnapStart hooks, then requests (models function, in process, moto S3)")
    print(f"before-snapshot hook (load and warm every model): {snapshot_s * 1000:.1f} ms")
    print(f"after-restore hook (new S3 client, reseed, drop token hashes, expire manifest): {restore_s * 1000:.1f} ms")
    print(HEADER)
    for label, (method, path, body) in CASES.items():
        event = http_event(method, path, body)
        first_started = time.perf_counter()
        result = function.handler(event, context)
        first_us = (time.perf_counter() - first_started) * 1e6
        assert result["statusCode"] == 200, result["body"]
        warm = time_calls(f"  warm: {label}", lambda e=event: function.handler(e, context), WARM_N, warmup=20)
        ratio = first_us / warm.median_us
        print(f"  first after restore: {label:40} {first_us:>12.1f} us")
        print(warm.row())
        print(f"  first / warm median: {ratio:.2f}x (target <= 2x)")
        figures[label] = ratio
    server.stop()
    return figures


if __name__ == "__main__":
    main()
