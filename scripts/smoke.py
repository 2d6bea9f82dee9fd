"""Smoke-test a running API: the seed documents' requests and the Open Inference Protocol (v2).

    python scripts/smoke.py --url URL --token TOKEN [--record] [--sam-local]
    make smoke URL=http://127.0.0.1:3000 TOKEN=$(cat .local/api-token)

URL is any base URL the API answers on: `make run` (http://127.0.0.1:3000), a `sam local
start-api` port, or a deployed https://<id>.execute-api.<region>.amazonaws.com, with its stage
path if the stage is named (https://<id>.execute-api.<region>.amazonaws.com/prod).

One line per check, PASS or FAIL; the exit code is 0 only if every check passed. The token is
sent in the Authorization header and never printed (nor any text that contains it).

The playground run is the document's request as written, except `"record": false` by default,
so that smoke-testing a deployment leaves no record in its bucket; `--record` sends the
document's `"record": true` and writes one.

The v2 checks use NVIDIA's own client, tritonclient, as an independent judge: live and ready
(no token), server and model metadata, and inference for user_churn (FP32 in, INT64 and FP32
out, compared with /v1's answer) and digits (UINT8 and FP32 in, BYTES and FP32 out, on
held-out images) in JSON and with the binary tensor extension.

The OpenAI-compatible embeddings route is checked with the `openai` client itself, in its
default encoding (base64), against the /v1 text route's vectors for the same texts.

`--sam-local`: the target is `sam local start-api`, whose emulator passes an HTTP API's request
body to the function as UTF-8 text, never base64-encoded as API Gateway does, and answers 502
for a body that is not UTF-8 (aws-sam-cli issues 3110 and 7927). The binary checks then send
their inputs as JSON and still take every output as raw bytes (base64 in the function's answer,
which the emulator decodes as API Gateway does).
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

DIGITS_HOLDOUT = ROOT / "models" / "data" / "digits_holdout.csv"
CHURN_ROWS = [[1.5, 30, 2, 4], [9.0, 1, 48, 0], [0.5, 60, 3, 7]]
TIMEOUT = 60.0


class CheckFailed(Exception):
    """A check's answer was not what it should be."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class Smoke:
    def __init__(self, url: str, token: str, record: bool, timeout: float = TIMEOUT, debug: bool = False,
                 binary_requests: bool = True) -> None:
        import httpx

        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SystemExit(f"--url must be http://host[:port][/stage] or https://..., not {url!r}")
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        # tritonclient takes host[:port][/path] without the scheme, and ssl=True for https;
        # a path (an API Gateway stage) goes in front of every route it calls.
        self.triton_url = f"{parts.netloc}{parts.path.rstrip('/')}"
        self.ssl = parts.scheme == "https"
        self.token = token
        self.auth = {"Authorization": f"Bearer {token}"}
        self.record = record
        self.timeout = timeout
        self.debug = debug
        self.binary_requests = binary_requests
        self.http = httpx.Client(base_url=self.base, timeout=timeout)
        self.results: list[bool] = []
        self._triton: Any = None

    # -- reporting ---------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return text.replace(self.token, "<token>") if self.token else text

    def check(self, name: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = fn()
            ok = True
        except CheckFailed as exc:
            ok, detail = False, str(exc)
        except Exception as exc:  # noqa: BLE001 - every failure is a FAIL line, never a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
            if self.debug:
                detail += "\n" + traceback.format_exc()
        ms = (time.perf_counter() - started) * 1000
        self.results.append(ok)
        print(self.redact(f"{'PASS' if ok else 'FAIL'}  {name:58} {ms:7.0f} ms  {detail}"), flush=True)

    # -- HTTP helpers ------------------------------------------------------------------------

    def get_json(self, path: str) -> Any:
        response = self.http.get(path, headers=self.auth)
        expect(response.status_code == 200, f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def post_json(self, path: str, body: Any) -> Any:
        response = self.http.post(path, json=body, headers=self.auth)
        expect(response.status_code == 200, f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    @property
    def triton(self) -> Any:
        if self._triton is None:
            import tritonclient.http as httpclient

            self._triton = httpclient.InferenceServerClient(
                self.triton_url, ssl=self.ssl, connection_timeout=self.timeout, network_timeout=self.timeout
            )
        return self._triton

    def headers(self) -> dict[str, str]:
        return dict(self.auth)  # tritonclient adds to the dict it is given: a fresh one per call

    # -- the seed documents' requests ---------------------------------------------------------

    def forecast(self) -> str:
        body = self.get_json("/v1/models/drive_stats_a/predict")
        expect(body.get("status") == "Success", f"status {body.get('status')!r}")
        expect(len(body.get("prediction", [])) == 3, f"prediction {body.get('prediction')!r}")
        return f"forecast {[round(v, 3) for v in body['prediction']]}"

    def batch(self) -> str:
        body = self.post_json("/v1/predict", {"predictions": [{"model_name": "drive_stats_a"},
                                                              {"model_name": "drive_stats_b"}]})
        items = body.get("predictions", [])
        names = [p.get("model_name") for p in items]
        expect(names == ["drive_stats_a", "drive_stats_b"], f"models {names}")
        statuses = [p.get("status") for p in items]
        expect(statuses == ["Success", "Success"], f"statuses {statuses}")
        return "both items Success"

    def playground_run(self) -> str:
        from generate_events import PLAYGROUND_RUN

        run = copy.deepcopy(PLAYGROUND_RUN)
        run["run"]["record"] = self.record
        body = self.post_json("/api/runs", run)
        (rows,) = body["run"]["output"]
        expect(len(rows) == 3, f"{len(rows)} rows for 3 user ids")
        expect(all(abs(sum(row) - 1) < 1e-4 for row in rows), f"probabilities do not sum to 1: {rows}")
        return "3 rows of class probabilities" + (" (a record written)" if self.record else "")

    # -- the Open Inference Protocol (v2), through tritonclient -------------------------------

    def live(self) -> str:
        expect(self.triton.is_server_live(), "is_server_live() is False")
        return "live, without a token"

    def ready(self) -> str:
        expect(self.triton.is_server_ready(), "is_server_ready() is False")
        return "ready, without a token"

    def server_metadata(self) -> str:
        metadata = self.triton.get_server_metadata(headers=self.headers())
        expect("binary_tensor_data" in metadata.get("extensions", []), f"extensions {metadata.get('extensions')}")
        return f"{metadata['name']} {metadata['version']}, extensions {metadata['extensions']}"

    def model_metadata(self, name: str, inputs: dict[str, str]) -> Callable[[], str]:
        def run() -> str:
            metadata = self.triton.get_model_metadata(name, headers=self.headers())
            got = {i["name"]: i["datatype"] for i in metadata["inputs"]}
            expect(got == inputs, f"inputs {got}, expected {inputs}")
            expect(self.triton.is_model_ready(name, headers=self.headers()), "is_model_ready() is False")
            outputs = ", ".join(f"{o['name']} {o['datatype']}" for o in metadata["outputs"])
            return f"ready; in: {', '.join(f'{k} {v}' for k, v in got.items())}; out: {outputs}"

        return run

    def churn(self, binary: bool) -> Callable[[], str]:
        def run() -> str:
            import numpy as np
            import tritonclient.http as httpclient

            rows = np.asarray(CHURN_ROWS, dtype=np.float32)
            x = httpclient.InferInput("X", list(rows.shape), "FP32")
            x.set_data_from_numpy(rows, binary_data=binary and self.binary_requests)
            outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
            result = self.triton.infer("user_churn", [x], outputs=outputs, request_id="smoke-churn",
                                       headers=self.headers())
            expect(result.get_response().get("id") == "smoke-churn", "the request id is not echoed")
            labels, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
            v1 = self.post_json("/v1/models/user_churn/predict", {"inputs": CHURN_ROWS, "probability": True})
            expect(labels.tolist() == v1["prediction"], f"labels {labels.tolist()} != /v1's {v1['prediction']}")
            expect(np.allclose(probabilities, v1["probabilities"], rtol=1e-5, atol=1e-7),
                   f"probabilities {probabilities.tolist()} != /v1's {v1['probabilities']}")
            return f"labels {labels.tolist()} (INT64), probabilities FP32 {list(probabilities.shape)}, same as /v1"

        return run

    def digits(self, binary: bool) -> Callable[[], str]:
        def run() -> str:
            import numpy as np
            import tritonclient.http as httpclient

            pixels, names = digits_holdout()
            images = httpclient.InferInput("pixels", list(pixels.shape), "UINT8")
            images.set_data_from_numpy(pixels, binary_data=binary and self.binary_requests)
            confidence = httpclient.InferInput("min_confidence", [len(pixels)], "FP32")
            confidence.set_data_from_numpy(np.zeros(len(pixels), dtype=np.float32),
                                           binary_data=binary and self.binary_requests)
            outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
            result = self.triton.infer("digits", [images, confidence], outputs=outputs, headers=self.headers())
            labels = [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("label")]
            probabilities = result.as_numpy("probabilities")
            expect(probabilities.shape == (len(pixels), 10), f"probabilities shape {probabilities.shape}")
            accuracy = float(np.mean(np.asarray(labels) == names))
            expect(accuracy >= 0.9, f"accuracy {accuracy:.2f} on {len(names)} held-out images, below 0.9")
            return f"{len(names)} held-out images, accuracy {accuracy:.2f} (BYTES labels, FP32 probabilities)"

        return run

    # -- OpenAI's embeddings API, through the openai client -----------------------------------

    def openai_embeddings(self) -> str:
        import openai

        texts = ["A man is eating food.", "A man is eating a piece of bread."]
        v1 = self.post_json("/v1/models/all-minilm-l6-v2/predict", {"texts": texts})["embeddings"]
        with openai.OpenAI(base_url=f"{self.base}/openai/v1", api_key=self.token, max_retries=0,
                           timeout=self.timeout) as client:
            answer = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
        vectors = [item.embedding for item in answer.data]
        expect(len(vectors) == 2 and all(len(v) == 384 for v in vectors), "not two embeddings of 384 floats")
        worst = max(abs(a - b) for got, want in zip(vectors, v1, strict=True) for a, b in zip(got, want, strict=True))
        expect(worst <= 1e-6, f"differs from /v1 by up to {worst:.2g}")
        return f"2 embeddings of 384 floats (base64), same as /v1; {answer.usage.prompt_tokens} tokens"

    def run_all(self) -> bool:
        record = "" if self.record else " (record: false)"
        self.check("GET  /v1/models/drive_stats_a/predict", self.forecast)
        self.check("POST /v1/predict  drive_stats_a + drive_stats_b", self.batch)
        self.check(f"POST /api/runs  playground document{record}", self.playground_run)
        self.check("v2 GET /v2/health/live", self.live)
        self.check("v2 GET /v2/health/ready", self.ready)
        self.check("v2 GET /v2  server metadata", self.server_metadata)
        self.check("v2 user_churn metadata + ready", self.model_metadata("user_churn", {"X": "FP32"}))
        self.check("v2 digits metadata + ready",
                   self.model_metadata("digits", {"pixels": "UINT8", "min_confidence": "FP32"}))
        for binary in (False, True):
            mode = ("binary" if self.binary_requests else "JSON in, binary out") if binary else "JSON"
            self.check(f"v2 POST user_churn/infer  {mode}", self.churn(binary))
            self.check(f"v2 POST digits/infer  {mode}", self.digits(binary))
        self.check("openai POST /openai/v1/embeddings  all-minilm-l6-v2", self.openai_embeddings)
        passed = sum(self.results)
        print(f"{passed}/{len(self.results)} checks passed against {self.base}", flush=True)
        return passed == len(self.results)

    def close(self) -> None:
        self.http.close()
        if self._triton is not None:
            self._triton.close()


def digits_holdout() -> tuple[Any, Any]:
    """The held-out digit images (uint8 [n, 8, 8]) and their names, from models/data."""
    import numpy as np

    lines = [line for line in DIGITS_HOLDOUT.read_text().splitlines() if not line.startswith("#")]
    rows = list(csv.reader(lines))[1:]
    pixels = np.array([[int(v) for v in row[1:]] for row in rows], dtype=np.uint8).reshape(-1, 8, 8)
    return pixels, np.array([row[0] for row in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:3000 or https://<id>.execute-"
                        "api.<region>.amazonaws.com[/stage]")
    parser.add_argument("--token", required=True, help="a bearer token the API accepts (never printed)")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=False,
                        help="send the playground run with \"record\": true as the document writes it, which "
                        "writes a record to the bucket (default: --no-record)")
    parser.add_argument("--sam-local", action="store_true",
                        help="the URL is sam local start-api: send the binary checks' inputs as JSON (its emulator "
                        "cannot pass binary request bodies), still taking binary answers")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per request (default 60)")
    parser.add_argument("--debug", action="store_true", help="print a traceback under each failed check")
    args = parser.parse_args(argv)
    if not args.url.strip() or not args.token.strip():
        parser.error("--url and --token must not be empty")
    smoke = Smoke(args.url, args.token.strip(), args.record, args.timeout, args.debug,
                  binary_requests=not args.sam_local)
    print(f"smoke test of {smoke.base}", flush=True)
    try:
        ok = smoke.run_all()
    finally:
        smoke.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
