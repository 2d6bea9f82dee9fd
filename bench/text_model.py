"""The text model (all-MiniLM-L6-v2, FP32 and INT8) against its floors, side by side in one run (issue 13).

1. Cold first embedding: a fresh Python process, from its first line to the answer of
   `POST /v1/models/<name>/predict {"texts": ["A man is eating food."]}` through the models
   function's handler, against a floor measured in the same run: (a) a fresh process's bare
   import of numpy, onnxruntime, fastapi, mangum, boto3 and tokenizers, (b) the download of the
   same objects (manifest, tokenizer.json, model) at the proxy's best parallel rate
   (`download_file` with the fastest of a few parallel TransferConfigs, the two small objects in
   threads beside it), (c) `InferenceSession` from the local file and (d) loading the tokenizer,
   tokenizing and one `session.run`, (c) and (d) in a fresh process too, with the library's
   SessionOptions. The floor's download runs in this process on a client made beforehand: it
   leaves out creating an S3 client (about 50 ms), which the function has to do. Runs alternate
   (ours FP32, floor FP32, ours INT8, floor INT8) for `--rounds` rounds; medians. Each round
   also runs ours with `PREFETCH_MODELS=<name>` (the model loading in a thread during the
   imports), for comparison; the target figure is the default (no prefetch). Then, in other
   processes, the first request's loads are called one at a time to show where the time goes.
   As bench/cold_start.py, each child measures itself with `time.perf_counter()` from its first
   line to its answer: interpreter start-up and teardown are left out on both sides (the
   parent's spawn-to-answer time of our child is printed beside it). tests/support.py imports
   httpx for its test servers only; the child puts an empty module in its place so that the
   figure neither pays for httpx nor profits from the modules it would have imported first.
2. Warm: requests of 1, 8 and 32 fixed sentences through the handler against `session.run` of
   the handler's own session on the same token ids (tokenized once, outside the timed call),
   in alternating blocks, in one fresh process; `harness.time_calls`, 200/100/50 requests.
   The same `session.run` is also timed inside the handler, to split the overhead.
3. Memory: in a fresh process per model, VmRSS after importing the function (base: no model
   loaded), after `GET /v1/models` (S3 client and manifest), VmHWM after the first embedding
   (the peak while loading) and VmRSS after 50 more requests (steady); beside it, onnxruntime
   alone doing the same in a fresh process. A recommended MemorySize and the cost per million
   embeddings follow.
4. Size: the layer (tokenizers included) + the largest function after `sam build`.

S3 is moto in its own process behind bench/model_loading.py's throttling proxy (about 90 MB/s
and 20 ms to first byte per connection): a simulation of S3, not a measurement of it. The proxy
drops its copy of an object on a HEAD and reads it from moto in full on the next GET, so the first
request of a download (ours: a GET whose body is left unread once it has told the size;
download_file's: a HEAD, then its first ranged GET) waits for one full read from moto (about 90 ms
for the FP32 model): both sides pay it.

    python bench/text_model.py [--rounds 5] [--profile]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness import ROOT
from local_s3 import MotoServer, create_bucket

BUCKET = "bench-text"
PREFIX = "models/"
MODELS = {"FP32": "all-minilm-l6-v2-fp32", "INT8": "all-minilm-l6-v2"}
FIRST_TEXT = "A man is eating food."
SENTENCES = [
    FIRST_TEXT, "A man is eating a piece of bread.", "The new movie is awesome.", "A woman is playing the violin.",
    "Two dogs are running through a field of tall grass.", "The stock market fell sharply on Tuesday morning.",
    "How do I reset my password?", "The train to Boston is delayed by twenty minutes.",
    "She finished the marathon in under four hours.", "Quantum computers use qubits instead of classical bits.",
    "Please send the invoice before the end of the month.", "The cat is sleeping on the warm windowsill.",
    "Our servers were down for maintenance last night.", "He ordered a large pizza with extra cheese.",
    "The museum is closed on public holidays.", "Heavy rain is expected across the region this weekend.",
    "Can you recommend a good book about history?", "The hard drive failed after three years of use.",
    "Children are building a sandcastle on the beach.", "The committee postponed the vote until next week.",
    "A guitarist is tuning his instrument before the concert.", "Customer churn increased in the last quarter.",
    "The recipe needs two cups of flour and one egg.", "Scientists discovered a new species of frog.",
    "The flight was cancelled because of the storm.", "I would like to book a table for two at eight.",
    "The battery drains quickly when the screen is bright.", "An old man is feeding pigeons in the park.",
    "The software update fixed several security issues.", "They watched the sunset from the top of the hill.",
    "The library offers free courses on programming.", "A chef is slicing vegetables in a busy kitchen.",
]
WARM_SIZES = {1: 200, 8: 100, 32: 50}  # sentences per request: timed requests (N)
WARM_BLOCKS = 5  # handler and raw take turns in this many blocks each
MEMORY_REQUESTS = 50
TARGET_COLD = 1.2
TARGET_OVERHEAD = 0.10
TARGET_PEAK, TARGET_STEADY = 2.0, 1.3  # x the model file, over the base
SIZE_TARGET = 150 * 1000 * 1000
MEMORY_HEADROOM = 1.25
GB_SECOND = 0.0000166667  # us-east-1, x86
LAMBDA_REQUESTS, HTTP_API_REQUESTS = 0.20, 1.00  # $ per million
LIBRARIES = ["numpy", "onnxruntime", "fastapi", "mangum", "boto3", "tokenizers"]
# (part size MB, parallel parts): boto3's default first; the fastest through the proxy is the floor.
TRANSFER_CONFIGS = [(8, 10), (4, 10), (8, 20), (16, 8), (4, 20)]
MB = 1024 * 1024

# -- children ----------------------------------------------------------------------------------

PREAMBLE = """
import time; t0 = time.perf_counter()
import json, sys, types
sys.modules.setdefault("httpx", types.ModuleType("httpx"))  # support imports it for its test servers only
sys.path[:0] = {paths!r}
from support import http_event, lambda_context, load_function
"""

COLD = PREAMBLE + """
function = load_function("models")
t1 = time.perf_counter()
result = function.handler(http_event("POST", "/v1/models/{name}/predict", {body!r}), lambda_context())
t2 = time.perf_counter()
answer = json.loads(result["body"])
assert result["statusCode"] == 200 and len(answer["embeddings"][0]) == 384, result
print("BENCH " + json.dumps({{"init": t1 - t0, "first request": t2 - t1, "total": t2 - t0}}), flush=True)
"""

PROFILED = PREAMBLE + """
import cProfile, pstats, io
profile = cProfile.Profile()
profile.enable()
function = load_function("models")
result = function.handler(http_event("POST", "/v1/models/{name}/predict", {body!r}), lambda_context())
profile.disable()
assert result["statusCode"] == 200, result
profile.dump_stats({out!r})
"""

BREAKDOWN = PREAMBLE + """
function = load_function("models")
t1 = time.perf_counter()
from prediction_service.composition import components
parts = components()  # what the first request builds first: settings, the S3 client, the cache
t2 = time.perf_counter()
spec = parts.registry.spec("{name}")  # GET the manifest, parse it
t3 = time.perf_counter()
# the model (a GET that sizes it, ranged GETs hashed on the way to /tmp, the session) and, beside it,
# tokenizer.json (a GET, sha256, Tokenizer)
parts.registry.load(spec, tables=False)
t4 = time.perf_counter()
result = function.handler(http_event("POST", "/v1/models/{name}/predict", {body!r}), lambda_context())
t6 = time.perf_counter()
assert result["statusCode"] == 200, result
print("BENCH " + json.dumps({{"import the function": t1 - t0, "S3 client and cache": t2 - t1,
                             "manifest GET + parse": t3 - t2,
                             "model and tokenizer side by side: download + sha256, session, parse": t4 - t3,
                             "the request, all loaded": t6 - t4}}),
      flush=True)
"""

IMPORT = """
import time; t0 = time.perf_counter()
import {modules}
print("BENCH " + repr(time.perf_counter() - t0), flush=True)
"""

SESSION_AND_RUN = """
import json, time
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
t0 = time.perf_counter()
options = ort.SessionOptions()  # the library's options: one thread each, warnings off
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.log_severity_level = 3
session = ort.InferenceSession({model!r}, sess_options=options, providers=["CPUExecutionProvider"])
t1 = time.perf_counter()
tokenizer = Tokenizer.from_file({tokenizer!r})
tokenizer.enable_truncation(max_length=256)
tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
t2 = time.perf_counter()
(encoding,) = tokenizer.encode_batch([{text!r}])
ids = np.asarray([encoding.ids], dtype=np.int64)
mask = np.asarray([encoding.attention_mask], dtype=np.int64)
(vectors,) = session.run(None, {{"input_ids": ids, "attention_mask": mask}})
t3 = time.perf_counter()
assert vectors.shape == (1, 384)
print("BENCH " + json.dumps({{"session": t1 - t0, "tokenizer load": t2 - t1, "tokenize + run": t3 - t2}}), flush=True)
"""

WARM = PREAMBLE + """
sys.path.insert(0, {bench!r})
import numpy as np
from harness import time_calls
from prediction_service.composition import components
function = load_function("models")
context = lambda_context()
sentences = {sentences!r}
figures = {{}}
for label, name in {models!r}.items():
    path = f"/v1/models/{{name}}/predict"
    first = function.handler(http_event("POST", path, json.dumps({{"texts": [sentences[0]]}})), context)
    assert first["statusCode"] == 200, first
    registry = components().registry
    spec = registry.spec(name)
    session = registry.model(spec).session  # the handler's own session, as the cache holds it
    tokenizer = registry.tokenizer(spec)     # set up by the first request (truncation at max_tokens)
    for size, n in {sizes!r}.items():
        event = http_event("POST", path, json.dumps({{"texts": sentences[:size]}}))
        answer = function.handler(event, context)
        assert answer["statusCode"] == 200 and len(json.loads(answer["body"])["embeddings"]) == size, answer
        encodings = tokenizer.encode_batch(sentences[:size])
        feeds = {{"input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                 "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64)}}
        run = session.run
        inside = []
        def timed_run(*args, **kwargs):  # session.run as the handler calls it, timed there
            started = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                inside.append(time.perf_counter() - started)
        handler = lambda: function.handler(event, context)
        raw = lambda: run(None, feeds)
        tokenize = lambda: tokenizer.encode_batch(sentences[:size])
        samples = {{"handler": [], "raw": [], "tokenize": [], "run in handler": []}}
        block = max(1, n // {blocks})
        warmup = max(3, min(50, block // 2))
        for _ in range({blocks}):  # taking turns, so that both see the same machine
            session.run = timed_run
            samples["handler"] += time_calls("handler", handler, block, warmup=warmup).samples
            samples["run in handler"] += inside[-block:]
            del session.run
            samples["raw"] += time_calls("raw", raw, block, warmup=warmup).samples
            samples["tokenize"] += time_calls("tokenize", tokenize, block, warmup=3).samples
        figures[f"{{label}} {{size}}"] = samples
print("BENCH " + json.dumps(figures), flush=True)
"""

STATUS = """
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MiB
"""

MEMORY = PREAMBLE + STATUS + """
function = load_function("models")
context = lambda_context()
figures = {{"base": status("VmRSS")}}
assert function.handler(http_event("GET", "/v1/models"), context)["statusCode"] == 200
figures["listed"] = status("VmRSS")  # the S3 client and the manifest, no model
sentences = {sentences!r}
path = "/v1/models/{name}/predict"
first = function.handler(http_event("POST", path, json.dumps({{"texts": [sentences[0]]}})), context)
assert first["statusCode"] == 200, first
figures["peak"] = status("VmHWM")
events = [http_event("POST", path, json.dumps({{"texts": sentences[:size]}})) for size in (1, 8, 32)]
for i in range({requests}):
    assert function.handler(events[i % len(events)], context)["statusCode"] == 200
figures.update({{"steady": status("VmRSS"), "final peak": status("VmHWM")}})
print("BENCH " + json.dumps(figures), flush=True)
"""

MEMORY_ALONE = STATUS + """
import json
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
figures = {{"base": status("VmRSS")}}
options = ort.SessionOptions()  # the library's options
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.log_severity_level = 3
session = ort.InferenceSession({model!r}, sess_options=options, providers=["CPUExecutionProvider"])
tokenizer = Tokenizer.from_file({tokenizer!r})
tokenizer.enable_truncation(max_length=256)
tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
sentences = {sentences!r}
def run(texts):
    encodings = tokenizer.encode_batch(texts)
    session.run(None, {{"input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                        "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64)}})
run(sentences[:1])
figures["peak"] = status("VmHWM")
for i in range({requests}):
    run(sentences[:(1, 8, 32)[i % 3]])
figures.update({{"steady": status("VmRSS"), "final peak": status("VmHWM")}})
print("BENCH " + json.dumps(figures), flush=True)
"""


def child(code: str, env: dict[str, str]) -> tuple[Any, float]:
    """Run a snippet in a fresh interpreter: what its `BENCH ` line says, and the seconds from
    spawn to that line (the process's teardown is left out: it is waited for afterwards)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    found, spawn_to_line = None, 0.0
    for line in process.stdout:  # the function's own output (metrics) comes before
        if line.startswith("BENCH "):
            spawn_to_line = time.perf_counter() - started
            found = json.loads(line[6:]) if line[6:].lstrip()[:1] in "{[" else float(line[6:])
            break
    process.stdout.read()
    if process.wait() != 0 or found is None:
        raise RuntimeError(f"the benchmark child failed (exit {process.returncode})")
    return found, spawn_to_line


# -- S3: moto behind the throttling proxy ------------------------------------------------------


class TextS3:
    """moto in its own process with models/ and the built text models published, and
    bench/model_loading.py's throttling proxy in front of it (in a process of its own too)."""

    def __init__(self) -> None:
        import boto3
        from botocore.config import Config
        from build_text_model import build
        from generate_events import EVENT_TOKEN_HASH
        from model_loading import start_proxy

        self.built = build()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        self.moto = MotoServer()
        self.proxy: subprocess.Popen[str] | None = None
        try:
            create_bucket(self.moto.client(), BUCKET, prefix=PREFIX, text_models=self.built.out)
            self.proxy, self.url = start_proxy(self.moto.port)
            self.client = boto3.client("s3", endpoint_url=self.url, config=Config(max_pool_connections=32))
            for key in self.keys("FP32") + self.keys("INT8"):  # the proxy keeps each object after its first read
                self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except BaseException:
            self.stop()
            raise
        self.env = dict(os.environ, MODEL_BUCKET=BUCKET, MODEL_PREFIX=PREFIX, S3_ENDPOINT_URL=self.url,
                        API_TOKEN_HASHES=EVENT_TOKEN_HASH, PREFETCH_MODELS="none")
        self.env.pop("POWERTOOLS_METRICS_DISABLED", None)

    def file(self, label: str) -> Path:
        return self.built.fp32 if label == "FP32" else self.built.int8

    def keys(self, label: str) -> list[str]:
        """What a first embedding reads: the manifest, the tokenizer and the model."""
        return [PREFIX + "manifest.yaml", PREFIX + "text/tokenizer.json", PREFIX + "text/" + self.file(label).name]

    def fresh_env(self, scratch: Path) -> dict[str, str]:
        return dict(self.env, MODEL_CACHE_DIR=tempfile.mkdtemp(dir=scratch))

    def run_fresh(self, code: str, scratch: Path, **extra: str) -> tuple[Any, float]:
        """`child` with a fresh, empty MODEL_CACHE_DIR, removed afterwards (no model files pile up)."""
        env = dict(self.fresh_env(scratch), **extra)
        try:
            return child(code, env)
        finally:
            shutil.rmtree(env["MODEL_CACHE_DIR"], ignore_errors=True)

    def download(self, label: str, config: Any, work: Path) -> float:
        """The same objects as a first embedding reads, the model with `download_file` and
        `config`, the two small ones each in a thread of their own beside it (wall seconds)."""
        manifest, tokenizer, model = self.keys(label)

        def small(key: str) -> None:
            self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()

        started = time.perf_counter()
        with ThreadPoolExecutor(3) as pool:
            done = [pool.submit(small, manifest), pool.submit(small, tokenizer),
                    pool.submit(self.client.download_file, BUCKET, model, str(work / "model.onnx"), Config=config)]
            for future in done:
                future.result()
        seconds = time.perf_counter() - started
        (work / "model.onnx").unlink()
        return seconds

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(timeout=10)
        self.moto.stop()


def paths() -> list[str]:
    return [str(ROOT / "layers/prediction"), str(ROOT / "scripts"), str(ROOT / "tests")]


# -- 1. cold -----------------------------------------------------------------------------------


def best_transfer(s3: TextS3, work: Path) -> tuple[Any, dict[tuple[int, int], float]]:
    """The fastest parallel TransferConfig through the proxy, on the FP32 model (2 runs each, median)."""
    from boto3.s3.transfer import TransferConfig

    times: dict[tuple[int, int], list[float]] = {c: [] for c in TRANSFER_CONFIGS}
    for _ in range(2):
        for part, parallel in TRANSFER_CONFIGS:
            config = TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=part * MB, max_concurrency=parallel)
            times[(part, parallel)].append(s3.download("FP32", config, work))
    medians = {c: statistics.median(v) for c, v in times.items()}
    part, parallel = min(medians, key=medians.__getitem__)
    return TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=part * MB, max_concurrency=parallel), medians


def cold(s3: TextS3, rounds: int, scratch: Path) -> dict[str, Any]:
    body = json.dumps({"texts": [FIRST_TEXT]})
    config, probe = best_transfer(s3, scratch)
    mb = s3.file("FP32").stat().st_size / MB
    print(f"proxy's parallel rate, download_file of the FP32 model ({mb:.1f} MB) + the two small objects beside it:")
    for (part, parallel), seconds in probe.items():
        print(f"  {part:>2} MB x {parallel:>2}: {seconds:.3f} s  ({mb / seconds:.0f} MB/s)")
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in MODELS}

    def add(label: str, key: str, value: float) -> None:
        samples[label].setdefault(key, []).append(value)

    def ours(label: str, prefetch: bool = False) -> None:
        extra = {"PREFETCH_MODELS": MODELS[label]} if prefetch else {}
        found, spawned = s3.run_fresh(COLD.format(paths=paths(), name=MODELS[label], body=body), scratch, **extra)
        who = "ours, PREFETCH_MODELS=<name>" if prefetch else "ours"
        for key, value in found.items():
            if not prefetch or key == "total":
                add(label, f"{who}: {key}", value)
        add(label, f"{who}: spawn to answer", spawned)

    def floor(label: str) -> None:
        imported, _ = child(IMPORT.format(modules=", ".join(LIBRARIES)), s3.env)
        downloaded = s3.download(label, config, scratch)
        steps, _ = child(SESSION_AND_RUN.format(model=str(s3.file(label)), tokenizer=str(s3.built.tokenizer),
                                                text=FIRST_TEXT), s3.env)
        parts = {"(a) bare import of the six libraries": imported, "(b) download at the best parallel rate": downloaded,
                 "(c) InferenceSession from the file": steps["session"],
                 "(d) Tokenizer.from_file": steps["tokenizer load"],
                 "(d) tokenize + session.run": steps["tokenize + run"]}
        for key, value in parts.items():
            add(label, key, value)
        add(label, "floor: (a) + (b) + (c) + (d)", sum(parts.values()))

    for label in MODELS:  # warm-up: the page cache, the proxy's connections; not counted
        s3.run_fresh(COLD.format(paths=paths(), name=MODELS[label], body=body), scratch)
        floor(label)
    samples = {label: {} for label in MODELS}
    for _ in range(rounds):  # A B A B (and, for comparison, ours with the model prefetched during the imports)
        for label in MODELS:
            ours(label)
            floor(label)
            ours(label, prefetch=True)
    medians = {label: {key: statistics.median(v) for key, v in figures.items()} for label, figures in samples.items()}
    print(f"\nCold first embedding, fresh processes (in-child perf_counter, first line to answer), "
          f"median of {rounds}, alternating ours / floor")
    print(f"{'measure':56} {'FP32 ms':>9} {'(min-max)':>13} {'INT8 ms':>9} {'(min-max)':>13}")
    for key in medians["FP32"]:
        cells = [f"{medians[label][key] * 1000:>9.1f} {min(samples[label][key]) * 1000:>6.0f}-"
                 f"{max(samples[label][key]) * 1000:<6.0f}" for label in MODELS]
        print(f"{key:56} {cells[0]} {cells[1]}")
    result: dict[str, Any] = {"medians": medians, "probe": probe}
    for label in MODELS:
        ratio = medians[label]["ours: total"] / medians[label]["floor: (a) + (b) + (c) + (d)"]
        result[f"ratio {label}"] = ratio
        verdict = "met" if ratio <= TARGET_COLD else f"missed by {ratio - TARGET_COLD:.2f}x"
        print(f"{label}: ours / floor = {ratio:.2f}x (target <= {TARGET_COLD}x): {verdict}")
        floor_total = medians[label]["floor: (a) + (b) + (c) + (d)"]
        prefetched = medians[label]["ours, PREFETCH_MODELS=<name>: total"] / floor_total
        result[f"ratio {label} prefetch"] = prefetched
        print(f"{label}: ours with PREFETCH_MODELS={MODELS[label]} / floor = {prefetched:.2f}x (not the default)")
    steps: dict[str, dict[str, list[float]]] = {label: {} for label in MODELS}
    for _ in range(rounds):
        for label in MODELS:
            found, _ = s3.run_fresh(BREAKDOWN.format(paths=paths(), name=MODELS[label], body=body), scratch)
            for key, value in found.items():
                steps[label].setdefault(key, []).append(value)
    result["breakdown"] = {label: {key: statistics.median(v) for key, v in figures.items()}
                           for label, figures in steps.items()}
    print(f"\nWhere our cold path goes: the first request's loads called one at a time, in the order it makes them "
          f"(other fresh processes, median of {rounds})")
    print(f"{'step':56} {'FP32 ms':>9} {'INT8 ms':>9}")
    for key in result["breakdown"]["FP32"]:
        fp32, int8 = result["breakdown"]["FP32"][key], result["breakdown"]["INT8"][key]
        print(f"{key:56} {fp32 * 1000:>9.1f} {int8 * 1000:>9.1f}")
    return result


def profile_cold(s3: TextS3, scratch: Path, label: str = "FP32", top: int = 25) -> None:
    """cProfile of one cold first embedding (a fresh process), by cumulative time."""
    out = scratch / "cold.prof"
    code = PROFILED.format(paths=paths(), name=MODELS[label], body=json.dumps({"texts": [FIRST_TEXT]}), out=str(out))
    env = s3.fresh_env(scratch)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    shutil.rmtree(env["MODEL_CACHE_DIR"], ignore_errors=True)
    text = io.StringIO()
    pstats.Stats(str(out), stream=text).sort_stats("cumulative").print_stats(top)
    print(f"\ncProfile of a cold first embedding ({label}), by cumulative time:")
    print(text.getvalue())


# -- 2. warm -----------------------------------------------------------------------------------


def warm(s3: TextS3, scratch: Path) -> dict[str, Any]:
    code = WARM.format(paths=paths(), bench=str(ROOT / "bench"), sentences=SENTENCES, models=MODELS,
                       sizes=WARM_SIZES, blocks=WARM_BLOCKS)
    found, _ = s3.run_fresh(code, scratch)
    print("\nWarm, one fresh process: POST /v1/models/<name>/predict through the handler against session.run of the "
          "handler's own session on the same token ids\n(tokenized once, outside), in alternating blocks; medians. "
          "run in handler: the same session.run timed inside the handler; outside it: handler - run in handler; "
          "tokenize: encode_batch alone")
    print(f"{'model, texts':13} {'N':>4} {'raw ms':>8} {'handler ms':>11} {'p99 raw':>8} {'p99 handler':>12} "
          f"{'overhead':>9} {'':6} {'run in handler':>15} {'outside it us':>14} {'tokenize us':>12}")
    result: dict[str, Any] = {}
    for key, samples in found.items():
        med = {k: statistics.median(v) for k, v in samples.items()}
        p99 = {k: sorted(v)[min(len(v) - 1, int(0.99 * len(v)))] for k, v in samples.items()}
        overhead = med["handler"] / med["raw"] - 1
        result[key] = dict(med, overhead=overhead)
        verdict = "met" if overhead <= TARGET_OVERHEAD else "missed"
        print(f"{key:13} {len(samples['handler']):>4} {med['raw'] * 1e3:>8.2f} {med['handler'] * 1e3:>11.2f} "
              f"{p99['raw'] * 1e3:>8.2f} {p99['handler'] * 1e3:>12.2f} {overhead:>8.1%} {verdict:6} "
              f"{med['run in handler'] * 1e3:>12.2f} ms {(med['handler'] - med['run in handler']) * 1e6:>14.0f} "
              f"{med['tokenize'] * 1e6:>12.0f}")
    print(f"target: overhead <= {TARGET_OVERHEAD:.0%}")
    return result


# -- 3. memory and cost ------------------------------------------------------------------------


def memory(s3: TextS3, scratch: Path, warm_figures: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    print(f"\nMemory (MiB), a fresh process each. ours: the models function; base = VmRSS after importing it (no "
          f"model loaded);\nlisted = after GET /v1/models (S3 client, manifest); "
          "peak = VmHWM after the first embedding "
          f"(the model loading); steady = VmRSS after {MEMORY_REQUESTS} more\nrequests of 1/8/32 texts. "
          "onnxruntime alone: the same session from the local file, tokenizer and runs, over its own base "
          "(numpy, onnxruntime, tokenizers imported).")
    print(f"{'':24} {'file':>6} {'base':>6} {'listed':>7} {'peak':>6} {'peak-base':>10} {'target':>7} "
          f"{'steady':>7} {'steady-base':>12} {'target':>7} {'final peak':>11}")
    for label, name in MODELS.items():
        file_mb = s3.file(label).stat().st_size / MB
        ours, _ = s3.run_fresh(MEMORY.format(paths=paths(), name=name, sentences=SENTENCES,
                                             requests=MEMORY_REQUESTS), scratch)
        alone, _ = child(MEMORY_ALONE.format(model=str(s3.file(label)), tokenizer=str(s3.built.tokenizer),
                                             sentences=SENTENCES, requests=MEMORY_REQUESTS), s3.env)
        for who, found in ((f"{label} ours", ours), (f"{label} onnxruntime alone", alone)):
            peak, steady = found["peak"] - found["base"], found["steady"] - found["base"]
            verdict = (f"peak {'met' if peak <= TARGET_PEAK * file_mb else 'missed'}, "
                       f"steady {'met' if steady <= TARGET_STEADY * file_mb else 'missed'}")
            listed = f"{found['listed']:>7.1f}" if "listed" in found else f"{'':>7}"
            print(f"{who:24} {file_mb:>6.1f} {found['base']:>6.1f} {listed} {found['peak']:>6.1f} {peak:>10.1f} "
                  f"{TARGET_PEAK * file_mb:>7.1f} {found['steady']:>7.1f} {steady:>12.1f} "
                  f"{TARGET_STEADY * file_mb:>7.1f} "
                  f"{found['final peak']:>11.1f}  {verdict}")
        result[label] = dict(ours, file=file_mb, alone=alone,
                             peak_met=ours["peak"] - ours["base"] <= TARGET_PEAK * file_mb,
                             steady_met=ours["steady"] - ours["base"] <= TARGET_STEADY * file_mb)
    print("\nRecommended MemorySize (smallest of 512, 1024, 1536, ... MB with "
          f">= {MEMORY_HEADROOM - 1:.0%} headroom over "
          "the process's final peak) and cost per million 1-text embeddings, us-east-1 x86:\n"
          f"${GB_SECOND} per GB-s, billed per 1 ms of this machine's warm median, "
          f"+ ${LAMBDA_REQUESTS:.2f} Lambda requests "
          f"+ ${HTTP_API_REQUESTS:.2f} HTTP API. An estimate: Lambda gives CPU in proportion to memory "
          "(1,769 MB = 1 vCPU),\n"
          "so its latency differs from this machine's; cold starts, logs and data transfer are left out.")
    for label in MODELS:
        peak = result[label]["final peak"]
        size = 512
        while size < MEMORY_HEADROOM * peak:
            size += 512
        latency_ms = warm_figures[f"{label} 1"]["handler"] * 1000
        billed_ms = max(1, math.ceil(latency_ms))
        compute = 1e6 * billed_ms / 1000 * size / 1024 * GB_SECOND
        cost = compute + LAMBDA_REQUESTS + HTTP_API_REQUESTS
        result[label].update(memory_size=size, billed_ms=billed_ms, cost=cost)
        print(f"{label}: peak {peak:.0f} MiB -> MemorySize {size} MB ({size / peak - 1:.0%} headroom); warm 1-text "
              f"median {latency_ms:.2f} ms, billed {billed_ms} ms: compute ${compute:.3f} + ${LAMBDA_REQUESTS:.2f} + "
              f"${HTTP_API_REQUESTS:.2f} = ${cost:.2f} per million")
    return result


# -- 4. size -----------------------------------------------------------------------------------


def _requirements_graph(site: Path) -> dict[str, set[str]]:
    """Each distribution in `site` and the distributions it requires (extras left out, markers
    evaluated for Lambda's python3.13 on x86_64 Linux)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    environment = {"python_version": "3.13", "python_full_version": "3.13.0", "sys_platform": "linux",
                   "platform_machine": "x86_64", "platform_system": "Linux", "os_name": "posix",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    graph: dict[str, set[str]] = {}
    for info in site.glob("*.dist-info"):
        metadata = (info / "METADATA").read_text(errors="replace")
        name = canonicalize_name(next(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                                      if line.startswith("Name:")))
        needs = set()
        for line in metadata.splitlines():
            if line.startswith("Requires-Dist:"):
                requirement = Requirement(line.split(":", 1)[1].strip())
                if requirement.marker is None or requirement.marker.evaluate(environment):
                    needs.add(canonicalize_name(requirement.name))
        graph[name] = needs
    return graph


def _distribution_bytes(site: Path) -> dict[str, int]:
    """Bytes of each distribution's files, by its RECORD (what is left of them after the Makefile's trimming)."""
    from packaging.utils import canonicalize_name

    sizes: dict[str, int] = {}
    for info in site.glob("*.dist-info"):
        name = canonicalize_name(info.name.split("-")[0])
        total = 0
        for line in (info / "RECORD").read_text().splitlines():
            path = site / line.split(",")[0]
            if path.is_file():
                total += path.stat().st_size
        sizes[name] = total
    return sizes


def size() -> dict[str, Any]:
    from size import LIMIT, tree_bytes

    build = ROOT / ".aws-sam" / "build"
    layer_dir = build / "PredictionLayer"
    site = layer_dir / "python"
    inputs = [ROOT / "layers/prediction/requirements.txt", ROOT / "layers/prediction/Makefile", ROOT / "template.yaml"]
    stale = (not layer_dir.is_dir() or not any(site.glob("tokenizers-*.dist-info"))
             or layer_dir.stat().st_mtime < max(p.stat().st_mtime for p in inputs))
    if stale:
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   SAM_CLI_TELEMETRY="0")
        subprocess.run([str(Path(sys.executable).parent / "sam"), "build"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    layer = tree_bytes(layer_dir)
    functions = {p.name: tree_bytes(p) for p in sorted(build.iterdir()) if p.is_dir() and p.name != "PredictionLayer"}
    largest_name = max(functions, key=functions.__getitem__)
    total = layer + functions[largest_name]
    # What tokenizers brings: itself, and what it requires that nothing else in the layer does.
    graph = _requirements_graph(site)
    own = _distribution_bytes(site)

    def closure(roots: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name not in seen and name in graph:
                seen.add(name)
                todo.extend(graph[name])
        return seen

    from packaging.utils import canonicalize_name

    required = {canonicalize_name(line.split("#")[0].split("==")[0].strip())
                for line in (ROOT / "layers/prediction/requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    only_tokenizers = closure({"tokenizers"}) - closure(required - {"tokenizers"})
    by_tokenizers = {name: own.get(name, 0) for name in sorted(only_tokenizers, key=lambda n: -own.get(n, 0))}
    how = "rebuilt now" if stale else "the existing build: newer than the layer's inputs"
    print(f"\nSize, unzipped, after sam build ({how})")
    print(f"layer {layer / 1e6:.1f} MB + largest function ({largest_name}) {functions[largest_name] / 1e6:.3f} MB = "
          f"{total / 1e6:.1f} MB (target < {SIZE_TARGET / 1e6:.0f} MB: "
          f"{'met' if total < SIZE_TARGET else f'missed by {(total - SIZE_TARGET) / 1e6:.1f} MB'}; "
          f"{total / LIMIT:.0%} of Lambda's 250 MB)")
    print(f"tokenizers and what only it requires: {sum(by_tokenizers.values()) / 1e6:.1f} MB: "
          + ", ".join(f"{name} {b / 1e6:.1f}" for name, b in by_tokenizers.items()))
    return {"layer": layer, "largest function": largest_name, "total": total, "by tokenizers": by_tokenizers,
            "rebuilt": stale}


# -- all of it ---------------------------------------------------------------------------------


def summary(cold_figures: dict[str, Any], warm_figures: dict[str, Any], memory_figures: dict[str, Any],
            size_figures: dict[str, Any]) -> None:
    rows = []
    for label in MODELS:
        m = cold_figures["medians"][label]
        ratio = cold_figures[f"ratio {label}"]
        rows.append((f"cold first embedding {label} / floor", f"{m['ours: total'] * 1000:.0f} / "
                     f"{m['floor: (a) + (b) + (c) + (d)'] * 1000:.0f} ms = {ratio:.2f}x", f"<= {TARGET_COLD}x",
                     "met" if ratio <= TARGET_COLD else f"missed by {ratio - TARGET_COLD:.2f}x"))
    for label in MODELS:
        for n in WARM_SIZES:
            w = warm_figures[f"{label} {n}"]
            rows.append((f"warm {label}, {n} text{'s' if n > 1 else ''}: handler / raw run",
                         f"{w['handler'] * 1e3:.2f} / {w['raw'] * 1e3:.2f} ms = +{w['overhead']:.1%}",
                         f"<= {TARGET_OVERHEAD:.0%}", "met" if w["overhead"] <= TARGET_OVERHEAD else "missed"))
    for label in MODELS:
        f = memory_figures[label]
        base = f["base"]
        rows.append((f"peak RSS loading {label} - base ({base:.0f} MiB)", f"{f['peak'] - base:.0f} MiB",
                     f"<= {TARGET_PEAK * f['file']:.0f} MiB (2x {f['file']:.1f})",
                     "met" if f["peak_met"] else "missed"))
        rows.append((f"steady RSS {label} - base", f"{f['steady'] - base:.0f} MiB",
                     f"<= {TARGET_STEADY * f['file']:.0f} MiB (1.3x)", "met" if f["steady_met"] else "missed"))
    total = size_figures["total"]
    rows.append(("layer + largest function, unzipped", f"{total / 1e6:.1f} MB", f"< {SIZE_TARGET / 1e6:.0f} MB",
                 "met" if total < SIZE_TARGET else f"missed by {(total - SIZE_TARGET) / 1e6:.1f} MB"))
    for label in MODELS:
        f = memory_figures[label]
        rows.append((f"MemorySize {label} / cost per million", f"{f['memory_size']} MB / ${f['cost']:.2f}", "",
                     "estimate"))
    print("\nSummary")
    print(f"{'measure':48} {'figure':34} {'target':22} ")
    for row in rows:
        print(f"{row[0]:48} {row[1]:34} {row[2]:22} {row[3]}")


def main(rounds: int = 5, profile: bool = False) -> dict[str, Any]:
    sys.path[:0] = [str(ROOT / "models")]
    scratch = Path(tempfile.mkdtemp(prefix="bench-text-"))
    s3 = TextS3()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    changed = subprocess.run(["git", "status", "--porcelain", "--", "layers", "functions"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split("\n")
    changed = [line[3:] for line in changed if line.strip()]
    print(f"tree: {commit or '?'}" + (f", with uncommitted changes to {', '.join(changed)}" if changed else ""))
    try:
        print(f"all-minilm-l6-v2: FP32 {s3.built.fp32.stat().st_size / 1e6:.1f} MB, INT8 "
              f"{s3.built.int8.stat().st_size / 1e6:.1f} MB; S3: moto behind bench/model_loading.py's throttling proxy "
              f"(~90 MB/s and ~20 ms to first byte per connection; a simulation)")
        cold_figures = cold(s3, rounds, scratch)
        if profile:
            profile_cold(s3, scratch, "FP32")
            profile_cold(s3, scratch, "INT8")
        warm_figures = warm(s3, scratch)
        memory_figures = memory(s3, scratch, warm_figures)
    finally:
        s3.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    size_figures = size()
    summary(cold_figures, warm_figures, memory_figures, size_figures)
    return {"cold": cold_figures, "warm": warm_figures, "memory": memory_figures, "size": size_figures}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of a cold first embedding")
    arguments = parser.parse_args()
    main(arguments.rounds, arguments.profile)
