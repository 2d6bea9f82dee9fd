"""The model manifest: which models exist, where their files are, and how to check them.

It is the only source of model names. A name from a request is looked up here
and never turned into an S3 key itself, so a crafted name cannot reach another
object in the bucket.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from prediction_service.errors import ManifestError, ModelNotFoundError, VersionNotFoundError


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


NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
VERSION = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
STABLE = "stable"  # the alias a request for the bare name follows


class Member(BaseModel):
    """A model an ensemble combines: a version of it (by default the one its name serves, routed
    with the request's key) and its weight in the mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=NAME)
    version: str | None = Field(default=None, pattern=VERSION)
    weight: float = Field(default=1.0, gt=0, le=1000)


class Entry(BaseModel):
    """What every version of a model has: its name and version, where the playground finds it
    (`group`, `block`), and `shadow_of` (this version runs beside that one and never answers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    version: str = Field(default="1", pattern=VERSION)
    description: str | None = Field(default=None, max_length=500)
    group: str | None = None
    block: str | None = None
    shadow_of: str | None = Field(default=None, pattern=VERSION)

    @property
    def label(self) -> str:
        return f"{self.name!r} version {self.version!r}"

    def files(self, *, tables: bool = True) -> list[FileRef]:
        """The files this version reads (`tables`: its data tables too); an ensemble has none."""
        return []

    def interface_entry(self) -> ModelSpec:
        """The entry whose inputs, outputs and data a request for this one follows: itself, or an
        ensemble's first member."""
        return self  # type: ignore[return-value]

    def interface(self) -> tuple[object, ...]:
        """What a caller relies on, the same in every version of a name and every member of an
        ensemble: the kind, and a forecast's window and horizon, a classifier's classes and columns."""
        return (self.kind,)  # type: ignore[attr-defined]


class FileEntry(Entry):
    """A model with an ONNX file of its own, checked against its sha256."""

    file: RelativePath
    sha256: Sha256

    def files(self, *, tables: bool = True) -> list[FileRef]:
        return [self.graph, *self.data_files(tables=tables)]

    @functools.cached_property
    def graph(self) -> FileRef:
        """The ONNX file as a file reference (built once, without validating again: the entry's fields are)."""
        return FileRef.model_construct(file=self.file, sha256=self.sha256)

    def data_files(self, *, tables: bool = True) -> list[FileRef]:
        """Files besides the graph: a tokenizer, data tables (with `tables`)."""
        return []


class OnnxEntry(FileEntry):
    """Any ONNX graph: its inputs and outputs are read from the graph when it loads, and it is
    served through the v2 (Open Inference Protocol) routes."""

    kind: Literal["onnx"] = "onnx"


class ForecastEntry(FileEntry):
    """A forecaster: `lookback` points of its dataset's column in, `horizon` values out."""

    kind: Literal["forecast"]
    lookback: int = Field(gt=0)
    horizon: int = Field(gt=0)
    dataset: DatasetRef

    def data_files(self, *, tables: bool = True) -> list[FileRef]:
        return [self.dataset] if tables else []

    def interface(self) -> tuple[object, ...]:
        return self.kind, self.lookback, self.horizon


class ClassifierEntry(FileEntry):
    """A classifier of rows of `inputs` columns into `classes`; `features` is a table its rows
    can be looked up in by id."""

    kind: Literal["classifier"]
    classes: tuple[str, ...] = Field(min_length=1)
    inputs: tuple[str, ...] = Field(min_length=1)
    features: FeatureTableRef | None = None

    def data_files(self, *, tables: bool = True) -> list[FileRef]:
        return [self.features] if tables and self.features else []

    def interface(self) -> tuple[object, ...]:
        return self.kind, self.classes, len(self.inputs)


class TextEntry(FileEntry):
    """A sentence encoder with the `tokenizer.json` in front of it."""

    kind: Literal["text-embedding"]
    tokenizer: FileRef
    max_tokens: int = Field(default=256, gt=0, le=8192, description="word pieces the encoder reads")
    matryoshka_dimensions: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        default=(), max_length=32,
        description="shorter sizes its embeddings keep their meaning at (a Matryoshka-trained model): "
        "a request may ask for one of them, and gets the first that many values, normalised again")

    def data_files(self, *, tables: bool = True) -> list[FileRef]:
        return [self.tokenizer]


class EnsembleEntry(Entry):
    """Forecasters or classifiers of one interface, combined: it has no file of its own, and takes
    its interface from its members (`members_entry`, set when the manifest is read)."""

    kind: Literal["ensemble"]
    members: tuple[Member, ...] = Field(min_length=2, max_length=8)
    shadow_of: None = None

    _first: ForecastEntry | ClassifierEntry | None = PrivateAttr(default=None)

    @property
    def members_entry(self) -> ForecastEntry | ClassifierEntry:
        """Its first member's serving entry: what its inputs mean and what it answers."""
        if self._first is None:
            raise ValueError(f"ensemble {self.name!r} was not read from a manifest")
        return self._first

    def interface_entry(self) -> ModelSpec:
        return self.members_entry

    def interface(self) -> tuple[object, ...]:
        return self.members_entry.interface()


ModelSpec = OnnxEntry | ForecastEntry | ClassifierEntry | TextEntry | EnsembleEntry


def _default_kind(raw: Any) -> Any:
    """An entry without `kind` is a generic ONNX model."""
    if isinstance(raw, dict) and "kind" not in raw:
        return {**raw, "kind": "onnx"}
    return raw


Weights = dict[Annotated[str, Field(pattern=VERSION)], Annotated[int, Field(ge=0, le=100, strict=True)]]


class Manifest(BaseModel):
    """Every model, each version an entry; `aliases` map a model's alias to weighted versions
    (`{"user_churn": {"stable": {"1.0": 90, "1.1": 10}}}`): a request for the bare name follows
    `stable`. Whatever would make a request ambiguous or a rollout unsafe is refused here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[Annotated[ModelSpec, Field(discriminator="kind"), BeforeValidator(_default_kind)], ...]
    aliases: dict[Annotated[str, Field(pattern=NAME)], dict[Annotated[str, Field(pattern=VERSION)], Weights]] = {}

    _versions: dict[str, tuple[ModelSpec, ...]] = PrivateAttr(default_factory=dict)
    _shadows: dict[tuple[str, str], ModelSpec] = PrivateAttr(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _versions_agree(cls, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        raw = _by_name(models)
        for spec in models:
            if isinstance(spec, EnsembleEntry):
                _check_members(spec, raw)
        for name, versions in _by_name(models).items():
            first = versions[0]
            for other in versions[1:]:
                if other.interface() != first.interface():
                    raise ValueError(f"model {other.label} differs from version {first.version!r} in kind, window, "
                                     "horizon, classes or inputs: give a new interface a new name")
                if (other.group, other.block) != (first.group, first.block):
                    raise ValueError(f"model {other.label} has another group or block than version {first.version!r}")
            known = {v.version: v for v in versions}
            shadowed: set[str] = set()
            for spec in versions:
                if spec.shadow_of is None:
                    continue
                live = known.get(spec.shadow_of)
                if live is None or live.shadow_of is not None:
                    raise ValueError(f"model {spec.label} shadows {spec.shadow_of!r}, "
                                     "which is not a serving version of it")
                if spec.shadow_of in shadowed:
                    raise ValueError(f"model {name!r} version {spec.shadow_of!r} has more than one shadow")
                shadowed.add(spec.shadow_of)
            if all(v.shadow_of is not None for v in versions):
                raise ValueError(f"model {name!r} has only shadow versions")
        return models

    @model_validator(mode="after")
    def _routing(self) -> Manifest:
        self._versions.update({spec.name: () for spec in self.models})
        for spec in self.models:
            self._versions[spec.name] += (spec,)
            if spec.shadow_of is not None:
                self._shadows[(spec.name, spec.shadow_of)] = spec
        for name, aliases in self.aliases.items():
            versions = {v.version: v for v in self._versions.get(name, ())}
            if not versions:
                raise ValueError(f"aliases name model {name!r}, which the manifest does not list")
            for alias, weights in aliases.items():
                if alias in versions:
                    raise ValueError(f"model {name!r}: alias {alias!r} is also one of its versions")
                unknown = [v for v in weights if v not in versions or versions[v].shadow_of is not None]
                if unknown:
                    raise ValueError(f"model {name!r}: alias {alias!r} weighs {', '.join(map(repr, unknown))}, "
                                     "which are not serving versions of it")
                if sum(weights.values()) != 100:
                    raise ValueError(f"model {name!r}: the weights of alias {alias!r} add up to "
                                     f"{sum(weights.values())}, not 100")
        for name, versions in self._versions.items():
            serving = [v for v in versions if v.shadow_of is None]
            if len(serving) > 1 and STABLE not in self.aliases.get(name, {}):
                raise ValueError(f"model {name!r} has {len(serving)} serving versions: give it a {STABLE!r} alias "
                                 "that weighs them, so a request for the bare name knows where to go")
        blocks: dict[tuple[str, str], str] = {}
        for spec in self.models:
            if spec.group and blocks.setdefault((spec.group, spec.block or spec.name), spec.name) != spec.name:
                raise ValueError("each (group, block) must name one model")
        return self

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            return cls.model_validate(document(raw))
        except (ValueError, ValidationError) as exc:
            raise ManifestError("it is not a valid manifest (the error is logged)", detail=str(exc)) from exc

    def names(self) -> list[str]:
        """Each model's name once, in the manifest's order."""
        return list(self._versions)

    def versions(self, name: str) -> tuple[ModelSpec, ...]:
        """Every version of a model, shadows included, in the manifest's order."""
        versions = self._versions.get(name)
        if versions is None:
            raise ModelNotFoundError(name)
        return versions

    def alias(self, name: str, version: str | None = None) -> str | None:
        """The alias a request for `name` (and `version`) follows: `version` when it is one of the
        model's aliases, `stable` for the bare name when the model has it; None when the request
        names a version, or the model has a single serving version."""
        aliases = self.aliases.get(name, {})
        wanted = STABLE if version is None else version
        return wanted if wanted in aliases else None

    def get(self, name: str, version: str | None = None) -> ModelSpec:
        """A version of a model; for an alias (or the bare name, which follows `stable`), the version
        it weighs most, else the model's only serving version. Raises ModelNotFoundError or
        VersionNotFoundError (naming the versions and aliases there are)."""
        versions = self.versions(name)
        alias = self.alias(name, version)
        if alias is not None:
            weights = self.aliases[name][alias]
            version = max(weights, key=lambda v: weights[v])  # the first listed of equal weights
        elif version is None:
            return next(v for v in versions if v.shadow_of is None)
        for spec in versions:
            if spec.version == version:
                return spec
        raise VersionNotFoundError(name, version, [*(v.version for v in versions), *self.aliases.get(name, {})])

    def reachable(self, name: str, version: str | None = None) -> list[ModelSpec]:
        """Every version a request for this name (and version or alias) may be answered by."""
        alias = self.alias(name, version)
        if alias is not None:
            return [self.get(name, v) for v, weight in self.aliases[name][alias].items() if weight > 0]
        return [self.get(name, version)]

    def shadow_for(self, spec: ModelSpec) -> ModelSpec | None:
        """The version that shadows `spec`, if one does."""
        return self._shadows.get((spec.name, spec.version))

    def find_block(self, group: str, block: str) -> ModelSpec | None:
        """The model a playground run names by pipeline (group) and block."""
        for spec in self.models:
            if spec.group == group and block in (spec.block, spec.name):
                return self.get(spec.name)
        return None


def _by_name(models: tuple[ModelSpec, ...]) -> dict[str, list[ModelSpec]]:
    """Each name's versions, in order; a (name, version) listed twice is refused."""
    by_name: dict[str, list[ModelSpec]] = {}
    for spec in models:
        versions = by_name.setdefault(spec.name, [])
        if any(v.version == spec.version for v in versions):
            raise ValueError(f"model {spec.label} is listed twice")
        versions.append(spec)
    return by_name


def _check_members(ensemble: EnsembleEntry, by_name: dict[str, list[ModelSpec]]) -> None:
    """An ensemble's members exist, are forecasters or classifiers, and share one interface, which
    becomes the ensemble's (its first member's serving entry)."""
    entries: list[ForecastEntry | ClassifierEntry] = []
    for member in ensemble.members:
        versions = by_name.get(member.model)
        if not versions:
            raise ValueError(f"ensemble {ensemble.name!r}: member {member.model!r} is not in the manifest")
        chosen = [v for v in versions
                  if v.version == member.version or (member.version is None and v.shadow_of is None)]
        if not chosen:
            raise ValueError(f"ensemble {ensemble.name!r}: member {member.model!r} has no version {member.version!r}")
        entry = chosen[0]
        if not isinstance(entry, ForecastEntry | ClassifierEntry):
            raise ValueError(f"ensemble {ensemble.name!r}: members must be forecast or classifier models, "
                             f"not {entry.kind}")
        entries.append(entry)
    first = entries[0]
    for member, entry in zip(ensemble.members[1:], entries[1:], strict=True):
        if entry.interface() != first.interface():
            what = "window and horizon" if isinstance(first, ForecastEntry) else "classes and row width"
            raise ValueError(f"ensemble {ensemble.name!r}: member {member.model!r} differs from "
                             f"{ensemble.members[0].model!r} in kind, {what}")
    ensemble._first = first


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
