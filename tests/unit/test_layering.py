"""Dependencies point one way: routers -> deps -> service -> registry/cache -> store/inference.

The docs function builds the whole API's OpenAPI document from every router; it must not
load what only predictions need. Checked in a fresh interpreter, so nothing imported by
other tests hides a regression."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from support import ROOT, MotoServer

PROBE = """
import json, sys
sys.path[:0] = [{layer!r}, {tests!r}]
from support import lambda_context, load_event, load_function
docs = load_function("docs")
result = docs.handler(load_event(__import__("pathlib").Path({event!r})), lambda_context())
heavy = sorted(m for m in ("onnxruntime", "numpy", "boto3", "yaml") if m in sys.modules)
print(json.dumps({{"status": result["statusCode"], "paths": len(json.loads(result["body"])["paths"]), "heavy": heavy}}))
"""


def test_the_docs_function_serves_the_document_without_loading_onnxruntime_numpy_or_boto3() -> None:
    code = PROBE.format(layer=str(ROOT / "layers/prediction"), tests=str(ROOT / "tests"),
                        event=str(ROOT / "events/docs_openapi_document.json"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "POWERTOOLS_METRICS_DISABLED": "true"}).stdout
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["status"] == 200 and answer["paths"] >= 5
    assert answer["heavy"] == [], f"the docs function imported {answer['heavy']}"


def test_the_library_never_imports_the_api_layer_from_below() -> None:
    """Modules under the routers do not import FastAPI wiring (app, deps, routers, middleware)."""
    below = ["service", "registry", "cache", "store", "inference", "manifest", "tables", "runs", "composition",
             "settings", "outcomes", "schemas", "errors", "timing"]
    edge = ("from .app", "from .deps", "from .routers", "from .middleware", "from .responses", "import fastapi",
            "from fastapi", "from starlette")
    package = ROOT / "layers/prediction/prediction_service"
    for name in below:
        source = (package / f"{name}.py").read_text()
        assert not [line for line in source.splitlines() if line.strip().startswith(edge)], name


# What a route function's cold start must not load: what its first request does not need.
COLD_PROBE = """
import json, sys
from types import SimpleNamespace
sys.path[:0] = [{function!r}, {layer!r}]
import app
loaded = lambda: sorted(m for m in {absent!r} if sys.modules.get(m) is not None)  # None: declared absent
at_init = loaded()
context = SimpleNamespace(function_name="probe", function_version="$LATEST", memory_limit_in_mb=1024,
                          aws_request_id="probe", invoked_function_arn="arn:aws:lambda:us-east-1:1:function:probe",
                          get_remaining_time_in_millis=lambda: 30_000)
with open({event!r}) as f:
    status = app.handler(json.load(f), context)["statusCode"]
after_request = loaded()
print(json.dumps({{"status": status, "at_init": at_init, "after_request": after_request}}))
"""
# Never needed for these small models: the manifest arrives as JSON (no YAML parser), no file is
# large enough to stream (boto3's transfer module), no text model (tokenizers), FastAPI's check
# for pydantic.v1 models answers without importing it. The v2 and runs modules are not the
# models function's.
NOT_FOR_A_FORECAST = ("yaml", "tokenizers", "pydantic.v1", "boto3.s3.transfer",
                      "prediction_service.inference_service", "prediction_service.runs")


def test_a_first_forecast_loads_nothing_it_does_not_need(tmp_path: Any) -> None:
    import boto3
    from generate_events import EVENT_TOKEN_HASH
    from publish_models import publish

    server = MotoServer()
    try:
        s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id="moto", aws_secret_access_key="moto")  # noqa: S106 - moto's
        s3.create_bucket(Bucket="probe-models")
        publish(s3, "probe-models")
        code = COLD_PROBE.format(function=str(ROOT / "functions/models"), layer=str(ROOT / "layers/prediction"),
                                 absent=NOT_FOR_A_FORECAST,
                                 event=str(ROOT / "events/models_forecast_drive_stats_a.json"))
        env = {"PATH": "/usr/bin:/bin", "POWERTOOLS_METRICS_DISABLED": "true", "MODEL_BUCKET": "probe-models",
               "S3_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto",
               "AWS_DEFAULT_REGION": "us-east-1", "API_TOKEN_HASHES": EVENT_TOKEN_HASH,
               "MODEL_CACHE_DIR": str(tmp_path / "cache")}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    finally:
        server.stop()
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["status"] == 200
    assert answer["at_init"] == [], f"the models function's init imported {answer['at_init']}"
    assert answer["after_request"] == [], f"its first forecast imported {answer['after_request']}"
