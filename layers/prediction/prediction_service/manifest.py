"""The model manifest: which models exist, where their files are, and how to check them.

It is the only source of model names. A name from a request is looked up here
and never turned into an S3 key itself, so a crafted name cannot reach another
object in the bucket.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ManifestError, ModelNotFoundError


def _check_relative_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"file {path!r} must be a relative path without '.', '..' or empty parts")
    return path


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
RelativePath = Annotated[str, AfterValidator(_check_relative_path)]


class FileRef(BaseModel):
    """A file next to the manifest, and the sha256 it must have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: RelativePath
    sha256: Sha256


class DatasetRef(FileRef):
    """CSV series a forecaster reads its lookback window from."""

    column: str


class FeatureTableRef(FileRef):
    """CSV table a classifier looks rows up in by id."""

    id_column: str


class ModelSpec(BaseModel):
    """One model. A generic ONNX model needs only `name`, `file` and `sha256`: its inputs and
    outputs are read from the graph when it loads, and it is served through the v2 (Open
    Inference Protocol) routes. `forecast` and `classifier` add what the /v1 routes need;
    `text-embedding` adds the `tokenizer.json` in front of a sentence encoder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
    kind: Literal["onnx", "forecast", "classifier", "text-embedding"] = "onnx"
    description: str | None = Field(default=None, max_length=500)
    file: RelativePath
    sha256: Sha256
    group: str | None = None
    block: str | None = None
    # forecast
    lookback: int | None = Field(default=None, gt=0)
    horizon: int | None = Field(default=None, gt=0)
    dataset: DatasetRef | None = None
    # classifier
    classes: tuple[str, ...] | None = None
    inputs: tuple[str, ...] | None = None
    features: FeatureTableRef | None = None
    # text-embedding
    tokenizer: FileRef | None = None
    max_tokens: int = Field(default=256, gt=0, le=8192, description="word pieces the encoder reads")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ModelSpec:
        needed = {
            "forecast": ("lookback", "horizon", "dataset"),
            "classifier": ("classes", "inputs"),
            "text-embedding": ("tokenizer",),
        }
        missing = [f for f in needed.get(self.kind, ()) if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{self.kind} model {self.name!r} needs {', '.join(missing)}")
        return self

    @property
    def input_width(self) -> int | None:
        """Number of values in one /v1 input row (None for a generic ONNX model)."""
        if self.kind == "forecast":
            return self.lookback
        return len(self.inputs or ()) if self.kind == "classifier" else None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[ModelSpec, ...]

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        names = [m.name for m in self.models]
        if len(names) != len(set(names)):
            raise ValueError("model names must be unique")
        blocks = [(m.group, m.block or m.name) for m in self.models if m.group]
        if len(blocks) != len(set(blocks)):
            raise ValueError("each (group, block) must name one model")
        return self

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            return cls.model_validate(document(raw))
        except (ValueError, ValidationError) as exc:
            raise ManifestError("it is not a valid manifest (the error is logged)", detail=str(exc)) from exc

    def get(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise ModelNotFoundError(name)

    def find_block(self, group: str, block: str) -> ModelSpec | None:
        """The model a playground run names by pipeline (group) and block."""
        for spec in self.models:
            if spec.group == group and block in (spec.block, spec.name):
                return spec
        return None


def document(raw: bytes) -> Any:
    """A manifest's data, not yet validated: JSON, as `make publish-models` uploads it, is read
    without a YAML parser (importing PyYAML alone took 25 ms of a cold start); anything else
    as YAML, as written by hand. Raises ValueError when it is neither."""
    if raw.lstrip()[:1] == b"{":
        try:
            return json.loads(raw)
        except ValueError:
            pass  # YAML's flow style starts with "{" too
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML: {exc}") from exc
