"""models/digits.onnx, run by onnxruntime directly: the generic model's graph, on real held-out digits.

The images are models/data/digits_holdout.csv, written by models/build_models.py: 100 images of
scikit-learn's bundled UCI optical digits that the model was not trained on. No scikit-learn here.
"""

from __future__ import annotations

import csv
import hashlib
from functools import cache

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from support import ROOT

MODEL = ROOT / "models" / "digits.onnx"
HOLDOUT = ROOT / "models" / "data" / "digits_holdout.csv"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@cache
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


@cache
def holdout() -> tuple[np.ndarray, np.ndarray]:
    """The held-out images (uint8 [n, 8, 8]) and their names."""
    lines = HOLDOUT.read_text().splitlines()
    assert lines[0].startswith("# REAL data") and "scikit-learn" in lines[0]
    rows = list(csv.reader(lines[1:]))
    header, rows = rows[0], rows[1:]
    assert header == ["label", *(f"pixel_{r}_{c}" for r in range(8) for c in range(8))]
    labels = np.array([row[0] for row in rows])
    pixels = np.array([[int(v) for v in row[1:]] for row in rows])
    assert pixels.min() >= 0 and pixels.max() <= 16
    return pixels.astype(np.uint8).reshape(-1, 8, 8), labels


def run(pixels: np.ndarray, min_confidence: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.broadcast_to(np.asarray(min_confidence, dtype=np.float32), (len(pixels),))
    label, probabilities = session().run(
        ["label", "probabilities"], {"pixels": pixels, "min_confidence": np.ascontiguousarray(confidence)}
    )
    return label, probabilities


def test_the_holdout_is_a_small_balanced_sample() -> None:
    pixels, labels = holdout()
    assert pixels.shape == (100, 8, 8)
    assert sorted(labels.tolist()) == sorted(NAMES * 10)
    assert HOLDOUT.stat().st_size < 25_000


def test_the_manifest_names_the_file_by_its_checksum_and_no_kind() -> None:
    entries = yaml.safe_load((ROOT / "models" / "manifest.yaml").read_text())["models"]
    (entry,) = [e for e in entries if e["name"] == "digits"]
    assert set(entry) == {"name", "file", "sha256", "version", "description"}
    assert entry["file"] == "digits.onnx"
    assert entry["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert MODEL.stat().st_size < 50_000


def test_inputs_and_outputs_read_from_the_graph() -> None:
    def described(args: list[ort.NodeArg]) -> list[tuple[str, str, int]]:
        return [(a.name, a.type, len(a.shape)) for a in args]

    assert described(session().get_inputs()) == [
        ("pixels", "tensor(uint8)", 3),
        ("min_confidence", "tensor(float)", 1),
    ]
    assert described(session().get_outputs()) == [
        ("label", "tensor(string)", 1),
        ("probabilities", "tensor(float)", 2),
    ]
    pixels, confidence = session().get_inputs()
    label, probabilities = session().get_outputs()
    # The batch dimension is dynamic (symbolic or None); the others are fixed.
    for arg in (pixels, confidence, label, probabilities):
        assert arg.shape[0] is None or isinstance(arg.shape[0], str), arg
    assert pixels.shape[1:] == [8, 8]
    assert probabilities.shape[1:] == [10]


def test_accuracy_on_held_out_digits() -> None:
    pixels, labels = holdout()
    predicted, _ = run(pixels, 0.0)
    accuracy = float(np.mean(predicted == labels))
    assert accuracy >= 0.9, accuracy


def test_probabilities_are_a_distribution_over_digits_in_order() -> None:
    pixels, labels = holdout()
    predicted, probabilities = run(pixels, 0.0)
    assert probabilities.shape == (100, 10)
    assert probabilities.dtype == np.float32
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # Column k is digit k: with no threshold, the label is the argmax column's name.
    assert predicted.tolist() == [NAMES[k] for k in probabilities.argmax(axis=1)]


def test_min_confidence_above_one_makes_every_label_unsure() -> None:
    pixels, _ = holdout()
    predicted, probabilities = run(pixels, 1.01)
    assert predicted.tolist() == ["unsure"] * len(pixels)
    assert probabilities.shape == (len(pixels), 10)  # the probabilities are still given


def test_min_confidence_is_one_per_image() -> None:
    pixels, _ = holdout()
    pixels = pixels[:6]
    named, probabilities = run(pixels, 0.0)
    top = probabilities.max(axis=1)
    # Below the top probability (or equal to it) the name stands; above it, "unsure".
    thresholds = np.array([0.0, top[1], top[2] + 1e-3, 1.01, 0.5 * top[4], 2.0], dtype=np.float32)
    predicted, _ = run(pixels, thresholds)
    expected = [named[0], named[1], "unsure", "unsure", named[4], "unsure"]
    assert predicted.tolist() == expected


@pytest.mark.parametrize("size", [1, 17])
def test_batches_of_one_and_of_seventeen(size: int) -> None:
    pixels, labels = holdout()
    batch = pixels[:size]
    predicted, probabilities = run(batch, 0.0)
    assert predicted.shape == (size,)
    assert probabilities.shape == (size, 10)
    # Each image is predicted on its own: the batch gives what single images give.
    for i in range(size):
        alone, alone_probabilities = run(batch[i : i + 1], 0.0)
        assert alone.tolist() == [predicted[i]]
        np.testing.assert_allclose(alone_probabilities[0], probabilities[i], rtol=1e-6, atol=1e-7)


def test_wrong_datatype_is_refused_by_the_graph() -> None:
    pixels, _ = holdout()
    with pytest.raises(Exception, match="(?i)type"):
        session().run(None, {"pixels": pixels[:2].astype(np.float32), "min_confidence": np.zeros(2, np.float32)})
