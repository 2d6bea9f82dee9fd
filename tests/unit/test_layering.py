"""Dependencies point one way, down the layers: web -> protocols -> dataplane -> runtime -> storage/catalog.

The docs function builds the whole API's OpenAPI document from every router; it must not
load what only predictions need. Checked in a fresh interpreter, so nothing imported by
other tests hides a regression."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Any

from local_s3 import MotoServer, create_bucket
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


# The library's packages, lowest first: a module may import its own package and those below it,
# never one above or beside it. (The package of prediction_service/x.py is "x"; of
# prediction_service/protocols/v1/y.py, "protocols.v1".)
LAYERS = [
    {"prediction_service", "errors", "settings", "limits", "timing"},
    {"catalog", "storage"},
    {"observability"},
    {"runtime"},
    {"dataplane"},
    {"protocols"},
    {"protocols.v1", "protocols.v2", "protocols.openai", "bulk"},
    {"composition"},
    {"web"},  # its routers included: web/openapi.py reads them, they read web/deps.py
    {"awslambda"},
]
PACKAGE = ROOT / "layers/prediction/prediction_service"


def package_of(module: str) -> str:
    """`prediction_service.protocols.v1.codec` -> `protocols.v1`; `prediction_service.errors` -> `errors`."""
    parts = module.split(".")[1:]
    if not parts:
        return "prediction_service"
    path = PACKAGE.joinpath(*parts)
    package = ".".join(parts) if path.is_dir() else ".".join(parts[:-1]) or parts[0]  # a package: its __init__
    return "web" if package.startswith("web.") else package


def imports_of(path: Any) -> list[tuple[int, str]]:
    """Every prediction_service module `path` imports, wherever the import stands (function bodies
    and TYPE_CHECKING blocks too), with its line; relative imports resolved."""
    tree = ast.parse(path.read_text())
    here = ["prediction_service", *path.relative_to(PACKAGE).with_suffix("").parts]
    if here[-1] == "__init__":
        here = here[:-1] + ["__init__"]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "prediction_service"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: -node.level] + ([base] if base else []))
            if base.split(".")[0] != "prediction_service":
                continue
            for alias in node.names:  # `from prediction_service.runtime import onnx` imports a module
                candidate = f"{base}.{alias.name}"
                is_module = PACKAGE.joinpath(*candidate.split(".")[1:]).with_suffix(".py").exists()
                found.append((node.lineno, candidate if is_module else base))
    return found


def test_imports_point_down_the_layers_only() -> None:
    """Read from the imports themselves: every package is in LAYERS, and no import runs back up
    (or sideways, between two packages of one layer)."""
    rank = {package: level for level, packages in enumerate(LAYERS) for package in packages}
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    wrong = []
    for path in modules:
        source = package_of(".".join(["prediction_service", *path.relative_to(PACKAGE).with_suffix("").parts])
                            .removesuffix(".__init__"))
        assert source in rank, f"{path.relative_to(PACKAGE)} is in package {source!r}, which LAYERS does not place"
        for line, module in imports_of(path):
            target = package_of(module)
            assert target in rank, f"{module} is in package {target!r}, which LAYERS does not place"
            if target != source and rank[target] >= rank[source]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({source}) imports {module} ({target})")
    assert wrong == [], "imports that run up or sideways:\n" + "\n".join(wrong)


def test_the_layering_check_sees_an_import_that_runs_back_up(tmp_path: Any) -> None:
    """The check reads function-level and TYPE_CHECKING imports too (what a lazy import hides)."""
    module = PACKAGE / "runtime" / "onnx.py"
    lines = [line for _, line in imports_of(module)]
    assert "prediction_service.runtime.base" in lines and "prediction_service.errors" in lines
    snapshot = PACKAGE / "awslambda" / "snapstart.py"
    assert "prediction_service.composition" in [m for _, m in imports_of(snapshot)]  # imported in a function


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
                      "prediction_service.protocols.v2.service", "prediction_service.protocols.v1.runs")


def test_a_first_forecast_loads_nothing_it_does_not_need(tmp_path: Any) -> None:
    from generate_events import EVENT_TOKEN_HASH

    with MotoServer() as server:
        create_bucket(server.client(), "probe-models")
        code = COLD_PROBE.format(function=str(ROOT / "functions/models"), layer=str(ROOT / "layers/prediction"),
                                 absent=NOT_FOR_A_FORECAST,
                                 event=str(ROOT / "events/models_forecast_drive_stats_a.json"))
        env = {"PATH": "/usr/bin:/bin", "POWERTOOLS_METRICS_DISABLED": "true", "MODEL_BUCKET": "probe-models",
               "S3_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto",
               "AWS_DEFAULT_REGION": "us-east-1", "API_TOKEN_HASHES": EVENT_TOKEN_HASH,
               "MODEL_CACHE_DIR": str(tmp_path / "cache")}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["status"] == 200
    assert answer["at_init"] == [], f"the models function's init imported {answer['at_init']}"
    assert answer["after_request"] == [], f"its first forecast imported {answer['after_request']}"
