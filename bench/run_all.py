"""`make bench`: every benchmark in one run, then a chart of batch latency and the cold-start breakdown.

    python bench/run_all.py [--chart docs/performance.png]
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from harness import ROOT

BENCHMARKS = ["warm_overhead", "cold_start", "batch", "size", "memory", "v2_protocol", "model_loading", "text_model",
              "snapstart", "rollouts"]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    batch = results["batch"]
    sizes = [1, 2, 4, 8]
    left.plot(sizes, [batch[f"cold_{n}"] for n in sizes], "o-", label="cold (models downloading)")
    left.plot(sizes, [batch[f"warm_{n}"] for n in sizes], "s-", label="warm (models in memory)")
    left.axhline(1.5, color="grey", linestyle="--", label="target for 4 models: 1.5x")
    left.set_xlabel("models in one POST /v1/predict")
    left.set_ylabel("batch latency / slowest single model")
    left.set_xticks(sizes)
    left.set_title("Batch latency by batch size")
    left.legend()
    cold = results["cold_start"]
    steps = {k.split("step: ", 1)[1]: v * 1000 for k, v in cold.items() if k.startswith("step: ")}
    ours = {name: ms for name, ms in steps.items() if not name.startswith("bare import")}
    left_edge = 0.0
    for name, ms in ours.items():
        right.barh(["our init, step by step"], [ms], left=left_edge, label=f"{name} ({ms:.0f} ms)")
        left_edge += ms
    right.barh(["bare import (5 libraries)"], [cold["bare import"] * 1000], color="grey")
    for label in ("first forecast", "first classification", "first /api/runs"):
        right.barh([f"{label} (whole process)"], [cold[label] * 1000])
    right.set_xlabel("milliseconds")
    right.set_title("Cold start breakdown")
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"chart written to {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "performance.png")
    args = parser.parse_args()
    results = {}
    for name in BENCHMARKS:
        print(f"\n=== {name} ===")
        results[name] = importlib.import_module(name).main()
    chart(results, args.chart)


if __name__ == "__main__":
    main()
