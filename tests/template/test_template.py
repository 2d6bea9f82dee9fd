"""The SAM template: valid and lint-clean, buildable, and in step with the apps and event files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, load_event, venv_tool
from generate_events import sam_command
from local_api import load_template, template_routes

pytestmark = pytest.mark.sam


def sam(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([sam_command(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_sam_validate_lint_passes() -> None:
    result = sam("validate", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_build_puts_the_library_in_the_layer_and_keeps_training_libraries_out() -> None:
    result = sam("build")
    assert result.returncode == 0, result.stdout + result.stderr
    layer = ROOT / ".aws-sam" / "build" / "PredictionLayer" / "python"
    for package in ("prediction_service", "onnxruntime", "numpy", "fastapi", "mangum", "pydantic", "yaml"):
        assert (layer / package).is_dir(), f"{package} missing from the layer"
    for training_only in ("sklearn", "skl2onnx", "pandas", "pyarrow", "moto"):
        assert not (layer / training_only).exists(), f"{training_only} must not ship in the layer"
    assert (layer / "prediction_service" / "static" / "playground.html").is_file()
    for function in ("ModelsFunction", "BatchFunction", "RunsFunction", "AuthorizerFunction", "DocsFunction"):
        assert (ROOT / ".aws-sam" / "build" / function / "app.py").is_file()


def test_every_route_has_a_function_app_route_and_an_event_file() -> None:
    routes = {(r.method, r.path) for r in template_routes()}
    assert routes == {
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{name}"),
        ("GET", "/v1/models/{name}/predict"),
        ("POST", "/v1/models/{name}/predict"),
        ("POST", "/v1/predict"),
        ("POST", "/api/runs"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/playground"),
    }
    event_routes = {tuple(load_event(p)["routeKey"].split(" ", 1)) for p in (ROOT / "events").glob("*.json")}
    assert routes <= event_routes


def statements(function: str) -> list[tuple[str, str, str]]:
    """(effect, action, resource pattern) of a function's policies; `!Sub [pattern, vars]` gives its pattern."""
    props = load_template()["Resources"][function]["Properties"]
    found = []
    for policy in props["Policies"]:
        for statement in policy["Statement"]:
            resource = statement["Resource"]
            found.append((statement["Effect"], statement["Action"], resource[0] if isinstance(resource, list) else resource))
    return found


def test_each_function_gets_only_the_access_it_needs() -> None:
    read_models = ("Allow", "s3:GetObject", "arn:${AWS::Partition}:s3:::${Bucket}/${ModelPrefix}*")
    write_records = ("Allow", "s3:PutObject", "arn:${AWS::Partition}:s3:::${Bucket}/${RecordsPrefix}*")
    assert statements("ModelsFunction") == [read_models]
    assert statements("BatchFunction") == [read_models]
    assert statements("RunsFunction") == [read_models, write_records]
    assert "Policies" not in load_template()["Resources"]["DocsFunction"]["Properties"], "docs need no AWS access"
    ssm, kms = statements("AuthorizerFunction")
    assert ssm[1] == "ssm:GetParameter" and ssm[2].endswith(":parameter${TokenHashesParameterName}")
    assert kms[1] == "kms:Decrypt"


def test_every_route_is_behind_the_bearer_token_authorizer() -> None:
    api = load_template()["Resources"]["PredictionApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "BearerTokenAuthorizer"
    authorizer = api["Auth"]["Authorizers"]["BearerTokenAuthorizer"]
    assert authorizer["Identity"]["Headers"] == ["Authorization"] and authorizer["EnableSimpleResponses"] is True
    for name, resource in load_template()["Resources"].items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if name == "DocsFunction":  # the OpenAPI document, its docs page, the playground: no data
                assert event["Properties"]["Auth"] == {"Authorizer": "NONE"}
            else:
                assert "Auth" not in event["Properties"], "no API route may opt out of the authorizer"


def test_model_bucket_is_private_encrypted_versioned_and_tls_only() -> None:
    resources = load_template()["Resources"]
    bucket = resources["ModelBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    (deny,) = resources["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cfn_lint_finds_nothing_in_the_template() -> None:
    result = subprocess.run(
        [venv_tool("cfn-lint"), "template.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_allow_statement_uses_a_wildcard_action() -> None:
    for name, resource in load_template()["Resources"].items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert statement["Effect"] == "Allow" and not any("*" in a for a in actions), name


def test_api_is_throttled_and_cors_is_explicit() -> None:
    api = load_template()["Resources"]["PredictionApi"]["Properties"]
    assert set(api["DefaultRouteSettings"]) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    cors = api["CorsConfiguration"]
    assert "*" not in cors["AllowOrigins"] and cors["AllowMethods"] == ["GET", "POST"]
    assert cors["AllowHeaders"] == ["authorization", "content-type"]


def test_deployment_options_are_parameters() -> None:
    template = load_template()
    for name in ("ExistingModelBucket", "FunctionMemorySize", "FunctionTimeout", "ProvisionedConcurrency",
                 "LogRetentionDays", "EnableTracing", "LogLevel"):
        assert name in template["Parameters"], name
    assert template["Resources"]["ModelBucket"]["Condition"] == "CreateModelBucket"
    logs = [r for r in template["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert len(logs) == 5 and all(r["Properties"]["RetentionInDays"] == "LogRetentionDays" for r in logs)
