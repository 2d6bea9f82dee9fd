"""Rollouts on the warm path, side by side in one run, through the functions' handlers:

- choosing a version: `GET /v1/models/drive_stats_a/predict` where the model has one version,
  against the same request where it has two behind a 90/10 `stable` alias (with an
  `X-Routing-Key`, hashed to a version, and without one, drawn at random);
- the cost of a shadow: the same request with the shipped manifest, where user_churn 1.1 shadows
  1.0, and without the shadow (the manifest less its 1.1 entry): `POST /v1/models/user_churn/predict`
  with ids [1, 5, 100] (probabilities) through the models function, and a v2 infer of user_churn on
  those ids' feature rows (FP32 [3, 4]) through the inference function. Target: a request with a
  shadow takes at most 1.1x the same request without one. Beside them, the shadow's own work: 1.1's
  prediction through the service, its runtime's run alone, and that run handed to the shadows'
  pool and waited for (as a shadow runs).

Each manifest is published under its own prefix of the local S3 and served by its own parts;
the cases take turns in rounds, so drifts of the machine's speed fall on all of them alike.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from harness import BUCKET, HEADER, ROOT, Timing, start_s3
from v2_protocol import interleaved

ROUNDS = 20
PER_ROUND = 100
WARMUP = 10  # per round, after the warm-up of every case before the first round
SHADOW_TARGET = 1.1  # x the same request without a shadow
OWN = "the shadow's own prediction (service)"
RUN = "the shadow's runtime.run"
POOL = "its run submitted to the shadows' pool"


def manifests() -> dict[str, dict[str, Any]]:
    shipped = yaml.safe_load((ROOT / "models" / "manifest.yaml").read_text())
    plain = copy.deepcopy(shipped)
    plain["models"] = [m for m in plain["models"] if not m.get("shadow_of")]
    alias = copy.deepcopy(plain)
    first = next(m for m in alias["models"] if m["name"] == "drive_stats_a")
    other = next(m for m in alias["models"] if m["name"] == "drive_stats_b")
    alias["models"].insert(1, {**first, "version": "1.1", "file": other["file"], "sha256": other["sha256"]})
    alias["aliases"] = {"drive_stats_a": {"stable": {"1.0": 90, "1.1": 10}}}
    return {"plain": plain, "alias": alias, "shadow": shipped}


def publish_all(s3: Any) -> None:
    from publish_models import publish

    for prefix, document in manifests().items():
        models = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-")) / "models"
        shutil.copytree(ROOT / "models", models)
        (models / "manifest.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        publish(s3, BUCKET, f"{prefix}/", models_dir=models)


class PartsSwitch:
    """Stands for `composition.components` (the function's parts, built once per environment):
    answers the parts of the manifest being measured, so one function serves them all."""

    def __init__(self, parts: dict[str, Any]) -> None:
        self.parts = parts
        self.current = next(iter(parts))

    def __call__(self) -> Any:
        return self.parts[self.current]

    def cache_info(self) -> Any:
        return functools._CacheInfo(hits=0, misses=0, maxsize=None, currsize=1)  # built: cache_stats reads it


def feature_rows(ids: list[int]) -> list[list[float]]:
    """The feature rows of user_churn's table for `ids`, as a v2 client would send them."""
    lines = [line for line in (ROOT / "models/data/user_features.csv").read_text().splitlines()
             if line and not line.startswith("#")]
    rows = {int(float(cells[0])): [float(v) for v in cells[1:]] for cells in (line.split(",") for line in lines[1:])}
    return [rows[i] for i in ids]


def main() -> dict[str, float]:
    os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp()
    server, url = start_s3()
    import boto3
    from prediction_service import composition
    from prediction_service.observability import logger
    from prediction_service.protocols.v1.schemas import PredictRequest
    from prediction_service.settings import Settings
    from support import http_event, lambda_context, load_function

    logger.registered_handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - log lines to a reader that keeps up
    publish_all(boto3.client("s3", endpoint_url=url))
    settings = Settings.from_env()
    parts = {prefix: composition.build_components(dataclasses.replace(settings, model_prefix=f"{prefix}/"))
             for prefix in manifests()}
    switch = PartsSwitch(parts)
    original, composition.components = composition.components, switch  # type: ignore[assignment]
    try:
        models, inference = load_function("models"), load_function("inference")
        context = lambda_context()

        def through(function: Any, prefix: str, event: dict[str, Any]) -> Callable[[], Any]:
            def call() -> Any:
                switch.current = prefix
                result = function.handler(event, context)
                assert result["statusCode"] == 200, result["body"]
                return result

            return call

        ids = [1, 5, 100]
        forecast = http_event("GET", "/v1/models/drive_stats_a/predict")
        keyed = http_event("GET", "/v1/models/drive_stats_a/predict", headers={"x-routing-key": "customer-42"})
        classify = http_event("POST", "/v1/models/user_churn/predict", json.dumps({"ids": ids, "probability": True}))
        rows = feature_rows(ids)
        infer = http_event("POST", "/v2/models/user_churn/infer", json.dumps(
            {"inputs": [{"name": "X", "shape": [len(ids), len(rows[0])], "datatype": "FP32", "data": rows}]}))
        for prefix, shadowed in (("plain", False), ("shadow", True)):  # the shadow runs where it should, only there
            for function, event in ((models, classify), (inference, infer)):
                through(function, prefix, event)()
                answer = parts[prefix].service.predict("user_churn", PredictRequest(ids=ids, probability=True), 0.0)
                assert (answer.shadow is not None) == shadowed, answer.shadow
        shadow_parts = parts["shadow"]
        registry = shadow_parts.registry
        shadow_route = registry.route("user_churn", "1.1")
        assert registry.manifest().get("user_churn", "1.1").shadow_of == "1.0"
        request = PredictRequest(ids=ids, probability=True)
        shadow_runtime = registry.runtime(shadow_route)
        outputs = [o.name for o in shadow_runtime.outputs if o.datatype is not None]
        x = np.asarray(rows, dtype=np.float32)
        pool = shadow_parts.dataplane.shadows._pool  # noqa: SLF001 - the shadows' own pool
        in_thread: list[float] = []  # the shadow's run timed inside a pool thread, as shadows run

        def own_prediction() -> Any:
            return shadow_parts.service.predict("user_churn", request, time.perf_counter(), version="1.1")

        def on_a_thread() -> None:
            def timed() -> None:
                started = time.perf_counter()
                shadow_runtime.run(outputs, {"X": x})
                in_thread.append(time.perf_counter() - started)

            pool.submit(timed).result()

        timings = interleaved({
            "one version": through(models, "plain", forecast),
            "90/10 alias, keyed": through(models, "alias", keyed),
            "90/10 alias, no key": through(models, "alias", forecast),
            "v1 predict, no shadow": through(models, "plain", classify),
            "v1 predict, with its shadow": through(models, "shadow", classify),
            "v2 infer, no shadow": through(inference, "plain", infer),
            "v2 infer, with its shadow": through(inference, "shadow", infer),
            OWN: own_prediction,
            RUN: lambda: shadow_runtime.run(outputs, {"X": x}),
            POOL: on_a_thread,
        }, ROUNDS, PER_ROUND, warmup=WARMUP)
    finally:
        composition.components = original
        server.stop()
    threaded = Timing("its run, timed on that thread", in_thread[-ROUNDS * PER_ROUND:])
    print(f"Rollouts on the warm path (handler; each case {ROUNDS} rounds of {PER_ROUND} calls, the cases taking "
          "turns)")
    print(HEADER)
    for timing in [*timings.values(), threaded]:
        print(timing.row())
    medians = {name: timing.median_us for name, timing in timings.items()} | {threaded.label: threaded.median_us}
    choose = medians["90/10 alias, keyed"] - medians["one version"]
    print(f"\nchoosing a version by a keyed 90/10 alias adds {choose:+.1f} us "
          f"({medians['90/10 alias, keyed'] / medians['one version']:.3f}x; without a key "
          f"{medians['90/10 alias, no key'] - medians['one version']:+.1f} us)")
    figures: dict[str, float] = {**medians, "choose_us": choose}
    print(f"a shadow (user_churn 1.1 beside 1.0), the same request with it / without it "
          f"(target <= {SHADOW_TARGET:g}x):")
    for label, protocol in (("v1 predict", "v1"), ("v2 infer", "v2")):
        shadowed, plain = timings[f"{label}, with its shadow"], timings[f"{label}, no shadow"]
        ratio, added = shadowed.median_us / plain.median_us, shadowed.median_us - plain.median_us
        print(f"  {label:10} median {shadowed.median_us:>7.1f} / {plain.median_us:>7.1f} us = {ratio:.2f}x "
              f"({'met' if ratio <= SHADOW_TARGET else 'missed'}: {added:+.1f} us); "
              f"p99 {shadowed.p99_us:.1f} / {plain.p99_us:.1f} us = {shadowed.p99_us / plain.p99_us:.2f}x")
        figures |= {f"shadow_{protocol}_ratio": ratio, f"shadow_{protocol}_added_us": added,
                    f"shadow_{protocol}_p99_ratio": shadowed.p99_us / plain.p99_us}
    print(f"the shadow's own work: its prediction through the service {medians[OWN]:.1f} us; its runtime.run "
          f"{medians[RUN]:.1f} us on the request's thread, {threaded.median_us:.1f} us on the shadows' thread; "
          f"handing it there and waiting {medians[POOL]:.1f} us in all")
    return figures


if __name__ == "__main__":
    main()
