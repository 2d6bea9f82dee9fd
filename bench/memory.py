"""Peak memory (RSS) of each function after warm-up, each in a fresh process against moto S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from harness import ROOT, start_s3

WORKLOAD = """
import json, resource, sys
sys.path[:0] = {paths!r}
from support import http_event, lambda_context, load_event, load_function
from pathlib import Path
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
function = load_function({function!r})
events = [load_event(Path({root!r}) / "events" / name) for name in {events!r}]
for _ in range(200):
    for event in events:
        function.handler(event, lambda_context())
print(json.dumps({{"python_mb": baseline / 1024, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

FUNCTIONS = {
    "predict": ["forecast_drive_stats_a.json", "predict_ids_probability.json", "predict_forecast_window.json"],
    "batch": ["batch_drive_stats.json", "batch_mixed_statuses.json"],
    "runs": ["runs_without_record.json"],
    "authorizer": ["authorizer_valid_token.json", "authorizer_wrong_token.json"],
}


def main() -> dict[str, float]:
    server, _ = start_s3()
    paths = [str(ROOT / "layers/prediction"), str(ROOT / "scripts"), str(ROOT / "tests")]
    from generate_events import EVENT_TOKEN_HASH

    env = dict(os.environ, MODEL_CACHE_DIR=tempfile.mkdtemp(), PREFETCH_MODELS="none", API_TOKEN_HASHES=EVENT_TOKEN_HASH)
    figures = {}
    print("Peak RSS after warm-up (200 rounds of the function's events)")
    print(f"{'function':12} {'peak MB':>9} {'of 512 MB':>10}")
    for function, events in FUNCTIONS.items():
        code = WORKLOAD.format(paths=paths, function=function, root=str(ROOT), events=events)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        peak = json.loads(out)["peak_mb"]
        figures[function] = peak
        print(f"{function:12} {peak:>9.1f} {peak / 512:>9.0%}")
    server.stop()
    return figures


if __name__ == "__main__":
    main()
