"""The SAM template: valid and lint-clean, buildable, and in step with the apps and event files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from generate_events import sam_command
from local_api import load_template, template_routes
from support import ROOT, load_event, venv_tool

pytestmark = pytest.mark.sam

FUNCTIONS = ("ModelsFunction", "BatchFunction", "RunsFunction", "InferenceFunction", "EmbeddingsFunction", "DocsFunction",
             "AuthorizerFunction", "BulkJobFunction")
BULK_WORKER = "BulkWorkerFunction"  # reserved by default: a bulk job must never take the online functions' concurrency
ROUTE_FUNCTIONS = ("ModelsFunction", "BatchFunction", "RunsFunction", "InferenceFunction", "EmbeddingsFunction")  # verify the bearer token themselves
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"  # its own venv: see requirements-checkov.txt


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
    for training_only in ("sklearn", "skl2onnx", "pandas", "pyarrow", "moto", "huggingface_hub", "hf_xet", "torch"):
        assert not (layer / training_only).exists(), f"{training_only} must not ship in the layer"
    assert (layer / "prediction_service" / "web" / "static" / "playground.html").is_file()
    for function in FUNCTIONS:
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
        ("GET", "/docs/{asset}"),
        ("GET", "/playground"),
        ("GET", "/v2"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/{name}"),
        ("GET", "/v2/models/{name}/versions/{version}"),
        ("GET", "/v2/models/{name}/ready"),
        ("GET", "/v2/models/{name}/versions/{version}/ready"),
        ("POST", "/v2/models/{name}/infer"),
        ("POST", "/v2/models/{name}/versions/{version}/infer"),
        ("POST", "/openai/v1/embeddings"),
        ("GET", "/openai/v1/models"),
        ("GET", "/openai/v1/models/{model}"),
    }
    event_routes = {tuple(load_event(p)["routeKey"].split(" ", 1)) for p in (ROOT / "events").glob("*.json")
                    if not p.name.startswith("bulk_")}  # the bulk ones are Step Functions task payloads
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
    read_token_hashes = (
        "Allow",
        "ssm:GetParameter",
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${TokenHashesParameterName}",
    )
    decrypt = ("Allow", "kms:Decrypt", "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*")
    # the route functions check the bearer token themselves, against the authorizer's SSM parameter
    assert statements("ModelsFunction") == [read_models, read_token_hashes, decrypt]
    assert statements("BatchFunction") == [read_models, read_token_hashes, decrypt]
    assert statements("InferenceFunction") == [read_models, read_token_hashes, decrypt]
    assert statements("EmbeddingsFunction") == [read_models, read_token_hashes, decrypt]
    assert statements("RunsFunction") == [read_models, write_records, read_token_hashes, decrypt]
    assert statements("AuthorizerFunction") == [read_token_hashes, decrypt]
    assert "Policies" not in load_template()["Resources"]["DocsFunction"]["Properties"], "docs need no AWS access"
    read_inputs = ("Allow", "s3:GetObject", "arn:${AWS::Partition}:s3:::${Bucket}/${BulkInputPrefix}*")
    write_results = ("Allow", "s3:PutObject", "arn:${AWS::Partition}:s3:::${Bucket}/${BulkOutputPrefix}*")
    list_bucket = ("Allow", "s3:ListBucket", "arn:${AWS::Partition}:s3:::${Bucket}")
    assert statements("BulkWorkerFunction") == [read_models, read_inputs, write_results]
    read_results = ("Allow", "s3:GetObject", "arn:${AWS::Partition}:s3:::${Bucket}/${BulkOutputPrefix}*")
    assert statements("BulkJobFunction") == [read_models, read_inputs, read_results, list_bucket, write_results]
    (policy,) = load_template()["Resources"]["BulkJobFunction"]["Properties"]["Policies"]
    (listing,) = [s for s in policy["Statement"] if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["${BulkInputPrefix}*", "${BulkOutputPrefix}*"]}}
    for function in (*ROUTE_FUNCTIONS, "AuthorizerFunction"):
        (policy,) = load_template()["Resources"][function]["Properties"]["Policies"]
        (kms,) = [s for s in policy["Statement"] if s["Action"] == "kms:Decrypt"]
        assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "ssm.${AWS::Region}.amazonaws.com"}}, function


def test_every_function_is_told_where_the_token_hashes_are() -> None:
    template = load_template()
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["API_TOKEN_HASHES_PARAMETER"] == "TokenHashesParameterName"
    assert variables["API_TOKEN_HASHES"] == "", "deployed, the hashes come from SSM only"
    for function in FUNCTIONS:
        if function == "BulkJobFunction":  # where jobs may read and write, beside the Globals
            assert set(template["Resources"][function]["Properties"]["Environment"]["Variables"]) == {
                "BULK_INPUT_BUCKET", "BULK_INPUT_PREFIX", "BULK_OUTPUT_BUCKET", "BULK_OUTPUT_PREFIX",
                "BULK_BATCH_SIZE", "BULK_MAX_CONCURRENCY", "BULK_TOLERATED_FAILURE_PERCENTAGE"}
            continue
        assert "Environment" not in template["Resources"][function]["Properties"], f"{function}: Globals say it"


def test_every_route_is_behind_the_bearer_token_authorizer() -> None:
    api = load_template()["Resources"]["PredictionApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "BearerTokenAuthorizer"
    authorizer = api["Auth"]["Authorizers"]["BearerTokenAuthorizer"]
    assert authorizer["Identity"]["Headers"] == ["Authorization"] and authorizer["EnableSimpleResponses"] is True
    for name, resource in load_template()["Resources"].items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if name == "DocsFunction" or event["Properties"]["Path"].startswith("/v2/health/"):  # the OpenAPI document, its docs page, the playground: no data
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
            if "Statement" not in policy:  # a SAM policy template: the one that invokes one function
                assert set(policy) == {"LambdaInvokePolicy"}, name
                continue
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
    # one per function (the bulk worker too), the bulk state machine's, and the API's access logs
    assert len(logs) == len(FUNCTIONS) + 1 + 1 + 1 and all(r["Properties"]["RetentionInDays"] == "LogRetentionDays" for r in logs)


def test_each_function_has_a_reserved_concurrency_parameter_unreserved_by_default() -> None:
    """-1 (the default) reserves nothing: an account with a small quota (10) could not deploy a reservation."""
    template = load_template()
    for function in FUNCTIONS:
        prefix = function.removesuffix("Function")
        parameter, condition = f"{prefix}ReservedConcurrency", f"Reserve{prefix}Concurrency"
        assert template["Parameters"][parameter]["Default"] == -1, parameter
        assert template["Parameters"][parameter]["MinValue"] == -1, parameter
        assert template["Conditions"][condition] == [[parameter, -1]], condition  # !Not [!Equals [!Ref ..., -1]]
        reserved = template["Resources"][function]["Properties"]["ReservedConcurrentExecutions"]
        assert reserved == [condition, parameter, "AWS::NoValue"], function


def test_the_bulk_worker_has_its_own_reserved_concurrency_so_a_job_never_takes_the_online_functions() -> None:
    template = load_template()
    parameter = template["Parameters"]["BulkWorkerReservedConcurrency"]
    assert parameter["Default"] == template["Parameters"]["BulkMaxConcurrency"]["Default"] == 20
    assert parameter["MinValue"] == -1  # unreserved, for an account whose quota leaves nothing to reserve
    reserved = template["Resources"]["BulkWorkerFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == ["ReserveBulkWorkerConcurrency", "BulkWorkerReservedConcurrency", "AWS::NoValue"]


def test_api_access_logs_are_one_json_line_without_headers_or_tokens() -> None:
    resources = load_template()["Resources"]
    settings = resources["PredictionApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == "PredictionApiAccessLogs.Arn"
    assert resources["PredictionApiAccessLogs"]["Type"] == "AWS::Logs::LogGroup"
    assert "\n" not in settings["Format"]
    fields = json.loads(settings["Format"])
    assert fields == {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "integrationErrorMessage": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
    }
    for value in fields.values():
        assert not re.search(r"header|authorization|token|body", value, re.IGNORECASE), value


def checkov(*args: str) -> subprocess.CompletedProcess[str]:
    """checkov on template.yaml, offline (--skip-download: no Prisma Cloud guidelines)."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(ROOT)} is missing: run `make checkov` (`make test` does)")
    command = [str(CHECKOV), "--file", "template.yaml", "--framework", "cloudformation", "--skip-download", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def checkov_skips() -> list[tuple[str, str, dict[str, Any]]]:
    """(resource, check id, entry) of every inline `Metadata: checkov: skip:` entry."""
    return [
        (name, skip["id"], skip)
        for name, resource in load_template()["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


def test_checkov_passes_every_check() -> None:
    result = checkov("--quiet", "--compact")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", output)
    assert summary, output
    passed, failed, skipped = map(int, summary.groups())
    assert failed == 0, output
    assert passed >= 30, f"too few checks ran; are the Serverless resources scanned?\n{output}"
    assert skipped == len(checkov_skips()), "every inline suppression must match a check that ran"


def test_checkov_scans_every_function_and_suppresses_only_with_a_reason() -> None:
    result = checkov("--output", "json")
    try:
        report = json.loads(result.stdout)["results"]
    except (ValueError, KeyError):
        pytest.fail(f"checkov gave no JSON report:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    failed = [(c["check_id"], c["resource"]) for c in report.get("failed_checks", [])]
    assert not failed and result.returncode == 0, failed or result.stderr[-4000:]
    passed = {(c["check_id"], c["resource"]) for c in report["passed_checks"]}
    # fixed, not suppressed: the API's access logs and a reserved-concurrency setting on every function
    assert ("CKV_AWS_95", "AWS::Serverless::HttpApi.PredictionApi") in passed
    for function in (*FUNCTIONS, BULK_WORKER):
        assert ("CKV_AWS_115", f"AWS::Serverless::Function.{function}") in passed, function
        assert ("CKV_AWS_45", f"AWS::Serverless::Function.{function}") in passed, function  # no secret in env
    for name, check, skip in checkov_skips():
        assert check not in ("CKV_AWS_95", "CKV_AWS_115"), f"{name}: {check} must be fixed, not suppressed"
        assert len(skip.get("comment", "")) > 40, f"{name}: say why {check} does not apply"
    skipped = {(c["check_id"], c["resource"].split(".", 1)[1]) for c in report["skipped_checks"]}
    assert skipped == {(check, name) for name, check, _ in checkov_skips()}


def test_snapstart_is_an_option_off_by_default_on_the_route_functions_and_excludes_provisioned_concurrency() -> None:
    template = load_template()
    assert template["Parameters"]["EnableSnapStart"]["Default"] == "false"
    for function in ROUTE_FUNCTIONS:
        props = template["Resources"][function]["Properties"]
        assert props["AutoPublishAlias"] == "live"
        assert props["SnapStart"] == ["SnapStartOn", {"ApplyOn": "PublishedVersions"}, "AWS::NoValue"], function
    for function in ("DocsFunction", "AuthorizerFunction"):
        assert "SnapStart" not in template["Resources"][function]["Properties"]
    rule = template["Rules"]["SnapStartExcludesProvisionedConcurrency"]
    assert rule["RuleCondition"] == ["EnableSnapStart", "true"]
    assert rule["Assertions"][0]["Assert"] == ["ProvisionedConcurrency", 0]
    # SnapStart caps /tmp at 512 MB: the functions get 512 and the cache's budget follows it
    globals_ = template["Globals"]["Function"]
    assert globals_["EphemeralStorage"]["Size"] == ["SnapStartOn", 512, "EphemeralStorageSize"]
    assert globals_["Environment"]["Variables"]["EPHEMERAL_STORAGE_MB"] == ["SnapStartOn", 512, "EphemeralStorageSize"]
