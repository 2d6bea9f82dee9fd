"""The bulk state machine's definition (statemachine/bulk.asl.json), checked without AWS.

moto's Step Functions interpreter runs most of it (tests/sam/test_bulk_state_machine.py), but as
of moto 5.2 its parser has no ItemBatcher and no JSON Lines reader, and its ResultWriter writes
only a manifest. Those parts are checked here instead: cfn-lint validates the definition
against the Amazon States Language schema (rendered into the CloudFormation resource that SAM
makes of it), and the assertions below hold what the production definition must say. The
worker's side of them (the batch events ItemBatcher sends) is tests/unit/bulk/test_bulk_worker.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from local_api import load_template
from support import ROOT, venv_tool

pytestmark = pytest.mark.sam

DEFINITION = ROOT / "statemachine" / "bulk.asl.json"
MAPS = ("ScoreCsv", "ScoreJsonLines", "ScoreShards")
LAMBDA_ERRORS = {"Lambda.TooManyRequestsException", "Lambda.ServiceException", "Lambda.AWSLambdaException",
                 "Lambda.SdkClientException", "Lambda.ClientExecutionTimeoutException"}


def definition() -> dict[str, Any]:
    return json.loads(DEFINITION.read_text())


def cfn_lint(document: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint on the state machine as CloudFormation gets it from SAM: an AWS::StepFunctions::StateMachine
    with the definition and its substitutions (cfn-lint checks the States Language there)."""
    template = load_template()["Resources"]["BulkStateMachine"]["Properties"]
    substitutions = {name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
                     for name in template["DefinitionSubstitutions"]}
    rendered = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"BulkStateMachine": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"RoleArn": "arn:aws:iam::123456789012:role/bulk", "StateMachineType": template["Type"],
                       "Definition": document, "DefinitionSubstitutions": substitutions}}}}
    path = tmp_path / "state-machine.json"
    path.write_text(json.dumps(rendered))
    return subprocess.run([venv_tool("cfn-lint"), str(path)], capture_output=True, text=True, timeout=300)


def test_cfn_lint_finds_nothing_in_the_definition(tmp_path: Path) -> None:
    result = cfn_lint(definition(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_would_catch_a_broken_definition(tmp_path: Path) -> None:
    """The check above can fail: a misspelt field and a state that leads nowhere are caught."""
    broken = definition()
    broken["States"]["Summarize"]["Nxt"] = broken["States"]["Summarize"].pop("Next")
    result = cfn_lint(broken, tmp_path)
    assert result.returncode != 0 and "E3601" in result.stdout, result.stdout


def test_the_template_points_at_the_definition_with_every_substitution_it_uses() -> None:
    props = load_template()["Resources"]["BulkStateMachine"]["Properties"]
    assert props["DefinitionUri"] == "statemachine/bulk.asl.json" and props["Type"] == "STANDARD"
    used = set(re.findall(r"\$\{([^}]*)\}", DEFINITION.read_text()))  # Fn::Sub would choke on any other
    assert used == set(props["DefinitionSubstitutions"]) == {"BulkJobFunctionArn", "BulkWorkerFunctionArn"}


def test_the_job_is_checked_first_and_a_refused_job_scores_nothing() -> None:
    states = definition()["States"]
    assert definition()["StartAt"] == "ValidateJob"
    assert states["ValidateJob"]["Next"] == "JobAccepted?"
    choices = states["JobAccepted?"]["Choices"]
    assert choices[0] == {"Variable": "$.ok", "BooleanEquals": False, "Next": "RefuseJob"}
    assert states["RefuseJob"] == {"Type": "Fail", "Error": "JobRefused", "CausePath": "$.reason"}
    assert {c["Next"] for c in choices[1:]} | {states["JobAccepted?"]["Default"]} == set(MAPS)


@pytest.mark.parametrize("name", MAPS)
def test_each_distributed_map_batches_tolerates_failures_retries_and_writes_its_results(name: str) -> None:
    state = definition()["States"][name]
    assert state["Type"] == "Map" and state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert state["MaxConcurrencyPath"] == "$.run.max_concurrency"
    assert state["ToleratedFailurePercentagePath"] == "$.run.tolerated_failure_percentage"
    batcher = state["ItemBatcher"]
    assert batcher["BatchInput"] == {"job.$": "$.job"}
    if name == "ScoreShards":
        assert batcher["MaxItemsPerBatch"] == 1  # a shard is a batch: the worker streams it
    else:
        assert batcher["MaxItemsPerBatchPath"] == "$.run.batch_size" and batcher["MaxInputBytesPerBatch"] == 262144
        assert state["ItemSelector"] == {"index.$": "$$.Map.Item.Index", "row.$": "$$.Map.Item.Value"}
    assert state["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"
    assert state["ResultWriter"]["Parameters"] == {"Bucket.$": "$.job.output.bucket", "Prefix.$": "$.paths.map_results"}
    assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.map_error", "Next": "Summarize"}]
    assert state["Next"] == "Summarize"
    task = state["ItemProcessor"]["States"]["ScoreBatch"]
    throttles, failures = task["Retry"]
    assert set(throttles["ErrorEquals"]) == LAMBDA_ERRORS and throttles["JitterStrategy"] == "FULL"
    assert throttles["BackoffRate"] >= 2 and throttles["MaxAttempts"] >= 3
    assert failures["ErrorEquals"] == ["States.ALL"] and failures["JitterStrategy"] == "FULL" and failures["MaxAttempts"] == 2
    refused = state["ItemProcessor"]["States"]["RefuseBatch"]
    assert refused == {"Type": "Fail", "Error": "BatchRefused", "CausePath": "$.refused"}  # never retried


def test_the_readers_are_a_csv_with_a_header_row_json_lines_and_a_prefix_listing() -> None:
    states = definition()["States"]
    assert states["ScoreCsv"]["ItemReader"]["ReaderConfig"] == {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
    assert states["ScoreJsonLines"]["ItemReader"]["ReaderConfig"] == {"InputType": "JSONL"}
    assert states["ScoreShards"]["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"


def test_the_summary_runs_after_the_map_whatever_happened_and_a_failed_job_fails() -> None:
    states = definition()["States"]
    assert states["Summarize"]["Parameters"]["Payload"] == {"step": "summarize", "state.$": "$",
                                                            "started.$": "$$.Execution.StartTime"}
    assert states["JobSucceeded?"]["Choices"] == [{"Variable": "$.status", "StringEquals": "FAILED", "Next": "JobFailed"}]
    assert states["JobFailed"] == {"Type": "Fail", "Error": "BatchesFailed", "CausePath": "$.message"}


def test_the_state_machine_may_only_invoke_its_functions_read_inputs_and_write_results() -> None:
    policies = load_template()["Resources"]["BulkStateMachine"]["Properties"]["Policies"]
    assert policies[:2] == [{"LambdaInvokePolicy": {"FunctionName": "BulkJobFunction"}},
                            {"LambdaInvokePolicy": {"FunctionName": "BulkWorkerFunction"}}]
    statements = {s["Sid"]: s for s in policies[2]["Statement"]}
    assert statements["ReadInputs"]["Action"] == "s3:GetObject"
    assert statements["ReadInputs"]["Resource"][0].endswith("/${BulkInputPrefix}*")
    assert statements["ListInputs"]["Condition"] == {"StringLike": {"s3:prefix": "${BulkInputPrefix}*"}}
    assert statements["WriteMapResults"]["Resource"][0].endswith("/${BulkOutputPrefix}*")
    assert statements["RunChildWorkflows"]["Resource"].endswith(":stateMachine:${AWS::StackName}-bulk-scoring")
    assert set(statements) == {"ReadInputs", "ListInputs", "WriteMapResults", "RunChildWorkflows",
                               "FollowChildWorkflows", "DeliverLogs"}
