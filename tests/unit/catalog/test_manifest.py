"""The manifest: the shipped one is valid and names only safe relative keys; bad ones are refused."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml
from prediction_service.catalog.manifest import EnsembleEntry, Manifest, OnnxEntry
from prediction_service.errors import ManifestError, ModelNotFoundError
from support import ROOT

SHIPPED = (ROOT / "models" / "manifest.yaml").read_bytes()
SHA = "a" * 64


@contextmanager
def refused(reason: str) -> Iterator[None]:
    """The manifest is refused: the parser's reason is in the logged detail, never in the message."""
    with pytest.raises(ManifestError) as info:
        yield
    assert re.search(reason, info.value.detail), info.value.detail
    assert info.value.message == "the model manifest could not be loaded: it is not a valid manifest (the error is logged)"



def manifest_with(**fields: object) -> bytes:
    model = {"name": "m", "version": "1", "kind": "classifier", "file": "m.onnx", "sha256": SHA}
    model.update(classes=["a", "b"], inputs=["x"])
    model.update(fields)
    return yaml.safe_dump({"models": [model]}).encode()


def test_shipped_manifest_checksums_match_the_committed_files() -> None:
    manifest = Manifest.parse(SHIPPED)
    for spec in manifest.models:
        if isinstance(spec, EnsembleEntry):  # no file of its own: its members have theirs
            assert spec.files() == [] and all(manifest.versions(m.model) for m in spec.members)
            continue
        assert len(spec.files()) > 1 or spec.kind == "onnx", spec.name  # the graph and its data
        for ref in spec.files():
            assert hashlib.sha256((ROOT / "models" / ref.file).read_bytes()).hexdigest() == ref.sha256


def test_a_generic_model_needs_only_name_file_and_sha256() -> None:
    spec = Manifest.parse(f"models:\n  - name: any\n    file: any.onnx\n    sha256: {SHA}\n".encode()).models[0]
    assert isinstance(spec, OnnxEntry)
    assert (spec.kind, spec.version, spec.description, spec.interface()) == ("onnx", "1", None, ("onnx",))


def test_shipped_manifest_maps_the_playground_block_to_the_classifier() -> None:
    manifest = Manifest.parse(SHIPPED)
    spec = manifest.find_block("ml_inference_online", "ml/inference/online/predictions")
    assert spec is not None and spec.kind == "classifier"
    assert manifest.find_block("ml_inference_online", "drive_stats_a") is None


def test_unknown_name_raises_not_found() -> None:
    with pytest.raises(ModelNotFoundError, match="not in the manifest"):
        Manifest.parse(SHIPPED).get("../secrets")


@pytest.mark.parametrize("path", ["../x.onnx", "/abs.onnx", "a/../b.onnx", "a//b.onnx", "a\\b.onnx", "./a.onnx", ""])
def test_paths_outside_the_prefix_are_refused(path: str) -> None:
    with refused("relative path"):
        Manifest.parse(manifest_with(file=path))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "forecast"}, r"forecast.lookback\n  Field required"),
        ({"classes": None}, r"classifier.classes\n  Input should be a valid tuple"),
        ({"sha256": "abc"}, "sha256"),
        ({"name": "has/slash"}, "name"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_models_are_refused_with_a_reason(fields: dict[str, object], message: str) -> None:
    with refused(message):
        Manifest.parse(manifest_with(**fields))


def test_a_version_listed_twice_is_refused() -> None:
    doc = yaml.safe_load(manifest_with())
    doc["models"].append(dict(doc["models"][0]))
    with refused("model 'm' version '1' is listed twice"):
        Manifest.parse(yaml.safe_dump(doc).encode())


def test_not_yaml_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError):
        Manifest.parse(b"models: [unclosed")
