"""Batch parallelism: 1, 2, 4 and 8 models in one POST /v1/predict against the same models
predicted one after another, cold (models downloading; median of 5 runs from an empty
cache) and warm (models in memory; median of 2000)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import yaml
from harness import ROOT, start_s3, time_calls

SIZES = [1, 2, 4, 8]
WARM_N = 2000
COLD_RUNS = 5  # each cold run starts from an empty cache


def eight_models() -> Path:
    """models/ with eight forecasters: copies of drive_stats_a and _b under new names."""
    directory = Path(tempfile.mkdtemp()) / "models"
    shutil.copytree(ROOT / "models", directory)
    manifest = yaml.safe_load((directory / "manifest.yaml").read_text())
    base = {m["name"]: m for m in manifest["models"]}
    manifest["models"] = [dict(base[f"drive_stats_{'ab'[i % 2]}"], name=f"forecaster_{i}") for i in range(8)]
    (directory / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return directory


def main() -> dict[str, float]:
    server, _ = start_s3(eight_models())
    from prediction_service.composition import components
    from support import http_event, lambda_context, load_function

    batch = load_function("batch")

    def cold() -> None:
        """A fresh service and /tmp: every model is downloaded again (the manifest is loaded first)."""
        os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp()
        components.cache_clear()
        components().registry.manifest()

    def single(model: str) -> dict[str, object]:
        return http_event("POST", "/v1/predict", json.dumps({"predictions": [{"model_name": model}]}))

    context = lambda_context()
    figures: dict[str, float] = {}
    print("Batch: one POST /v1/predict of n models vs the same n predicted one after another")
    print(f"{'n':>3} {'state':6} {'batch ms':>10} {'sequential ms':>14} {'slowest single ms':>18} {'batch/slowest':>14}")
    for n in SIZES:
        names = [f"forecaster_{i}" for i in range(n)]
        body = json.dumps({"predictions": [{"model_name": m} for m in names]})
        event = http_event("POST", "/v1/predict", body)
        cold_batches, cold_sums, cold_slowest = [], [], []
        for _ in range(COLD_RUNS):
            cold()
            cold_batches.append(time_calls("", lambda: batch.handler(event, context), 1, warmup=0).samples[0])
            cold()
            singles = [time_calls("", lambda m=m: batch.handler(single(m), context), 1, warmup=0).samples[0]
                       for m in names]
            cold_sums.append(sum(singles))
            cold_slowest.append(max(singles))
        cold_batch = statistics.median(cold_batches)
        singles = [statistics.median(cold_sums), statistics.median(cold_slowest)]
        print(f"{n:>3} {'cold':6} {cold_batch * 1e3:>10.1f} {singles[0] * 1e3:>14.1f} {singles[1] * 1e3:>18.1f} "
              f"{cold_batch / singles[1]:>13.2f}x")
        warm_batch = time_calls(f"warm batch {n}", lambda: batch.handler(event, context), WARM_N)
        warm_singles = [time_calls(m, lambda m=m: batch.handler(single(m), context), WARM_N) for m in names]
        slowest = max(t.median_us for t in warm_singles)
        print(f"{n:>3} {'warm':6} {warm_batch.median_us / 1e3:>10.3f} {sum(t.median_us for t in warm_singles) / 1e3:>14.3f} "
              f"{slowest / 1e3:>18.3f} {warm_batch.median_us / slowest:>13.2f}x")
        figures[f"cold_{n}"] = cold_batch / singles[1]
        figures[f"warm_{n}"] = warm_batch.median_us / slowest
    server.stop()
    print("target: a batch of 4 at most 1.5x the slowest single model")
    return figures


if __name__ == "__main__":
    main()
