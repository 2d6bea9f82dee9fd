"""Loading a big model from S3 (issue 13, "Load"): our loader against the two obvious ways, in one run.

- ours: one HEAD, then boto3's managed transfer (parallel 8 MB ranged GETs) into a
  non-seekable writer that hashes the bytes in order on their way to a /tmp file
  (`S3Store.download`, what `ArtifactCache` does for a model);
- one stream: `get_object()["Body"].read()`, hashed and written to /tmp (the loader before);
- download_file: `download_file` with boto3's default TransferConfig (no hash: it is not asked for one).

moto on loopback answers far faster than S3, so a throttling proxy stands in front of it, in its
own process, giving each connection S3's typical behaviour: about 90 MB/s and about 20 ms to the
first byte. It is a simulation: the figures show how the loaders use connections, not what a
Lambda function will measure. The proxy keeps each object's bytes after its first read (moto
reads the whole object again for every ranged GET, which would measure moto instead).

    python bench/model_loading.py [--runs 3] [--model path.onnx]

The model is `make text-model`'s all-MiniLM-L6-v2 (90 MB) when it is built, else a generated
90 MB MatMul model. Peak Python memory is tracemalloc's, in a run of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness import ROOT
from local_s3 import MotoServer, free_port

RATE = 90 * 1024 * 1024  # bytes per second, per connection
FIRST_BYTE = 0.020  # seconds before each answer starts
PIECE = 64 * 1024
TEXT_MODEL = ROOT / ".local" / "text-model" / "all-minilm-l6-v2.fp32.onnx"
BUCKET = "bench-loading"
KEY = "models/big.onnx"


# -- the throttling proxy (runs in its own process) -------------------------------------------


def serve_proxy(port: int, upstream_port: int) -> None:
    """Forward to moto; answer GETs of objects from a copy of their bytes, throttled per connection."""
    objects: dict[str, tuple[bytes, dict[str, str]]] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # else each GET on a kept-alive connection waits ~40 ms for its ACK
        protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses connections, as with S3

        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> tuple[int, list[tuple[str, str]], bytes]:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "range", "if-match")}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            upstream.close()
            return response.status, response.getheaders(), data

        def _object(self) -> tuple[bytes, dict[str, str]] | None:
            with lock:
                if self.path not in objects:
                    status, headers, data = self._forward()
                    if status != 200:
                        return None
                    keep = {k.lower(): v for k, v in headers if k.lower() in ("etag", "last-modified", "content-type")}
                    objects[self.path] = (data, keep)
                return objects[self.path]

        def do_GET(self) -> None:
            time.sleep(FIRST_BYTE)
            found = self._object() if self.path.count("/") >= 2 else None
            if found is None:
                self._answer(*self._forward())
                return
            data, headers = found
            status, start, end = 200, 0, len(data) - 1
            wanted = self.headers.get("range")
            if wanted:
                first, _, last = wanted.split("=", 1)[1].partition("-")
                start, end, status = int(first), min(int(last) if last else end, end), 206
            if self.headers.get("if-match") not in (None, headers.get("etag")):
                self._answer(412, [], b"")
                return
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if status == 206:
                self.send_header("content-range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("accept-ranges", "bytes")
            self.send_header("content-length", str(end - start + 1))
            self.end_headers()
            view = memoryview(data)[start:end + 1]
            began = time.perf_counter()
            try:
                for sent in range(0, len(view), PIECE):
                    self.wfile.write(view[sent:sent + PIECE])
                    ahead = began + (sent + PIECE) / RATE - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client stopped reading (a large file's first GET, once sized)

        def do_OTHER(self) -> None:
            time.sleep(FIRST_BYTE)
            with lock:
                objects.pop(self.path, None)
            self._answer(*self._forward())

        do_HEAD = do_PUT = do_POST = do_DELETE = do_OTHER

        def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    self.send_header(key, value)
            if self.command != "HEAD":
                self.send_header("content-length", str(len(data)))
            else:
                self.send_header("content-length", dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()




def start_proxy(upstream_port: int) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--proxy", str(port), str(upstream_port)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process, f"http://127.0.0.1:{port}"


# -- the loaders compared -----------------------------------------------------------------------


def generated_model(path: Path, megabytes: int = 90) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = int((megabytes * 1024 * 1024 / 4) ** 0.5)
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def loaders(client: Any, sha256: str, work: Path) -> dict[str, Callable[[], None]]:
    from boto3.s3.transfer import TransferConfig
    from prediction_service.storage.cache import ArtifactCache
    from prediction_service.storage.s3 import MB, S3Store, transfer_config

    runs = iter(range(1_000_000))

    def through_cache(store: S3Store) -> Callable[[], None]:
        def load() -> None:  # what a model's first request does, but the session
            cache = ArtifactCache(store, max_bytes=1 << 40, disk_max_bytes=1 << 40, revalidate_seconds=60,
                                  cache_dir=work / f"ours-{next(runs)}")
            cache.get_file(KEY, lambda path: None, sha256)

        return load

    def one_stream() -> None:  # the loader before: the whole body in memory, hashed, written
        body = client.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256
        (work / f"stream-{next(runs)}").write_bytes(body)

    def download_file() -> None:  # boto3's defaults (8 MB x 10, a seekable file), no checksum
        client.download_file(BUCKET, KEY, str(work / f"file-{next(runs)}"), Config=TransferConfig())

    return {
        "ours: a GET that sizes it + 4 MB x 5 ranged GETs, sha256 on the way": through_cache(S3Store(BUCKET, client)),
        "the same with 8 MB x 8 (more parallel, more buffered)": through_cache(
            S3Store(BUCKET, client, transfer_config(part_size=8 * MB, parallel=8))),
        "get_object().read() in one stream (+ sha256, write)": one_stream,
        "download_file, default TransferConfig (no sha256)": download_file,
    }


def clear(work: Path) -> None:
    for path in work.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def main(runs: int = 3, model: Path | None = None) -> dict[str, float]:
    import boto3
    from botocore.config import Config

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    scratch = Path(tempfile.mkdtemp(prefix="bench-loading-"))
    if model is None:
        model = TEXT_MODEL if TEXT_MODEL.exists() else generated_model(scratch / "big.onnx")
    body = model.read_bytes()
    size, sha256 = len(body), hashlib.sha256(body).hexdigest()
    moto = MotoServer()
    proxy, url = None, ""
    try:
        direct = moto.client()
        direct.create_bucket(Bucket=BUCKET)
        direct.put_object(Bucket=BUCKET, Key=KEY, Body=body)
        del body
        proxy, url = start_proxy(moto.port)
        # As the functions' client (S3Store.from_settings): room for the parallel GETs.
        client = boto3.client("s3", endpoint_url=url, config=Config(max_pool_connections=16))
        work = scratch / "work"
        work.mkdir()
        methods = loaders(client, sha256, work)
        next(iter(methods.values()))()  # warm up: the proxy keeps the object's bytes, connections open
        clear(work)
        seconds: dict[str, list[float]] = {label: [] for label in methods}
        for _ in range(runs):  # interleaved, so that every loader sees the same conditions
            for label, load in methods.items():
                started = time.perf_counter()
                load()
                seconds[label].append(time.perf_counter() - started)
                clear(work)
        peaks = {}
        for label, load in methods.items():
            tracemalloc.start()
            load()
            peaks[label] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            clear(work)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
        moto.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    mb = size / (1024 * 1024)
    medians = {label: statistics.median(values) for label, values in seconds.items()}
    ours = medians[next(iter(medians))]
    print(f"{model.name}: {mb:.0f} MB, {runs} runs each (median), through a simulated S3 on 127.0.0.1:")
    print(f"  {RATE / 1024 / 1024:.0f} MB/s and {FIRST_BYTE * 1000:.0f} ms to first byte per connection "
          "(a throttling proxy in front of moto: a simulation, not a measurement of S3)")
    print(f"{'loader':54} {'seconds':>8} {'MB/s':>7} {'time / ours':>12} {'peak Python MB':>15}")
    for label, value in medians.items():
        print(f"{label:54} {value:>8.2f} {mb / value:>7.0f} {value / ours:>11.2f}x {peaks[label] / 1024 / 1024:>15.1f}")
    return {**{f"{label} (s)": value for label, value in medians.items()},
            **{f"{label} (peak MB)": peaks[label] / 1024 / 1024 for label in peaks}}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--proxy"]:
        serve_proxy(int(sys.argv[2]), int(sys.argv[3]))
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--model", type=Path, default=None)
        arguments = parser.parse_args()
        main(arguments.runs, arguments.model)
