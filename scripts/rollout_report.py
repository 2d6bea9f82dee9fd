"""A report over the prediction records in S3 (`POST /api/runs` with `record: true`), per version.

    python scripts/rollout_report.py --bucket BUCKET [--prefix records/] [--since 2026-12-01] [--json]
    python scripts/rollout_report.py --stack STACK   # the bucket the stack's ModelBucketName output names

For every model and version: requests, errors, latency (median, p95) and the aliases that
chose it; for every shadow: how often it ran, failed and disagreed with the live version
(`shadow.agrees` in each record, as the functions computed it). It reads every record under
the prefix, from `--since` on (the records' keys are `<prefix>YYYY/MM/DD/<request id>.json`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from publish_models import add_bucket_arguments, model_bucket


@dataclass
class VersionFigures:
    requests: int = 0
    errors: int = 0
    durations: list[int] = field(default_factory=list)
    aliases: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.durations)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else 0.0,
            "latency_ms_p50": statistics.median(ordered) if ordered else None,
            "latency_ms_p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None,
            "aliases": dict(self.aliases),
        }


@dataclass
class ShadowFigures:
    runs: int = 0
    failed: int = 0
    compared: int = 0
    disagreements: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "failed": self.failed,
            "disagreements": self.disagreements,
            "disagreement_rate": self.disagreements / self.compared if self.compared else None,
        }


def record_keys(s3: Any, bucket: str, prefix: str, since: dt.date | None) -> Iterator[str]:
    """The records' keys, from the day `since` on (keys sort by date)."""
    start_after = f"{prefix}{since:%Y/%m/%d}" if since else None
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, **({"StartAfter": start_after} if start_after else {})
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".json"):
                yield item["Key"]


def report(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Figures per `model/version`, and per shadow (`model/live version -> shadow version`)."""
    versions: dict[str, VersionFigures] = defaultdict(VersionFigures)
    shadows: dict[str, ShadowFigures] = defaultdict(ShadowFigures)
    for record in records:
        served = f"{record.get('model_name')}/{record.get('model_version') or '-'}"
        figures = versions[served]
        figures.requests += 1
        figures.errors += record.get("status") != "Success"
        figures.durations.append(int(record.get("duration_ms") or 0))
        figures.aliases[record.get("alias") or "(version named or only one)"] += 1
        shadow = record.get("shadow")
        if shadow:
            beside = shadows[f"{served} -> {shadow.get('model_version')}"]
            beside.runs += 1
            if shadow.get("status") != "Success":
                beside.failed += 1
            elif shadow.get("agrees") is not None:
                beside.compared += 1
                beside.disagreements += not shadow["agrees"]
    return {"versions": {k: v.as_dict() for k, v in sorted(versions.items())},
            "shadows": {k: v.as_dict() for k, v in sorted(shadows.items())}}


def render(figures: dict[str, Any]) -> str:
    lines = [f"{'model/version':34} {'requests':>8} {'errors':>7} {'p50 ms':>7} {'p95 ms':>7}  aliases"]
    for served, v in figures["versions"].items():
        aliases = ", ".join(f"{alias} {count}" for alias, count in v["aliases"].items())
        lines.append(f"{served:34} {v['requests']:>8} {v['errors']:>7} {v['latency_ms_p50'] or 0:>7} "
                     f"{v['latency_ms_p95'] or 0:>7}  {aliases}")
    if figures["shadows"]:
        lines += ["", f"{'shadow (model/live -> shadow)':34} {'runs':>8} {'failed':>7} {'disagree':>9} {'rate':>7}"]
        for pair, s in figures["shadows"].items():
            rate = "-" if s["disagreement_rate"] is None else f"{s['disagreement_rate']:.1%}"
            lines.append(f"{pair:34} {s['runs']:>8} {s['failed']:>7} {s['disagreements']:>9} {rate:>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bucket_arguments(parser)
    parser.add_argument("--prefix", default="records/")
    parser.add_argument("--since", type=dt.date.fromisoformat, default=None,
                        help="YYYY-MM-DD: records from that day on")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.bucket = model_bucket(args)
    s3 = boto3.client("s3", endpoint_url=args.endpoint_url)
    records = (json.loads(s3.get_object(Bucket=args.bucket, Key=key)["Body"].read())
               for key in record_keys(s3, args.bucket, args.prefix, args.since))
    figures = report(records)
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
