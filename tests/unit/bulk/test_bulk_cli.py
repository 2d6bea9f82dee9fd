"""scripts/bulk.py's arguments: the job they describe, and refusals without a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bulk
import pytest


@pytest.fixture
def job_of(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """The job scripts/bulk.py starts for some arguments (the start itself is not sent: no AWS here)."""
    def run(*argv: str) -> dict[str, Any]:
        started: dict[str, Any] = {}
        monkeypatch.setattr(bulk, "start", lambda sfn, arn, job: started.update(job) or "arn:execution")
        assert bulk.main(["--state-machine-arn", "arn:x", "--region", "us-east-1", "--no-follow", *argv]) == 0
        return started

    return run


def test_flags_describe_a_job_and_its_id_is_a_digest_of_it(job_of: Callable[..., dict[str, Any]]) -> None:
    job = job_of("--model", "user_churn", "--input", "s3://data/datasets/users.csv", "--output", "s3://data/out/",
                 "--id-column", "user_id", "--features", "a,b,c,d", "--batch-size", "500", "--format", "csv")
    assert job == {"model": "user_churn", "input": {"bucket": "data", "key": "datasets/users.csv"},
                   "output": {"bucket": "data", "prefix": "out/", "format": "csv"}, "id_column": "user_id",
                   "columns": {"features": ["a", "b", "c", "d"]}, "batch_size": 500, "job_id": job["job_id"]}
    assert job["job_id"].startswith("user_churn-") and len(job["job_id"]) == len("user_churn-") + 10
    again = job_of("--model", "user_churn", "--input", "s3://data/datasets/users.csv", "--output", "s3://data/out/",
                   "--id-column", "user_id", "--features", "a,b,c,d", "--batch-size", "500", "--format", "csv")
    assert again["job_id"] == job["job_id"], "the same job, the same id: its objects are overwritten, not duplicated"


def test_a_prefix_an_input_map_and_a_job_file(job_of: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    job = job_of("--model", "digits", "--input", "s3://data/shards/", "--output", "s3://data",
                 "--input-column", "pixels=image", "--input-column", "min_confidence=c", "--job-id", "mine")
    assert job["input"] == {"bucket": "data", "prefix": "shards/"} and job["output"]["prefix"] == ""
    assert job["columns"] == {"inputs": {"pixels": "image", "min_confidence": "c"}} and job["job_id"] == "mine"
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"model": "user_churn", "input": {"bucket": "d", "key": "k.csv"},
                                "output": {"bucket": "d"}}))
    assert job_of("--job", str(path))["job_id"].startswith("user_churn-")


@pytest.mark.parametrize("argv", [
    ["--model", "m", "--input", "notanurl", "--output", "s3://b/"],
    ["--model", "m", "--input", "s3://", "--output", "s3://b/"],
    ["--model", "m", "--input", "s3://b/k", "--output", "s3://b/", "--input-column", "no-equals"],
    ["--model", "m", "--input", "s3://b/k"],
    ["--job", "/nonexistent/job.json"],
])
def test_bad_arguments_are_refused_without_a_traceback(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bulk.main(["--state-machine-arn", "arn:x", *argv])
    assert exit_.value.code != 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_job_file_without_an_output_is_refused_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"model": "user_churn", "input": {"bucket": "d", "key": "k.csv"}}))
    with pytest.raises(SystemExit, match="no output bucket"):
        bulk.main(["--state-machine-arn", "arn:x", "--job", str(path)])


def test_the_summary_is_looked_for_where_the_first_step_puts_it() -> None:
    assert bulk.job_root({"job_id": 12, "output": {"bucket": "b"}}) == ("b", "bulk/12/")
    assert bulk.job_root({"job_id": "j", "output": {"bucket": "b", "prefix": " /out "}}) == ("b", "out/j/")
