"""A bulk job: what the state machine is started with. Its first step checks it once and hands
the checked job to every batch (Distributed Map's `BatchInput`), so a worker never re-reads it.

    {"job_id": "churn-2026-12", "model": "user_churn", "version": "stable",
     "input": {"bucket": "data", "key": "users.csv"},
     "output": {"bucket": "data", "prefix": "scores/", "format": "jsonl"},
     "id_column": "user_id", "columns": {"features": ["sessions_per_week", ...]}}

Everything a job writes is under `<output.prefix><job_id>/` (`JobPaths`): running the same job
again writes the same keys.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from prediction_service.catalog.manifest import NAME, VERSION

# S3's rules for bucket names (3-63 lowercase letters, digits, dots, hyphens).
BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
JOB_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
Column = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
MAX_BATCH_SIZE = 10_000  # rows (Distributed Map also caps a batch at 256 KiB)
InputFormat = Literal["csv", "jsonl"]
OutputFormat = Literal["jsonl", "csv"]


def format_of(key: str) -> InputFormat:
    """An object's format from its name: `.csv` is CSV, anything else JSON Lines."""
    return "csv" if key.lower().endswith(".csv") else "jsonl"


class InputSpec(BaseModel):
    """Where the rows are: one object (`key`: a CSV with a header row, or JSON Lines), or every
    object under `prefix` (shards, each CSV or JSON Lines by its name unless `format` says)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(pattern=BUCKET)
    key: Key | None = None
    prefix: Key | None = None
    format: InputFormat | None = None

    @model_validator(mode="after")
    def _one_source(self) -> InputSpec:
        if (self.key is None) == (self.prefix is None):
            raise ValueError("input names either `key` (one CSV or JSON Lines object) or `prefix` (every object "
                             "under it), not both and not neither")
        return self

    @property
    def source(self) -> Literal["csv", "jsonl", "prefix"]:
        """Which of the state machine's readers takes it."""
        if self.key is None:
            return "prefix"
        return self.format or format_of(self.key)

    def format_for(self, key: str) -> InputFormat:
        return self.format or format_of(key)


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(pattern=BUCKET)
    prefix: Annotated[str, StringConstraints(max_length=512)] = "bulk/"
    format: OutputFormat = "jsonl"

    @model_validator(mode="after")
    def _as_prefix(self) -> OutputSpec:
        prefix = self.prefix.strip().lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if any(part in (".", "..") for part in prefix.split("/")):
            raise ValueError("output.prefix may not contain '.' or '..' parts")
        object.__setattr__(self, "prefix", prefix)
        return self


class Columns(BaseModel):
    """Where a row's inputs are, by the model's kind (each defaults to the model's own names):
    `features` (a classifier's, in its input order), `window` (a forecaster's lookback values:
    a JSON list, or numbers separated by spaces, commas or semicolons), `text` (a text model's),
    `inputs` (a generic ONNX model's: input name -> column, each cell a JSON value of the input's
    shape without the batch dimension)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: tuple[Column, ...] | None = Field(default=None, min_length=1, max_length=4096)
    window: Column | None = None
    text: Column | None = None
    inputs: dict[Column, Column] | None = Field(default=None, min_length=1, max_length=256)


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(pattern=JOB_ID)
    model: str = Field(pattern=NAME)
    version: str | None = Field(default=None, pattern=VERSION, description="a version or an alias")
    input: InputSpec
    output: OutputSpec
    id_column: Column = "id"
    columns: Columns = Columns()
    # How it runs (the template's BulkBatchSize, BulkMaxConcurrency, BulkToleratedFailurePercentage
    # unless the job says otherwise).
    batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE, description="rows a batch")
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000, description="batches at once")
    tolerated_failure_percentage: float | None = Field(default=None, ge=0, le=100)

    @property
    def paths(self) -> JobPaths:
        return JobPaths(f"{self.output.prefix}{self.job_id}/", self.output.format)


@dataclass(frozen=True)
class Run:
    """How a job runs, as the state machine reads it (`$.run`)."""

    batch_size: int
    max_concurrency: int
    tolerated_failure_percentage: float

    @classmethod
    def for_job(cls, job: JobSpec, env: Mapping[str, str]) -> Run:
        return cls(
            batch_size=job.batch_size or int(env.get("BULK_BATCH_SIZE") or 1000),
            max_concurrency=job.max_concurrency or int(env.get("BULK_MAX_CONCURRENCY") or 20),
            tolerated_failure_percentage=(job.tolerated_failure_percentage
                                          if job.tolerated_failure_percentage is not None
                                          else float(env.get("BULK_TOLERATED_FAILURE_PERCENTAGE") or 5)),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Allowed:
    """Where the stack lets bulk jobs read and write (its IAM policies say the same): a job
    outside them is refused by name before it fails on an access denied. Unset: anywhere."""

    input_bucket: str | None = None
    input_prefix: str = ""
    output_bucket: str | None = None
    output_prefix: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Allowed:
        return cls(env.get("BULK_INPUT_BUCKET") or None, env.get("BULK_INPUT_PREFIX", ""),
                   env.get("BULK_OUTPUT_BUCKET") or None, env.get("BULK_OUTPUT_PREFIX", ""))

    def refusal(self, job: JobSpec) -> str | None:
        source = job.input.key if job.input.key is not None else job.input.prefix or ""
        if self.input_bucket and (job.input.bucket != self.input_bucket or not source.startswith(self.input_prefix)):
            return (f"this stack's bulk jobs read under s3://{self.input_bucket}/{self.input_prefix} only "
                    "(its BulkDataBucket and BulkInputPrefix)")
        if self.output_bucket and (job.output.bucket != self.output_bucket
                                   or not job.output.prefix.startswith(self.output_prefix)):
            return (f"this stack's bulk jobs write under s3://{self.output_bucket}/{self.output_prefix} only "
                    "(its BulkDataBucket and BulkOutputPrefix)")
        return None


@dataclass(frozen=True)
class JobPaths:
    """The keys a job writes, all under `root` in the output bucket."""

    root: str
    output_format: OutputFormat = "jsonl"

    def results(self, batch: str) -> str:
        return f"{self.root}results/{batch}.{self.output_format}"

    def errors(self, batch: str) -> str:
        return f"{self.root}errors/{batch}.jsonl"

    def batch_stats(self, batch: str) -> str:
        return f"{self.root}batches/{batch}.json"

    @property
    def batches(self) -> str:
        return f"{self.root}batches/"

    @property
    def summary(self) -> str:
        return f"{self.root}summary.json"

    @property
    def accepted_job(self) -> str:
        return f"{self.root}job.json"

    @property
    def map_results(self) -> str:
        """Where Distributed Map's ResultWriter puts its manifest and result files."""
        return f"{self.root}map"

    def as_dict(self) -> dict[str, str]:
        return {"root": self.root, "results": f"{self.root}results/", "errors": f"{self.root}errors/",
                "summary": self.summary, "map_results": self.map_results}


def shard_batch_name(key: str) -> str:
    """A shard's batch name: its file name (safe characters only) and a digest of its whole key,
    so that two shards of one name under different folders never share a result."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in posixpath.basename(key))[:80]
    return f"{stem or 'shard'}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
