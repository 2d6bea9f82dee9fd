"""OpenAI's embeddings API over the data plane: the text models, listed and run.

The codec turns a request into the text runtime's one input (`text`, BYTES) and its answer
(`embedding`, `token_count`, `truncated`) into OpenAI's list. Nothing here is known to the data
plane or the runtimes: the limits a text request has there (texts per request, characters per
text) hold here too, and are checked first so that the refusal names OpenAI's fields.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import pydantic_core

from prediction_service.catalog.manifest import Manifest, ModelSpec, TextEntry
from prediction_service.dataplane.dataplane import DataPlane
from prediction_service.dataplane.types import Answer, Inference, InferRequest, Inputs, Served
from prediction_service.errors import BadInputError, ModelNotFoundError, PayloadTooLargeError
from prediction_service.limits import MAX_TEXT_CHARACTERS, MAX_TEXTS
from prediction_service.protocols.openai.schemas import EmbeddingRequest, OpenAIModel, OpenAIModelList
from prediction_service.runtime import text

OWNER = "onnx-prediction-api"
LISTING = "GET /openai/v1/models"


@dataclass(frozen=True)
class Embedded:
    """An embeddings answer: the JSON body, and the inputs that were cut to the model's length."""

    json: bytes
    truncated: list[int]


class EmbeddingsService:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self.registry = dataplane.registry

    def list_models(self) -> OpenAIModelList:
        """The text models, one entry per name (other kinds make no embeddings)."""
        manifest = self.registry.manifest()
        names = [name for name in manifest.names() if isinstance(manifest.get(name), TextEntry)]
        return OpenAIModelList(data=[OpenAIModel(id=name, created=0, owned_by=OWNER) for name in names])

    def retrieve_model(self, model_id: str) -> OpenAIModel:
        _text_entry(self.registry.manifest(), *split_model_id(model_id))
        return OpenAIModel(id=model_id, created=0, owned_by=OWNER)

    def embed(self, body: EmbeddingRequest, routing_key: str | None = None,
              started: float | None = None) -> Answer[Embedded]:
        """The request's texts, embedded by the version its model (and version, and `user` or
        `routing_key`) routes to, in one call of the data plane."""
        name, version = split_model_id(body.model)
        _text_entry(self.registry.manifest(), name, version)  # before any model loads
        check_inputs(body.texts)
        request = InferRequest(name, lambda served: decode(body, served), version=version,
                               routing_key=body.user or routing_key,
                               **({"started": started} if started is not None else {}))
        return self.dataplane.serve(request, lambda result: encode(body, result))


def split_model_id(model_id: str) -> tuple[str, str | None]:
    """`name` or `name:version` (a version or an alias)."""
    name, _, version = model_id.partition(":")
    return name, version or None


def _text_entry(manifest: Manifest, name: str, version: str | None) -> TextEntry:
    try:
        entry: ModelSpec = manifest.get(name, version)
    except ModelNotFoundError:
        raise ModelNotFoundError(name, listing=LISTING) from None
    if not isinstance(entry, TextEntry):
        raise BadInputError(f"model {name!r} is {_a(entry.kind)} model, which makes no embeddings; {LISTING} lists "
                            "the text models", model_name=name, param="model", code="model_not_supported")
    return entry


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def check_inputs(texts: list[str]) -> None:
    """What the text runtime would refuse, refused first in OpenAI's terms."""
    if len(texts) > MAX_TEXTS:
        raise PayloadTooLargeError(
            f"input holds {len(texts)} texts; one request here embeds at most {MAX_TEXTS}, so that it finishes within "
            f"API Gateway's 29 s: send them in several (LangChain: chunk_size={MAX_TEXTS}; LlamaIndex: "
            f"embed_batch_size={MAX_TEXTS})", param="input", code="too_many_inputs")
    for index, value in enumerate(texts):
        if len(value) > MAX_TEXT_CHARACTERS:
            raise BadInputError(f"input[{index}] has {len(value)} characters; each text may have at most "
                                f"{MAX_TEXT_CHARACTERS}", param=f"input[{index}]", code="context_length_exceeded")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate (\ud800-\udfff) has no UTF-8 form
            raise BadInputError(f"input[{index}] is not valid Unicode: it holds a lone surrogate at character "
                                f"{exc.start}", param=f"input[{index}]") from exc


def decode(body: EmbeddingRequest, served: Served) -> Inputs:
    """The texts as the text runtime's input, once the version that answers is known (its size
    decides whether `dimensions` can be served)."""
    entry = served.entry
    if not isinstance(entry, TextEntry):  # the manifest changed between the check and the route
        raise BadInputError(f"model {entry.name!r} is {_a(entry.kind)} model, which makes no embeddings",
                            param="model", code="model_not_supported")
    if body.dimensions is not None:
        size = embedding_size(served)
        if body.dimensions != size and body.dimensions not in entry.matryoshka_dimensions:
            shorter = (f"or one of {', '.join(map(str, entry.matryoshka_dimensions))}"
                       if entry.matryoshka_dimensions else "and cannot be shortened (its manifest entry lists no "
                       "matryoshka_dimensions)")
            raise BadInputError(f"model {entry.name!r} makes embeddings of {size} dimensions {shorter}; "
                                f"dimensions {body.dimensions} cannot be served", param="dimensions",
                                code="invalid_value")
    return Inputs({text.TEXT: np.asarray(body.texts, dtype=object)},
                  [text.EMBEDDING, text.TOKEN_COUNT, text.TRUNCATED], compare=[text.EMBEDDING])


def embedding_size(served: Served) -> int:
    spec = next(s for s in served.runtime.outputs if s.name == text.EMBEDDING)
    return int(spec.shape[-1])


def encode(body: EmbeddingRequest, result: Inference) -> Embedded:
    """OpenAI's list: an input the model had to cut is refused unless `truncate` was asked."""
    vectors, counts, truncated = (np.asarray(a) for a in result.arrays)
    entry = result.route.spec
    assert isinstance(entry, TextEntry)
    cut = [int(i) for i in np.flatnonzero(truncated)]
    if cut and not body.truncate:
        index = cut[0]
        raise BadInputError(
            f"input[{index}] has more than {int(counts[index])} tokens, the most model {entry.name!r} reads; "
            f"shorten it, or send \"truncate\": true to embed its first {entry.max_tokens} tokens",
            param=f"input[{index}]", code="context_length_exceeded")
    vectors = vectors.astype("<f4", copy=False)
    if body.dimensions is not None and body.dimensions < vectors.shape[1]:
        vectors = vectors[:, : body.dimensions]  # a Matryoshka model's prefix, normalised again
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        vectors = vectors.astype("<f4", copy=False)
    if body.encoding_format == "base64":
        data: list[object] = [base64.b64encode(row.tobytes()).decode("ascii") for row in vectors]
    else:
        data = vectors.tolist()
    tokens = int(counts.sum())
    answer = {"object": "list",
              "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
              "model": body.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return Embedded(pydantic_core.to_json(answer), cut)  # pydantic's serializer: 8x json.dumps' speed here
