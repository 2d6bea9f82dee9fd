"""SnapStart, as far as it can be measured here: the first request after the hooks ran
(before-snapshot, then after-restore, as Lambda calls them) against a warm request, for every
function that serves models: models (a forecast of drive_stats_a), batch (drive_stats_a and _b),
runs (the playground's document, events/runs_document_probability.json, which asks for a run
record: every request, warm ones too, writes one to S3) and inference (a v2 infer of user_churn,
events/inference_infer_json.json). Target: the first request at most 2x a warm one.

Each measurement is a fresh process (`python snapstart.py --function NAME`) against one moto
S3 server: it imports the function (which registers the hooks), runs the hooks, times the first
request, then warm ones. Nothing an earlier function did warms the next. The functions take
turns, ROUNDS times. The restore itself (Firecracker resuming the snapshot) cannot run here;
AWS bills and reports it as `Restore Duration`.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from harness import HEADER, ROOT, Timing, start_s3, time_calls

ROUNDS = 3
WARM_N = 300
TARGET = 2.0  # first request after the restore / warm median
CASES = {  # function: (what it is asked, its event file in events/)
    "models": ("GET drive_stats_a/predict", "models_forecast_drive_stats_a.json"),
    "batch": ("POST /v1/predict, 2 models", "batch_drive_stats.json"),
    "runs": ("POST /api/runs, playground doc", "runs_document_probability.json"),
    "inference": ("POST v2 user_churn/infer", "inference_infer_json.json"),
}


def measure(name: str) -> dict[str, Any]:
    """In this (fresh) process: the function's hooks, its first request, then warm ones."""
    import snapshot_restore_py
    from support import lambda_context, load_event, load_function

    function = load_function(name)  # registers the hooks
    assert len(snapshot_restore_py.get_before_snapshot()) == 1 == len(snapshot_restore_py.get_after_restore())
    context = lambda_context(name)
    event = load_event(ROOT / "events" / CASES[name][1])
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the EMF lines, as in time_calls
        started = time.perf_counter()
        for func, args, kwargs in snapshot_restore_py.get_before_snapshot():
            func(*args, **kwargs)
        snapshot_s = time.perf_counter() - started
        started = time.perf_counter()
        for func, args, kwargs in snapshot_restore_py.get_after_restore():
            func(*args, **kwargs)
        restore_s = time.perf_counter() - started
        started = time.perf_counter()
        result = function.handler(dict(event), context)
        first_s = time.perf_counter() - started
    assert result["statusCode"] == 200, result["body"]
    warm = time_calls(name, lambda: function.handler(dict(event), context), WARM_N, warmup=20)
    return {"before_snapshot_s": snapshot_s, "after_restore_s": restore_s, "first_s": first_s,
            "warm_samples": warm.samples}


def main() -> dict[str, float]:
    server, _ = start_s3()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
    try:
        for _ in range(ROUNDS):
            for name in CASES:
                env = dict(os.environ, MODEL_CACHE_DIR=tempfile.mkdtemp(), PREFETCH_MODELS="none")
                command = [sys.executable, __file__, "--function", name]  # this script, a name of CASES
                out = subprocess.run(command, cwd=ROOT / "bench", env=env, capture_output=True, text=True)  # noqa: S603
                if out.returncode != 0:
                    raise RuntimeError(f"snapstart.py --function {name} failed:\n{out.stderr[-4000:]}")
                runs[name].append(json.loads(out.stdout.split("BENCH ", 1)[1]))
    finally:
        server.stop()
    print(f"SnapStart hooks, then the first request and {WARM_N} warm ones, each function in a fresh process "
          f"({ROUNDS} rounds, the functions taking turns; medians; moto S3)")
    print(f"{'function':10} {'before-snapshot ms':>18} {'after-restore ms':>16}")
    for name, done in runs.items():
        print(f"{name:10} {statistics.median(r['before_snapshot_s'] for r in done) * 1000:>18.1f} "
              f"{statistics.median(r['after_restore_s'] for r in done) * 1000:>16.1f}")
    print("(before-snapshot: load and warm every model, one request through the handler; after-restore: new S3 "
          "client, reseed, drop token hashes, revalidate the manifest)\n")
    print(f"{HEADER} {'first us':>10} {'first/warm':>10}")
    figures: dict[str, float] = {}
    for name, done in runs.items():
        label, _ = CASES[name]
        warm = Timing(f"{name}: {label}", [s for r in done for s in r["warm_samples"]])
        first_us = statistics.median(r["first_s"] for r in done) * 1e6
        ratio = first_us / warm.median_us
        print(f"{warm.row()} {first_us:>10.1f} {ratio:>9.2f}x")
        figures |= {f"{name}_first_us": first_us, f"{name}_warm_us": warm.median_us, f"{name}_first_over_warm": ratio}
    print(f"\nfirst request after the restore / warm median (target <= {TARGET:g}x), each round's first in brackets:")
    for name, done in runs.items():
        ratio = figures[f"{name}_first_over_warm"]
        each = ", ".join(f"{r['first_s'] * 1e6:.0f}" for r in done)
        print(f"  {name:10} {ratio:5.2f}x  {'met' if ratio <= TARGET else 'missed'}  "
              f"(first {figures[f'{name}_first_us']:.0f} us [{each}], warm {figures[f'{name}_warm_us']:.0f} us)")
    print("  (runs: the playground's document asks for a run record, so every request, warm ones too, writes one "
          "to S3)")
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--function"]:
        print("BENCH " + json.dumps(measure(sys.argv[2])))
    else:
        main()
