"""Dependencies point one way: routers -> deps -> service -> registry/cache -> store/inference.

The docs function builds the whole API's OpenAPI document from every router; it must not
load what only predictions need. Checked in a fresh interpreter, so nothing imported by
other tests hides a regression."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT

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
