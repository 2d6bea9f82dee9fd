"""The clients embedding users already have, against `make run`'s server over HTTP: the openai
client (both encodings, its own default of base64 included), LangChain's OpenAIEmbeddings and
LlamaIndex's OpenAILikeEmbedding. Each must give the /v1 text route's vectors within float32
rounding, and the openai client must raise its own exception classes for our refusals."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
from support import LocalServer

pytestmark = pytest.mark.server

INT8, FP32 = "all-minilm-l6-v2", "all-minilm-l6-v2-fp32"
TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome.",
         "Ein Mann isst ein Brot.", "naïve café ☕ — 東京"]
FLOAT32_ROUNDING = 1e-6


@pytest.fixture(scope="module")
def client(local_server: LocalServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{local_server.url}/openai/v1", api_key=local_server.token, max_retries=0,
                       timeout=120) as client:
        yield client


@pytest.fixture
def pydantic_v1() -> None:
    """LangChain imports pydantic.v1. The function apps that other tests load in this process mark
    it absent (web/app.py: it spares their cold start an import no route needs); the clients run
    in the caller's own process, where it is there."""
    if "pydantic.v1" in sys.modules and sys.modules["pydantic.v1"] is None:
        del sys.modules["pydantic.v1"]


def v1_vectors(server: LocalServer, model: str, texts: list[str]) -> np.ndarray:
    response = httpx.post(f"{server.url}/v1/models/{model}/predict", json={"texts": texts}, headers=server.auth,
                          timeout=120)
    assert response.status_code == 200, response.text
    return np.asarray(response.json()["embeddings"], dtype=np.float32)


@pytest.mark.parametrize("model", [INT8, FP32])
@pytest.mark.parametrize("encoding", [None, "float", "base64"])
def test_the_openai_client_gets_the_v1_vectors(local_server: LocalServer, client: openai.OpenAI, model: str,
                                               encoding: str | None) -> None:
    """None: the client's default, which asks for base64 and decodes it itself."""
    extra = {} if encoding is None else {"encoding_format": encoding}
    answer = client.embeddings.create(model=model, input=TEXTS, **extra)
    assert answer.model == model and answer.object == "list"
    assert [d.index for d in answer.data] == list(range(len(TEXTS)))
    if encoding == "base64":  # asked for explicitly, the client hands the base64 text back as it came
        vectors = np.stack([np.frombuffer(__import__("base64").b64decode(d.embedding), dtype="<f4")
                            for d in answer.data])
    else:
        vectors = np.asarray([d.embedding for d in answer.data], dtype=np.float32)
    np.testing.assert_allclose(vectors, v1_vectors(local_server, model, TEXTS), rtol=0, atol=FLOAT32_ROUNDING)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > len(TEXTS)


def test_the_openai_client_lists_and_retrieves_the_text_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [INT8, FP32]
    assert client.models.retrieve(FP32).id == FP32


def test_the_openai_client_raises_its_own_errors_for_our_refusals(local_server: LocalServer,
                                                                  client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="user_churn", input="x")
    assert raised.value.code == "model_not_supported" and "classifier" in raised.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no_such_model", input="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as long:
        client.embeddings.create(model=INT8, input=["short", "word " * 400])
    assert long.value.code == "context_length_exceeded" and long.value.param == "input[1]"
    with pytest.raises(openai.APIStatusError) as many:
        client.embeddings.create(model=INT8, input=["x"] * 65)
    assert many.value.status_code == 413 and many.value.code == "too_many_inputs"
    with openai.OpenAI(base_url=f"{local_server.url}/openai/v1", api_key="wrong-token-0123456789",
                       max_retries=0) as stranger, pytest.raises(openai.AuthenticationError):
        stranger.embeddings.create(model=INT8, input="x")


def test_langchain_openai_embeddings_get_the_v1_vectors(local_server: LocalServer, pydantic_v1: None) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(model=INT8, base_url=f"{local_server.url}/openai/v1", api_key=local_server.token,
                                  check_embedding_ctx_length=False, chunk_size=64, max_retries=0)
    expected = v1_vectors(local_server, INT8, TEXTS)
    documents = np.asarray(embeddings.embed_documents(TEXTS), dtype=np.float32)
    np.testing.assert_allclose(documents, expected, rtol=0, atol=FLOAT32_ROUNDING)
    query = np.asarray(embeddings.embed_query(TEXTS[0]), dtype=np.float32)
    alone = v1_vectors(local_server, INT8, TEXTS[:1])[0]  # INT8 quantizes each batch with its own scale
    np.testing.assert_allclose(query, alone, rtol=0, atol=FLOAT32_ROUNDING)


def test_llamaindex_openai_like_embedding_gets_the_v1_vectors(local_server: LocalServer, pydantic_v1: None) -> None:
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    embedding = OpenAILikeEmbedding(model_name=FP32, api_base=f"{local_server.url}/openai/v1",
                                    api_key=local_server.token, embed_batch_size=64, max_retries=0)
    expected = v1_vectors(local_server, FP32, TEXTS)
    batch = np.asarray(embedding.get_text_embedding_batch(TEXTS), dtype=np.float32)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=FLOAT32_ROUNDING)
    query = np.asarray(embedding.get_query_embedding(TEXTS[1]), dtype=np.float32)
    np.testing.assert_allclose(query, v1_vectors(local_server, FP32, TEXTS[1:2])[0], rtol=0, atol=FLOAT32_ROUNDING)


def test_an_unknown_openai_route_answers_in_openais_shape(local_server: LocalServer) -> None:
    response = httpx.post(f"{local_server.url}/openai/v1/chat/completions", json={}, headers=local_server.auth)
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_base_url_without_openai_gets_a_404_that_says_where_the_api_is(local_server: LocalServer) -> None:
    with openai.OpenAI(base_url=f"{local_server.url}/v1", api_key=local_server.token, max_retries=0) as lost, \
            pytest.raises(openai.NotFoundError) as raised:
        lost.embeddings.create(model=INT8, input="x")
    assert "/openai/v1" in raised.value.response.text
