"""Rollouts on the warm path, side by side in one run, through the models function's handler:

- choosing a version: `GET /v1/models/drive_stats_a/predict` where the model has one version,
  against the same request where it has two behind a 90/10 `stable` alias (with an
  `X-Routing-Key`, hashed to a version, and without one, drawn at random);
- a shadow: `POST /v1/models/user_churn/predict` (one id, probabilities) without a shadow, against
  the shipped manifest where version 1.1 shadows 1.0; beside them, the shadow's own work (1.1's
  prediction through the service, as its thread runs it) and its `session.run` alone.

Each manifest is published under its own prefix of the local S3 and served by its own parts;
the cases take turns in blocks, so drifts of the machine's speed fall on all of them alike.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from harness import BUCKET, ROOT, start_s3

BLOCKS = 20
PER_BLOCK = 100


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


def interleaved(cases: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Median microseconds of each case, the cases taking turns in blocks."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    with open(os.devnull, "w") as sink:
        import contextlib

        with contextlib.redirect_stdout(sink):  # the EMF lines, as Lambda's runtime reads them
            for call in cases.values():
                for _ in range(50):
                    call()
            for _ in range(BLOCKS):
                for name, call in cases.items():
                    for _ in range(PER_BLOCK):
                        started = time.perf_counter()
                        call()
                        samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


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
    models = load_function("models")
    context = lambda_context()

    def through(prefix: str, event: dict[str, Any]) -> Callable[[], Any]:
        def call() -> Any:
            switch.current = prefix
            result = models.handler(event, context)
            assert result["statusCode"] == 200, result["body"]
            return result

        return call

    forecast = http_event("GET", "/v1/models/drive_stats_a/predict")
    keyed = http_event("GET", "/v1/models/drive_stats_a/predict", headers={"x-routing-key": "customer-42"})
    classify = http_event("POST", "/v1/models/user_churn/predict", json.dumps({"ids": [1], "probability": True}))
    shadow_parts = parts["shadow"]
    shadow_route = shadow_parts.service.route("user_churn", "1.1")
    request = PredictRequest(ids=[1], probability=True)
    shadow_model = shadow_parts.registry.model(shadow_route.spec).session
    rows = np.asarray([[float(v) for v in (ROOT / "models/data/user_features.csv").read_text().splitlines()[2]
                        .split(",")[1:]]], dtype=np.float32)
    in_thread: list[float] = []  # the shadow's own prediction timed inside a pool thread, as shadows run

    def on_a_thread() -> None:
        def timed() -> None:
            started = time.perf_counter()
            shadow_parts.service.predict_route(shadow_route, request, 0.0)
            in_thread.append(time.perf_counter() - started)

        shadow_parts.service.shadows._pool.submit(timed).result()  # noqa: SLF001 - the shadows' own pool

    medians = interleaved({
        "one version": through("plain", forecast),
        "90/10 alias, keyed": through("alias", keyed),
        "90/10 alias, no key": through("alias", forecast),
        "no shadow": through("plain", classify),
        "with its shadow": through("shadow", classify),
        "the shadow's own prediction": lambda: shadow_parts.service.predict_route(shadow_route, request, 0.0),
        "the shadow's session.run": lambda: shadow_model.run(None, {"X": rows}),
        "submitted to the shadows' pool": on_a_thread,
    })
    medians["its prediction, timed on that thread"] = statistics.median(in_thread[50:]) * 1e6
    composition.components = original
    server.stop()
    print(f"Rollouts on the warm path (handler, median of {BLOCKS * PER_BLOCK} in alternating blocks, microseconds)")
    for name, value in medians.items():
        print(f"  {name:34} {value:>9.1f} us")
    choose = medians["90/10 alias, keyed"] - medians["one version"]
    added = medians["with its shadow"] - medians["no shadow"]
    own = medians["the shadow's own prediction"]
    run = medians["the shadow's session.run"]
    print(f"choosing a version by a keyed 90/10 alias adds {choose:+.1f} us "
          f"({medians['90/10 alias, keyed'] / medians['one version']:.3f}x; without a key "
          f"{medians['90/10 alias, no key'] - medians['one version']:+.1f} us)")
    threaded = medians["its prediction, timed on that thread"]
    submitted = medians["submitted to the shadows' pool"]
    print(f"the shadow adds {added:+.1f} us to its prediction. Its own prediction takes {own:.1f} us on the request's "
          f"thread, {threaded:.1f} us on the shadows' thread (its session.run {run:.1f} us); submitting it there and "
          f"waiting costs {submitted:.1f} us in all")
    return {**medians, "choose_us": choose, "shadow_added_us": added, "shadow_own_us": own,
            "shadow_own_on_its_thread_us": threaded}


if __name__ == "__main__":
    main()
