"""A bounded load test of a running API: concurrent clients over a mix of good and bad requests.

    python scripts/load_test.py --url http://127.0.0.1:3000 --token "$(cat .local/api-token)" \
        [--clients 16] [--requests 2000] [--seconds 20]

Stops after `--requests` requests or `--seconds` seconds, whichever comes first. Every
answer is checked: its status must be the one its request expects and its body
well-formed JSON of the documented shape. Prints requests/s, p50 and p99 latency.
Meant for 127.0.0.1 (`make run`) or a stack of your own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

WINDOW = [0.5 + 0.001 * i for i in range(30)]


@dataclass(frozen=True)
class Probe:
    kind: str
    method: str
    path: str
    body: dict[str, Any] | None
    status: int
    check: Callable[[dict[str, Any]], bool]
    authorized: bool = True


def _single_ok(body: dict[str, Any]) -> bool:
    return body.get("status") == "Success" and isinstance(body.get("prediction"), list) and body["duration_ms"] >= 0


def _bad(body: dict[str, Any]) -> bool:
    return body.get("status") == "BadRequest" and bool(body.get("error_message"))


def _batch_ok(body: dict[str, Any]) -> bool:
    return [p["status"] for p in body["predictions"]] == ["Success", "Success", "BadRequest"]


def _run_ok(body: dict[str, Any]) -> bool:
    (output,) = body["run"]["output"]
    return len(output) == 3


PROBES: list[tuple[Probe, int]] = [
    (Probe("forecast", "GET", "/v1/models/drive_stats_a/predict", None, 200, _single_ok), 25),
    (Probe("forecast-window", "POST", "/v1/models/drive_stats_b/predict", {"inputs": [WINDOW]}, 200, _single_ok), 10),
    (Probe("classify-ids", "POST", "/v1/models/user_churn/predict", {"ids": [1, 5, 100], "probability": True}, 200, _single_ok), 20),
    (Probe("batch", "POST", "/v1/predict", {"predictions": [{"model_name": "drive_stats_a"}, {"model_name": "drive_stats_b"},
                                                            {"model_name": "missing"}]}, 200, _batch_ok), 15),
    (Probe("run", "POST", "/api/runs", {"run": {"pipeline_uuid": "ml_inference_online", "block_uuid": "ml/inference/online/predictions",
                                                "variables": {"user_ids": [1, 5, 100]}, "record": False}}, 200, _run_ok), 10),
    (Probe("bad-width", "POST", "/v1/models/user_churn/predict", {"inputs": [[1, 2]]}, 400, _bad), 8),
    (Probe("unknown-model", "GET", "/v1/models/nope/predict", None, 404, _bad), 6),
    (Probe("no-token", "GET", "/v1/models", None, 401, lambda b: _bad(b) and "Bearer" in b["error_message"], False), 6),
]


@dataclass
class LoadReport:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        mix = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        return (
            f"{self.requests} requests in {self.seconds:.1f} s: {rate:.0f} req/s, "
            f"p50 {self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms, "
            f"mean {statistics.fmean(self.latencies) * 1000 if self.latencies else 0:.1f} ms, "
            f"unexpected answers {len(self.errors)}\nmix: {mix}"
        )


async def run_load(url: str, token: str, *, clients: int = 16, requests: int = 2000, seconds: float = 20.0,
                   seed: int = 7) -> LoadReport:
    rng = random.Random(seed)
    probes, weights = zip(*PROBES, strict=True)
    plan = rng.choices(probes, weights=weights, k=requests)
    report = LoadReport()
    started = time.perf_counter()
    deadline = started + seconds
    queue = iter(plan)

    async def client(http: httpx.AsyncClient) -> None:
        for probe in queue:
            if time.perf_counter() > deadline:
                return
            headers = {"Authorization": f"Bearer {token}"} if probe.authorized else {}
            sent = time.perf_counter()
            try:
                response = await http.request(probe.method, url + probe.path, json=probe.body, headers=headers)
                elapsed = time.perf_counter() - sent
                body = response.json()
                ok = response.status_code == probe.status and probe.check(body)
            except Exception as exc:  # a transport error or a malformed body is an unexpected answer
                elapsed, ok = time.perf_counter() - sent, False
                response = None
                report.errors.append(f"{probe.kind}: {type(exc).__name__}: {exc}")
            report.latencies.append(elapsed)
            report.kinds[probe.kind] += 1
            if not ok and response is not None:
                report.errors.append(f"{probe.kind}: {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    report.seconds = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    report = asyncio.run(run_load(args.url.rstrip("/"), args.token, clients=args.clients, requests=args.requests,
                                  seconds=args.seconds))
    print(report.summary())
    for error in report.errors[:10]:
        print("  unexpected:", error)
    print(json.dumps({"requests": report.requests, "errors": len(report.errors),
                      "p50_ms": round(report.percentile(0.5), 2), "p99_ms": round(report.percentile(0.99), 2)}))
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
