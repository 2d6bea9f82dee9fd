"""Datasets for bulk jobs, built from the shipped models' own data (models/data/), for `make bulk`,
the tests and the benchmark:

- `user_churn`: rows of user_features.csv, repeated with new ids and small noise (seeded);
- `drive_stats_*`: 30-day windows slid over drive_stats_daily.csv, repeated;
- `digits`: the held-out images of digits_holdout.csv (8x8 pixels and min_confidence 0.5);
- text models: short support-ticket sentences (SYNTHETIC, from a few templates), 8 to 25 word pieces.

`rows(model, count)` gives the rows; `write_shards` puts them in S3 as CSV or JSON Lines shards.

    python scripts/bulk_datasets.py --model user_churn --rows 100000 --out .local/datasets/churn
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "models" / "data"
SEED = 7
DRIVES = ["the backup drive", "drive 7 in rack B", "an SSD", "the NAS", "a new disk"]
TICKETS = [
    "My account was charged twice this month, please refund {n} dollars.",
    "The app logs me out every {n} minutes since the last update.",
    "Can I export my data before cancelling the subscription?",
    "{drive} reports {n} reallocated sectors, should I replace it?",
    "The dashboard takes {n} seconds to load on my phone.",
    "I would like to upgrade to the team plan for {n} users.",
    "Password reset emails never arrive in my inbox.",
    "After {n} days the sync stopped working on {drive}.",
]


def _table(name: str) -> list[dict[str, str]]:
    lines = [line for line in (DATA / name).read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def rows(model: str, count: int) -> Iterator[dict[str, Any]]:
    """`count` rows for `model` (ids 0..count-1), the same every time."""
    rng = random.Random(SEED)
    if model == "user_churn":
        users = _table("user_features.csv")
        columns = [c for c in users[0] if c != "user_id"]
        for i in range(count):
            user = users[i % len(users)]
            yield {"user_id": i, **{c: round(float(user[c]) * rng.uniform(0.9, 1.1), 3) for c in columns}}
    elif model.startswith("drive_stats"):
        series = [float(r["failure_rate_pct"]) for r in _table("drive_stats_daily.csv")]
        starts = len(series) - 30
        for i in range(count):
            start = i % starts
            yield {"id": i, "window": series[start : start + 30]}
    elif model == "digits":
        images = _table("digits_holdout.csv")
        for i in range(count):
            image = images[i % len(images)]
            pixels = [[int(image[f"pixel_{r}_{c}"]) for c in range(8)] for r in range(8)]
            yield {"id": i, "pixels": pixels, "min_confidence": 0.5, "label": image["label"]}
    else:  # a text model
        for i in range(count):
            template = TICKETS[i % len(TICKETS)]
            yield {"id": i, "text": template.format(n=rng.randint(2, 90), drive=rng.choice(DRIVES))}


def encode(batch: list[dict[str, Any]], fmt: str) -> bytes:
    """Rows as a CSV object with a header row (lists as JSON text) or JSON Lines."""
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in batch).encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(batch[0]), lineterminator="\n")
    writer.writeheader()
    for row in batch:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    return out.getvalue().encode()


def shards(model: str, count: int, shard_rows: int, fmt: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each shard of `count` rows, `shard_rows` a shard."""
    batch: list[dict[str, Any]] = []
    number = 0
    for row in rows(model, count):
        batch.append(row)
        if len(batch) == shard_rows:
            yield f"part-{number:05d}.{fmt}", encode(batch, fmt)
            batch, number = [], number + 1
    if batch:
        yield f"part-{number:05d}.{fmt}", encode(batch, fmt)


def write_shards(s3: Any, bucket: str, prefix: str, model: str, count: int, *, shard_rows: int = 10_000,
                 fmt: str = "csv") -> list[str]:
    """The dataset in S3 under `prefix`; returns the keys written."""
    keys = []
    for name, body in shards(model, count, shard_rows, fmt):
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=body)
        keys.append(prefix + name)
    return keys


EVENT_BUCKET = "bulk-events"  # the bucket events/bulk_*.json name


def put_event_data(s3: Any, bucket: str = EVENT_BUCKET) -> None:
    """The objects events/bulk_*.json read: a CSV of 10 churn rows and two CSV shards of 5."""
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="datasets/users.csv", Body=encode(list(rows("user_churn", 10)), "csv"))
    write_shards(s3, bucket, "datasets/shards/", "user_churn", 10, shard_rows=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="user_churn")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shard-rows", type=int, default=10_000)
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    parser.add_argument("--out", type=Path, required=True, help="a directory to write the shards into")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, body in shards(args.model, args.rows, args.shard_rows, args.format):
        (args.out / name).write_bytes(body)
    print(f"{args.rows} rows for {args.model} in {args.out}")


if __name__ == "__main__":
    main()
