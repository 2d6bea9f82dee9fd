"""OpenAI's embeddings route against the /v1 text route, on the same texts, side by side.

(a) Warm path: `POST /openai/v1/embeddings` (embeddings function; float, and base64) against
    `POST /v1/models/all-minilm-l6-v2/predict {"texts": [...]}` (models function) for 1, 8 and
    32 sentences, through each function's real handler (API Gateway event in, Powertools,
    Mangum, FastAPI, cache hit, tokenizer and model, answer out). The three take turns, round
    after round, so drift on the machine falls on all alike; the vectors are checked equal
    first. Target: the OpenAI route (float) takes <= 1.05x the /v1 route.
(b) Bytes: the answer's body for 32 texts as float JSON and as base64, and how many embeddings
    of this model one answer can carry within Lambda's 6 MB payload limit in each encoding.

    python bench/openai_embeddings.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
from typing import Any

import numpy as np
from harness import HEADER, interleaved, start_s3
from text_model import SENTENCES

MODEL = "all-minilm-l6-v2"  # INT8, the default text model
SIZES = {1: 200, 8: 60, 32: 20}  # texts per request -> calls per path per round
TARGET = 1.05


def events(texts: list[str]) -> dict[str, dict[str, Any]]:
    from support import http_event

    def openai(encoding: str) -> dict[str, Any]:
        body = {"model": MODEL, "input": texts, "encoding_format": encoding}
        return http_event("POST", "/openai/v1/embeddings", json.dumps(body))

    return {"v1": http_event("POST", f"/v1/models/{MODEL}/predict", json.dumps({"texts": texts})),
            "openai float": openai("float"), "openai base64": openai("base64")}


def vectors(name: str, body: dict[str, Any]) -> np.ndarray:
    if name == "v1":
        return np.asarray(body["embeddings"], dtype=np.float32)
    rows = [d["embedding"] for d in body["data"]]
    if isinstance(rows[0], str):
        return np.stack([np.frombuffer(base64.b64decode(r), dtype="<f4") for r in rows])
    return np.asarray(rows, dtype=np.float32)


def warm_path(handlers: dict[str, Any], context: Any, rounds: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    print("(a) Warm path, all-minilm-l6-v2 (INT8), the same sentences (handler: event in -> answer out)")
    print(HEADER)
    for size, calls in SIZES.items():
        texts = SENTENCES[:size]
        by_path = events(texts)
        answers = {}
        for name, event in by_path.items():
            result = handlers[name](event, context)
            assert result["statusCode"] == 200, result["body"]
            answers[name] = vectors(name, json.loads(result["body"]))
        for name in ("openai float", "openai base64"):
            np.testing.assert_allclose(answers[name], answers["v1"], rtol=0, atol=1e-6)
        timings = interleaved({f"{name}, {size} text{'s' if size > 1 else ''}":
                               (lambda h=handlers[name], e=event: h(e, context)) for name, event in by_path.items()},
                              rounds, calls, warmup=5)
        for timing in timings.values():
            print(timing.row())
        v1, floats, b64 = timings.values()
        figures[f"float_over_v1_{size}"] = floats.median_us / v1.median_us
        figures[f"base64_over_v1_{size}"] = b64.median_us / v1.median_us
        figures[f"v1_ms_{size}"] = v1.median_us / 1e3
    print()
    for size in SIZES:
        ratio = figures[f"float_over_v1_{size}"]
        print(f"{size:>2} texts: OpenAI float / v1 {ratio:.3f}x, base64 / v1 {figures[f'base64_over_v1_{size}']:.3f}x "
              f"median (target <= {TARGET:.2f}x: {'met' if ratio <= TARGET else 'missed'})")
    return figures


def answer_bytes(handlers: dict[str, Any], context: Any) -> dict[str, float]:
    from prediction_service.limits import MAX_JSON_ANSWER_BYTES

    by_path = events(SENTENCES[:32])
    sizes = {name: len(handlers[name](by_path[name], context)["body"].encode()) for name in by_path}
    print("\n(b) The answer's body for 32 texts, and what one answer can carry within Lambda's 6 MB")
    for name, size in sizes.items():
        print(f"  {name:14} {size:>9,} B  {size / 32:>7,.0f} B an embedding  "
              f"-> at most {int(MAX_JSON_ANSWER_BYTES // (size / 32)):>5,} embeddings an answer")
    ratio = sizes["openai float"] / sizes["openai base64"]
    print(f"  float JSON / base64: {ratio:.2f}x the bytes (base64 carries {ratio:.1f}x more embeddings an answer)")
    return {"float_bytes_32": sizes["openai float"], "base64_bytes_32": sizes["openai base64"],
            "v1_bytes_32": sizes["v1"], "float_over_base64_bytes": ratio}


def main(rounds: int = 3) -> dict[str, float]:
    os.environ["MODEL_CACHE_DIR"] = tempfile.mkdtemp()
    from local_api import text_models

    server, _ = start_s3(text_models=text_models())
    try:
        from support import lambda_context, load_function

        models, embeddings = load_function("models"), load_function("embeddings")
        handlers = {"v1": models.handler, "openai float": embeddings.handler, "openai base64": embeddings.handler}
        context = lambda_context()
        figures = warm_path(handlers, context, rounds)
        figures |= answer_bytes(handlers, context)
    finally:
        server.stop()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args().rounds)
