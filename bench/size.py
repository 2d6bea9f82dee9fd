"""Deployment size: the unzipped layer and each function after `sam build`, against Lambda's 250 MB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import ROOT

LIMIT = 250 * 1000 * 1000  # Lambda: function + layers, unzipped
TARGET = 120 * 1000 * 1000


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> dict[str, int]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", SAM_CLI_TELEMETRY="0")
    subprocess.run([str(Path(sys.executable).parent / "sam"), "build"], cwd=ROOT, env=env, check=True, capture_output=True)
    build = ROOT / ".aws-sam" / "build"
    layer = tree_bytes(build / "PredictionLayer")
    sizes = {p.name: tree_bytes(p) for p in sorted(build.iterdir()) if p.is_dir() and p.name != "PredictionLayer"}
    print("Deployment size (unzipped, after sam build)")
    print(f"{'artifact':28} {'MB':>8} {'layer + function MB':>20} {'of 250 MB':>10}")
    print(f"{'PredictionLayer':28} {layer / 1e6:>8.1f}")
    for name, size in sizes.items():
        total = layer + size
        print(f"{name:28} {size / 1e6:>8.3f} {total / 1e6:>20.1f} {total / LIMIT:>9.0%}")
    largest = layer + max(sizes.values())
    print(f"largest layer + function: {largest / 1e6:.1f} MB (target < {TARGET / 1e6:.0f} MB)")
    return {"layer": layer, **sizes}


if __name__ == "__main__":
    main()
