"""Text models: a `tokenizers` tokenizer in front of an ONNX sentence encoder.

The encoder takes `input_ids` and `attention_mask` (INT64, [batch, tokens]) and answers
unit-length embeddings ([batch, dimensions]), as models/build_text_model.py builds
all-MiniLM-L6-v2. Texts longer than the model's limit are truncated, and the answer says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import BadInputError, IntegrityError, ModelOutputError
from .inference import OnnxModel, TensorSpec
from .schemas import MAX_TEXTS

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MAX_TEXT_CHARACTERS = 10_000  # characters in one text (the model reads at most `max_tokens` word pieces)


def load_tokenizer(raw: bytes) -> Tokenizer:
    """A tokenizer.json, set to pad each batch to its longest text (the file may say otherwise).
    `tokenizers` is imported here, when a text model first loads: other models never pay for it."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as exc:  # tokenizers raises its own exception type for a bad file
        raise IntegrityError("the file is not a valid tokenizer.json", detail=f"tokenizer: {exc}") from exc
    pad = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]")  # noqa: S106 - a token
    return tokenizer


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # float32 [texts, dimensions]
    token_counts: list[int]  # word pieces the model read, special tokens included
    truncated: list[bool]  # whether a text was longer than the model reads
    inference_ms: float


def check_texts(texts: list[str]) -> None:
    """The limits a caller can exceed, as 400s."""
    if not texts:
        raise BadInputError("texts must hold at least one text")
    if len(texts) > MAX_TEXTS:
        raise BadInputError(f"at most {MAX_TEXTS} texts per request, got {len(texts)}")
    longest = max(len(t) for t in texts)
    if longest > MAX_TEXT_CHARACTERS:
        raise BadInputError(f"each text may have at most {MAX_TEXT_CHARACTERS} characters, one has {longest}")


def embed(model: OnnxModel, tokenizer: Tokenizer, texts: list[str], max_tokens: int) -> Embeddings:
    """Unit-length embeddings of `texts`, padded to the longest and truncated at `max_tokens`."""
    check_texts(texts)
    if (tokenizer.truncation or {}).get("max_length") != max_tokens:
        tokenizer.enable_truncation(max_length=max_tokens)
    encodings = tokenizer.encode_batch(texts)
    ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
    started = time.perf_counter()
    (vectors,) = model.session.run(None, {"input_ids": ids, "attention_mask": mask})[:1]
    inference_ms = (time.perf_counter() - started) * 1000
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or not np.isfinite(vectors).all():
        raise ModelOutputError(f"the text model returned embeddings of shape {vectors.shape}")
    counts = [int(m) for m in mask.sum(axis=1)]
    truncated = [bool(e.overflowing) for e in encodings]
    return Embeddings(vectors, counts, truncated, inference_ms)


class TextEncoder:
    """A text model as the v2 protocol sees it: one BYTES input `text` ([-1]), and the outputs
    `embedding` (FP32 [-1, dimensions]), `token_count` (INT64 [-1]) and `truncated` (BOOL [-1])."""

    def __init__(self, model: OnnxModel, tokenizer: Tokenizer, max_tokens: int) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens
        dimensions = model.outputs[0].shape[-1] if model.outputs and model.outputs[0].shape else -1
        self.inputs = (TensorSpec("text", "BYTES", "tensor(string)", (-1,)),)
        self.outputs = (
            TensorSpec("embedding", "FP32", "tensor(float)", (-1, dimensions)),
            TensorSpec("token_count", "INT64", "tensor(int64)", (-1,)),
            TensorSpec("truncated", "BOOL", "tensor(bool)", (-1,)),
        )

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        texts = [str(t) for t in feeds["text"].reshape(-1)]
        result = embed(self._model, self._tokenizer, texts, self._max_tokens)
        answers = {
            "embedding": result.vectors,
            "token_count": np.asarray(result.token_counts, dtype=np.int64),
            "truncated": np.asarray(result.truncated, dtype=np.bool_),
        }
        return [answers[name] for name in names]
