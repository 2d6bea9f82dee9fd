"""publish_models: checksums verified before upload, manifest last, bucket found from a stack."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from local_s3 import in_process_s3
from publish_models import main, manifest_files, publish
from support import ROOT


def test_files_go_first_and_the_manifest_last(s3: Any) -> None:
    keys = publish(s3, "test-models", "v2/")
    assert keys[-1] == "v2/manifest.yaml" and len(keys) == len(manifest_files(ROOT / "models")) + 1


def test_the_manifest_is_uploaded_as_json_that_reads_as_the_yaml_does(s3: Any) -> None:
    """JSON, so the functions need no YAML parser at their cold start; the same document."""
    import json

    import yaml
    from prediction_service.catalog.manifest import Manifest

    publish(s3, "test-models", "json/")
    uploaded = s3.get_object(Bucket="test-models", Key="json/manifest.yaml")["Body"].read()
    written = (ROOT / "models" / "manifest.yaml").read_bytes()
    assert json.loads(uploaded) == yaml.safe_load(written)
    assert Manifest.parse(uploaded) == Manifest.parse(written)


def test_a_file_that_does_not_match_the_manifest_is_not_uploaded(s3: Any, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    (models / "user_churn.onnx").write_bytes(b"changed")
    with pytest.raises(ValueError, match="user_churn.onnx"):
        publish(s3, "test-models", "v3/", models_dir=models)
    assert "Contents" not in s3.list_objects_v2(Bucket="test-models", Prefix="v3/manifest.yaml")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda text: text.replace("lookback: 30", "lookback: -30", 1), "greater than 0"),
        (lambda text: text.replace("    kind: forecast", "    kind: regression", 1), "kind"),
        (lambda text: text + "\nunexpected: true\n", "unexpected"),
        (lambda text: text.replace("name: drive_stats_b", "name: drive_stats_a", 1), "listed twice"),
        (lambda text: text + '\naliases:\n  drive_stats_a:\n    stable: {"1.0": 95}\n', "add up to 95, not 100"),
        (lambda text: text.replace("      - model: drive_stats_b", "      - model: user_churn", 1), "differs from"),
    ],
    ids=["negative-lookback", "unknown-kind", "unknown-field", "a-version-twice", "bad-weights", "mismatched-members"],
)
def test_a_manifest_the_functions_would_refuse_is_not_uploaded(
    s3: Any, tmp_path: Path, capsys: Any, edit: Any, reason: str
) -> None:
    """Bug a: publish-models validates with the library's own parser, before uploading anything."""
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    manifest = models / "manifest.yaml"
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(ValueError, match=reason):
        publish(s3, "test-models", "v4/", models_dir=models)
    assert "Contents" not in s3.list_objects_v2(Bucket="test-models", Prefix="v4/")


def test_stack_option_publishes_to_the_stacks_model_bucket(capsys: Any) -> None:
    with in_process_s3("stack-models", publish=False):
        template = '{"Resources": {"B": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"ModelBucketName": {"Value": "stack-models"}}}'
        boto3.client("cloudformation").create_stack(StackName="demo", TemplateBody=template)
        assert main(["--stack", "demo"]) == 0
        listed = boto3.client("s3").list_objects_v2(Bucket="stack-models")["Contents"]
        assert len(listed) == len(manifest_files(ROOT / "models")) + 1
    assert "uploaded s3://stack-models/models/manifest.yaml" in capsys.readouterr().out
