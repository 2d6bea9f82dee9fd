"""Rebuild the shipped example models and their data, then refresh manifest checksums.

The forecast and churn data is SYNTHETIC, made by a seeded generator so every run
gives the same bytes:

- ``data/drive_stats_daily.csv``: a daily hard-drive failure-rate series (percent
  of drives failing per day) with a slow trend, a weekly cycle and noise, in the
  spirit of public drive-stats reports. Not real measurements.
- ``data/user_features.csv``: per-user activity features and nothing else; the
  churn labels used for training come from a known logistic rule plus noise.

The digits data is REAL: scikit-learn's bundled copy of the test set of the UCI
"Optical Recognition of Handwritten Digits" data (``sklearn.datasets.load_digits``:
1797 images of 8x8 pixels, intensities 0..16), split by a seeded stratified shuffle
(75 % to train, 25 % held out):

- ``data/digits_holdout.csv``: 100 held-out images (the first 10 of each digit in
  the held-out split), ``label`` then the 64 pixels row by row; a test fixture.

Models (exported to ONNX, float32 inputs):

- ``drive_stats_a.onnx``: linear regression, last 30 days in, next 3 days out.
- ``drive_stats_b.onnx``: ridge (L2-regularised) regression on the same windows.
- ``user_churn.onnx``: logistic regression, 4 features in, label and the two class
  probabilities (``stays``, ``churns``) out.
- ``user_churn_v1_1.onnx``: the same, retrained with class weights balanced and a stronger L2
  penalty (C=0.05): a candidate version 1.1 that the manifest runs as a shadow of 1.0, so
  prediction records show how often the two disagree.
- ``digits.onnx``: a generic ONNX model (no ``kind``: served through the v2 routes),
  which the forecast and classifier kinds could not serve. Inputs ``pixels`` UINT8
  ``[batch, 8, 8]`` and ``min_confidence`` FP32 ``[batch]``; outputs ``label``, a
  string ``[batch]`` ("zero".."nine", or "unsure" when the top probability is below
  ``min_confidence``), and ``probabilities`` FP32 ``[batch, 10]``, column k for digit
  k. A multinomial logistic regression converted by skl2onnx, with ONNX nodes around
  it: Cast and Reshape before, Gather (digit -> name), ReduceMax, Less and Where after.

Run with the training requirements installed (``make models``)::

    pip install -r models/requirements-train.txt
    python models/build_models.py [--only drive_stats|user_churn|digits ...]

``--only`` rebuilds the named models (and their data) and leaves the other files alone;
the checksums are refreshed either way. Rebuilding on the same machine gives the same
bytes, but another machine's BLAS may change the last bits of fitted weights (the
committed ``drive_stats_*.onnx`` are an example), so add or change one model with
``--only``. The CSVs do not depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split

MODELS_DIR = Path(__file__).resolve().parent
LOOKBACK = 30
HORIZON = 3
SEED = 20240101
FEATURES = ("sessions_per_week", "days_since_last_login", "tenure_months", "support_tickets")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
UNSURE = "unsure"
HOLDOUT_PER_DIGIT = 10


def make_drive_series(days: int = 730) -> tuple[list[str], np.ndarray]:
    """Synthetic daily failure rate in percent: trend + weekly cycle + noise."""
    rng = np.random.default_rng(SEED)
    t = np.arange(days)
    trend = 0.45 + 0.10 * t / days
    weekly = 0.03 * np.sin(2 * np.pi * t / 7)
    yearly = 0.04 * np.sin(2 * np.pi * t / 365.25)
    values = trend + weekly + yearly + rng.normal(0, 0.01, days)
    start = dt.date(2023, 1, 1)
    dates = [(start + dt.timedelta(days=int(i))).isoformat() for i in t]
    return dates, np.round(values, 5)


def windows(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows: LOOKBACK values in, the next HORIZON values out."""
    n = len(series) - LOOKBACK - HORIZON + 1
    x = np.stack([series[i : i + LOOKBACK] for i in range(n)])
    y = np.stack([series[i + LOOKBACK : i + LOOKBACK + HORIZON] for i in range(n)])
    return x.astype(np.float32), y.astype(np.float32)


def make_users(count: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic users 1..count, their features and churn labels (1 = churns)."""
    rng = np.random.default_rng(SEED + 1)
    ids = np.arange(1, count + 1)
    sessions = rng.gamma(2.0, 2.5, count).round(1)
    idle_days = rng.exponential(12.0, count).round(0)
    tenure = rng.integers(1, 72, count).astype(float)
    tickets = rng.poisson(1.2, count).astype(float)
    logit = -0.9 - 0.45 * sessions + 0.12 * idle_days - 0.03 * tenure + 0.5 * tickets
    churns = (rng.random(count) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return ids, np.column_stack([sessions, idle_days, tenure, tickets]), churns


def write_csv(path: Path, header: list[str], rows: list[list[object]], note: str) -> None:
    lines = [f"# {note}", ",".join(header)]
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def export(model: object, sample: np.ndarray, path: Path, **options: object) -> None:
    onx = to_onnx(model, sample[:1], target_opset={"": 17, "ai.onnx.ml": 3}, **options)
    path.write_bytes(onx.SerializeToString())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refresh_checksums(manifest_path: Path) -> None:
    """Rewrite every ``sha256:`` that follows a ``file:`` line, keeping comments intact."""
    text = manifest_path.read_text()

    def replace(match: re.Match[str]) -> str:
        digest = sha256_of(manifest_path.parent / match.group(2))
        return f"{match.group(1)}{match.group(3)} {digest}"

    # An empty ``sha256:`` (a new entry) is filled in too.
    text = re.sub(r"(file: (\S+)\n)(\s*sha256:)[ \t]*[0-9a-f]*", replace, text)
    manifest_path.write_text(text)
    yaml.safe_load(text)  # still valid YAML


def split_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """load_digits split by a seeded stratified shuffle: images (uint8 [n, 8, 8]) and digits."""
    digits = load_digits()
    images = digits.images.astype(np.uint8)  # whole numbers 0..16 stored as float64
    assert np.array_equal(images, digits.images)
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target
    )
    return train_x, test_x, train_y, test_y


def digits_model(classifier: LogisticRegression, sample: np.ndarray) -> onnx.ModelProto:
    """The classifier as converted by skl2onnx, with the generic model's inputs and outputs around it.

    The classifier is trained on the digits 0..9, not on their names: scikit-learn sorts
    string classes ("eight", "five", "four", ...), which would put the probability columns
    out of digit order. Its int64 label is turned into the name by a Gather instead.
    """
    converted = to_onnx(
        classifier,
        sample[:1],
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(classifier): {"zipmap": False}},
    )
    core = converted.graph
    assert [o.name for o in core.output] == ["label", "probabilities"], core.output
    rename = {core.input[0].name: "features", "label": "digit"}
    classifier_nodes = []
    for node in core.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [rename.get(name, name) for name in node.input]
        copy.output[:] = [rename.get(name, name) for name in node.output]
        classifier_nodes.append(copy)
    theirs = {name for node in classifier_nodes for name in node.output} | {t.name for t in core.initializer}
    ours = {"pixels", "min_confidence", "pixels_float", "features_shape", "digit_names", "digit_name"}
    ours |= {"top_probability", "is_unsure", "unsure", "label"}
    assert not theirs & ours, theirs & ours
    ml_opset = max(o.version for o in converted.opset_import if o.domain == "ai.onnx.ml")

    batch = "batch"
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["pixels"], ["pixels_float"], to=TensorProto.FLOAT),
            helper.make_node("Reshape", ["pixels_float", "features_shape"], ["features"]),
            *classifier_nodes,
            helper.make_node("Gather", ["digit_names", "digit"], ["digit_name"], axis=0),
            helper.make_node("ReduceMax", ["probabilities"], ["top_probability"], axes=[1], keepdims=0),
            helper.make_node("Less", ["top_probability", "min_confidence"], ["is_unsure"]),
            helper.make_node("Where", ["is_unsure", "unsure", "digit_name"], ["label"]),
        ],
        "digits",
        inputs=[
            helper.make_tensor_value_info("pixels", TensorProto.UINT8, [batch, 8, 8]),
            helper.make_tensor_value_info("min_confidence", TensorProto.FLOAT, [batch]),
        ],
        outputs=[
            helper.make_tensor_value_info("label", TensorProto.STRING, [batch]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, len(DIGIT_NAMES)]),
        ],
        initializer=[
            *core.initializer,
            helper.make_tensor("features_shape", TensorProto.INT64, [2], [-1, 64]),
            helper.make_tensor(
                "digit_names", TensorProto.STRING, [len(DIGIT_NAMES)], [name.encode() for name in DIGIT_NAMES]
            ),
            helper.make_tensor("unsure", TensorProto.STRING, [], [UNSURE.encode()]),
        ],
        doc_string=(
            "Handwritten digit (8x8, intensities 0..16) -> its name, or 'unsure' when the top "
            "probability is below min_confidence; probabilities column k is digit k."
        ),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ml_opset)],
        ir_version=8,
        producer_name="models/build_models.py",
        doc_string="Logistic regression on scikit-learn's bundled UCI optical digits (real data).",
    )
    onnx.checker.check_model(model, full_check=True)  # full_check: strict shape inference too
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert inferred.graph.output == model.graph.output, inferred.graph.output
    return model  # without the inferred value_info: smaller, and the same graph


def build_drive_stats(data_dir: Path) -> None:
    dates, series = make_drive_series()
    write_csv(
        data_dir / "drive_stats_daily.csv",
        ["date", "failure_rate_pct"],
        [[d, v] for d, v in zip(dates, series, strict=True)],
        "SYNTHETIC daily drive failure rate (percent), generated by models/build_models.py",
    )
    x, y = windows(series)
    export(LinearRegression().fit(x, y), x, MODELS_DIR / "drive_stats_a.onnx")
    export(Ridge(alpha=0.5).fit(x, y), x, MODELS_DIR / "drive_stats_b.onnx")


def build_user_churn(data_dir: Path) -> None:
    ids, features, churns = make_users()
    write_csv(
        data_dir / "user_features.csv",
        ["user_id", *FEATURES],
        [[int(i), *row] for i, row in zip(ids, features.tolist(), strict=True)],
        "SYNTHETIC user activity features, generated by models/build_models.py",
    )
    classifier = LogisticRegression(max_iter=1000).fit(features.astype(np.float32), churns)
    export(
        classifier,
        features.astype(np.float32),
        MODELS_DIR / "user_churn.onnx",
        options={id(classifier): {"zipmap": False}},
    )
    candidate = LogisticRegression(max_iter=1000, C=0.05, class_weight="balanced")
    candidate.fit(features.astype(np.float32), churns)
    export(
        candidate,
        features.astype(np.float32),
        MODELS_DIR / "user_churn_v1_1.onnx",
        options={id(candidate): {"zipmap": False}},
    )
    agree = np.mean(classifier.predict(features) == candidate.predict(features))
    print(f"user_churn: versions 1.0 and 1.1 agree on {agree:.1%} of the {len(ids)} users")


def build_digits(data_dir: Path) -> None:
    train_x, test_x, train_y, test_y = split_digits()
    features = train_x.reshape(len(train_x), 64).astype(np.float32)
    classifier = LogisticRegression(max_iter=1000).fit(features, train_y)
    path = MODELS_DIR / "digits.onnx"
    path.write_bytes(digits_model(classifier, features).SerializeToString())

    picked = np.concatenate([np.flatnonzero(test_y == d)[:HOLDOUT_PER_DIGIT] for d in range(len(DIGIT_NAMES))])
    picked.sort()  # held-out order, digits mixed
    write_csv(
        data_dir / "digits_holdout.csv",
        ["label", *(f"pixel_{r}_{c}" for r in range(8) for c in range(8))],
        [[DIGIT_NAMES[test_y[i]], *test_x[i].ravel().tolist()] for i in picked],
        "REAL data: a sample of scikit-learn's bundled UCI optical digits (load_digits), held out from "
        f"training digits.onnx; {HOLDOUT_PER_DIGIT} images per digit, 8x8 pixels row by row, 0..16; "
        "from models/build_models.py",
    )
    import onnxruntime  # in the dev venv; only this check needs it

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, _ = session.run(None, {"pixels": test_x, "min_confidence": np.zeros(len(test_x), np.float32)})
    expected = np.array(DIGIT_NAMES)[classifier.predict(test_x.reshape(len(test_x), 64).astype(np.float32))]
    assert np.array_equal(labels, expected), "the ONNX graph disagrees with scikit-learn"
    accuracy = np.mean(labels == np.array(DIGIT_NAMES)[test_y])
    print(f"digits: held-out accuracy {accuracy:.4f} on {len(test_y)} images, {path.stat().st_size} bytes")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "drive_stats": build_drive_stats,
    "user_churn": build_user_churn,
    "digits": build_digits,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BUILDERS),
        help="rebuild only this model and its data (repeatable); default: all",
    )
    args = parser.parse_args(argv)
    data_dir = MODELS_DIR / "data"
    data_dir.mkdir(exist_ok=True)
    for name, build in BUILDERS.items():
        if args.only is None or name in args.only:
            build(data_dir)

    refresh_checksums(MODELS_DIR / "manifest.yaml")
    print("rebuilt models and refreshed checksums in", (MODELS_DIR / "manifest.yaml").name)


if __name__ == "__main__":
    main()
