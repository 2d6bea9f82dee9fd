"""Peak memory (RSS) of each function after warm-up, each in a fresh process against moto S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from harness import CHILD_PRELUDE, ROOT, start_s3

WORKLOAD = CHILD_PRELUDE + """
root = Path({root!r})
baseline = high_water_mb()
spec = importlib.util.spec_from_file_location("app", root / "functions" / {function!r} / "app.py")
function = importlib.util.module_from_spec(spec)
spec.loader.exec_module(function)
events = [json.loads((root / "events" / name).read_text()) for name in {events!r}]
context = types.SimpleNamespace(aws_request_id="bench", function_name={function!r}, function_version="$LATEST",
                                memory_limit_in_mb=1024, invoked_function_arn="arn:aws:lambda:us-east-1:1:function:bench")
for _ in range(200):
    for event in events:
        function.handler(event, context)
print(json.dumps({{"python_mb": baseline, "peak_mb": high_water_mb()}}))
"""

FUNCTIONS = {
    "models": ["models_forecast_drive_stats_a.json", "models_predict_ids_probability.json", "models_predict_forecast_window.json"],
    "batch": ["batch_drive_stats.json", "batch_mixed_statuses.json"],
    "runs": ["runs_without_record.json"],
    "authorizer": ["authorizer_valid_token.json", "authorizer_wrong_token.json"],
    "docs": ["docs_openapi_document.json", "docs_playground_page.json", "docs_page.json"],
}


def main() -> dict[str, float]:
    server, _ = start_s3()
    paths = [str(ROOT / "layers/prediction")]
    from generate_events import EVENT_TOKEN_HASH

    env = dict(os.environ, MODEL_CACHE_DIR=tempfile.mkdtemp(), PREFETCH_MODELS="none", API_TOKEN_HASHES=EVENT_TOKEN_HASH,
               POWERTOOLS_METRICS_DISABLED="true")  # the metrics' stdout is not the function's output
    figures = {}
    print("Peak RSS after warm-up (200 rounds of the function's events)")
    print(f"{'function':12} {'peak MB':>9} {'of 512 MB':>10}")
    for function, events in FUNCTIONS.items():
        code = WORKLOAD.format(paths=paths, function=function, root=str(ROOT), events=events)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        peak = json.loads(out.strip().splitlines()[-1])["peak_mb"]
        figures[function] = peak
        print(f"{function:12} {peak:>9.1f} {peak / 512:>9.0%}")
    server.stop()
    return figures


if __name__ == "__main__":
    main()
