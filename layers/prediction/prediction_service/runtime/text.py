"""A text model as a runtime: a `tokenizers` tokenizer in front of an ONNX sentence encoder.

The encoder takes `input_ids` and `attention_mask` (INT64, [batch, tokens]) and answers
unit-length embeddings ([batch, dimensions]), as models/build_text_model.py builds
all-MiniLM-L6-v2. As a runtime it takes one BYTES input `text` ([-1]) and answers
`embedding` (FP32 [-1, dimensions]), `token_count` (INT64 [-1]) and `truncated` (BOOL [-1]).
Texts longer than the model's limit are truncated, and `truncated` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from prediction_service.errors import BadInputError, IntegrityError, ModelOutputError
from prediction_service.runtime.base import Feeds, Runtime, TensorSpec
from prediction_service.runtime.onnx import OnnxModel
from prediction_service.limits import MAX_TEXT_CHARACTERS, MAX_TEXTS, TEXT_BATCH_TOKENS

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TEXT = "text"
EMBEDDING, TOKEN_COUNT, TRUNCATED = "embedding", "token_count", "truncated"
COSINE_AGREEMENT = 0.99  # a shadow's embedding agrees with the live one at this cosine or more


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


def check_texts(texts: Sequence[str]) -> None:
    """The limits a caller can exceed, as 400s."""
    if not texts:
        raise BadInputError("texts must hold at least one text")
    if len(texts) > MAX_TEXTS:
        raise BadInputError(f"at most {MAX_TEXTS} texts per request, got {len(texts)}")
    longest = max(len(t) for t in texts)
    if longest > MAX_TEXT_CHARACTERS:
        raise BadInputError(f"each text may have at most {MAX_TEXT_CHARACTERS} characters, one has {longest}")
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate (\ud800-\udfff) has no UTF-8 form
            raise BadInputError(f"text {index} is not valid Unicode: it holds a lone surrogate at character "
                                f"{exc.start}; send UTF-8 text") from exc


def sub_batches(lengths: np.ndarray, tokens: int) -> list[np.ndarray]:
    """Row indices in groups of similar length, each group padded to its longest taking at most
    `tokens` (a row longer than that goes alone): sorted by length, so padding stays small."""
    order = np.argsort(lengths, kind="stable")
    groups: list[np.ndarray] = []
    start = 0
    for end in range(1, len(order) + 1):
        if end == len(order) or (end + 1 - start) * int(lengths[order[end]]) > tokens:
            groups.append(order[start:end])
            start = end
    return groups


class TextEncoder(Runtime):
    def __init__(self, model: OnnxModel, tokenizer: Tokenizer, max_tokens: int) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens
        dimensions = model.outputs[0].shape[-1] if model.outputs and model.outputs[0].shape else -1
        self.inputs = (TensorSpec(TEXT, "BYTES", "tensor(string)", (-1,)),)
        self.outputs = (
            TensorSpec(EMBEDDING, "FP32", "tensor(float)", (-1, dimensions)),
            TensorSpec(TOKEN_COUNT, "INT64", "tensor(int64)", (-1,)),
            TensorSpec(TRUNCATED, "BOOL", "tensor(bool)", (-1,)),
        )

    def run(self, output_names: Sequence[str], feeds: Feeds) -> list[np.ndarray]:
        texts = [str(t) for t in feeds[TEXT].reshape(-1)]
        check_texts(texts)
        tokenizer = self._tokenizer
        if (tokenizer.truncation or {}).get("max_length") != self._max_tokens:
            tokenizer.enable_truncation(max_length=self._max_tokens)
        encodings = tokenizer.encode_batch(texts)  # padded to the longest, at the right
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        counts = mask.sum(axis=1)
        parts = []
        for rows in sub_batches(counts, TEXT_BATCH_TOKENS):  # each padded to its own longest text
            width = int(counts[rows].max())
            (part,) = self._model.run([self._model.outputs[0].name],
                                      {"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width]},
                                      shrink_arena=True)
            part = np.asarray(part, dtype=np.float32)
            if part.ndim != 2 or part.shape[0] != len(rows) or not np.isfinite(part).all():
                raise ModelOutputError(f"the text model returned embeddings of shape {part.shape}")
            parts.append((rows, part))
        vectors = np.empty((len(texts), parts[0][1].shape[1]), dtype=np.float32)
        for rows, part in parts:
            vectors[rows] = part
        answers = {
            EMBEDDING: vectors,
            TOKEN_COUNT: counts.astype(np.int64),
            TRUNCATED: np.asarray([bool(e.overflowing) for e in encodings], dtype=np.bool_),
        }
        return [answers[name] for name in output_names]

    def agrees(self, output_name: str, live: np.ndarray, shadow: np.ndarray) -> bool:
        """Embeddings agree at a cosine of COSINE_AGREEMENT or more (they are unit vectors)."""
        if output_name != EMBEDDING:
            return super().agrees(output_name, live, shadow)
        return bool(live.shape == shadow.shape and (np.sum(live * shadow, axis=1) >= COSINE_AGREEMENT).all())
