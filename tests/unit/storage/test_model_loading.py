"""Loading big models (issue 13): streamed to /tmp with the sha256 computed on the way, the
session built from the file, separate memory and /tmp budgets with LRU eviction, and a model
that cannot fit refused before it downloads. Models are generated here (a MatMul over a large
initializer), never committed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import yaml
from local_s3 import MotoServer, in_process_s3
from onnx import TensorProto, helper, numpy_helper
from prediction_service.errors import CapacityError, IntegrityError, StoreError
from prediction_service.runtime import onnx as inference
from prediction_service.runtime.onnx import load_model_file
from prediction_service.settings import MB, Settings
from prediction_service.storage.cache import ArtifactCache
from prediction_service.storage.s3 import PARALLEL_PARTS, PART_SIZE, STREAM_THRESHOLD, S3Store, transfer_config
from support import BUCKET as MODELS_BUCKET
from support import ROOT, CountingStore, http_event, lambda_context, load_function

BUCKET = "loading-test"
SMALL_PARTS = 256 * 1024  # so that a model of a few MB downloads in many ranged GETs


def onnx_model(megabytes: int, seed: int = 0) -> bytes:
    """A MatMul model just under `megabytes` MB (so its size in whole MB, rounded up, is that)."""
    n = int(((megabytes * MB - 4096) / 4) ** 0.5)
    weights = np.random.default_rng(seed).standard_normal((n, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def s3_client() -> Iterator[Any]:
    with in_process_s3(BUCKET, publish=False) as client:
        yield client


@pytest.fixture
def store(s3_client: Any) -> CountingStore:
    return CountingStore(S3Store(BUCKET, s3_client, transfer_config(part_size=SMALL_PARTS)))


def put(client: Any, key: str, body: bytes) -> str:
    client.put_object(Bucket=BUCKET, Key=key, Body=body)
    return hashlib.sha256(body).hexdigest()


def make_cache(store: Any, directory: Path, **overrides: Any) -> ArtifactCache:
    options: dict[str, Any] = {
        "max_bytes": 64 * MB, "disk_max_bytes": 64 * MB, "cache_dir": directory, "revalidate_seconds": 60,
        "stream_threshold": 0,  # every pinned file streams, however small
    }
    options.update(overrides)
    return ArtifactCache(store, **options)


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


# -- streaming and checksums ------------------------------------------------------------------


def test_the_sha256_computed_while_streaming_is_the_files_over_several_ranged_parts(
    s3_client: Any, tmp_path: Path
) -> None:
    body = np.random.default_rng(1).bytes(3 * MB + 12345)
    s3_client.put_object(Bucket=BUCKET, Key="m/blob", Body=body)
    ranges: list[tuple[str, str]] = []

    def first_part_last(params: dict[str, Any], **_: Any) -> None:
        ranges.append((params.get("Range", ""), params.get("IfMatch", "")))
        if params.get("Range", "").startswith("bytes=0-"):
            time.sleep(0.3)  # every other part arrives before the first: s3transfer must hold them

    s3_client.meta.events.register("provide-client-params.s3.GetObject", first_part_last)
    s3 = S3Store(BUCKET, s3_client, transfer_config(part_size=SMALL_PARTS))
    info = s3.head("m/blob")
    with (tmp_path / "out").open("wb") as out:
        streamed = s3.download("m/blob", out, info)
    written = (tmp_path / "out").read_bytes()
    assert streamed.sha256 == hashlib.sha256(written).hexdigest() == hashlib.sha256(body).hexdigest()
    assert written == body and streamed.size == len(body)
    assert len(ranges) == -(-len(body) // SMALL_PARTS) == 13, "one ranged GET per part"
    assert all(r.startswith("bytes=") and etag == info.etag for r, etag in ranges), "each part pinned by If-Match"


def _faulty_s3() -> Any:
    """tests/reliability/faulty_s3.py: moto behind a proxy that can corrupt answers."""
    import sys

    if "faulty_s3" not in sys.modules:
        spec = importlib.util.spec_from_file_location("faulty_s3", ROOT / "tests" / "reliability" / "faulty_s3.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["faulty_s3"] = module
        spec.loader.exec_module(module)
    return sys.modules["faulty_s3"]


def test_a_corrupted_stream_is_refused_and_leaves_no_file_in_tmp(moto_server: MotoServer, tmp_path: Path) -> None:
    faulty_s3 = _faulty_s3()
    proxy = faulty_s3.FaultyS3(moto_server)
    try:
        direct = moto_server.client()
        direct.create_bucket(Bucket=BUCKET)
        body = onnx_model(1)
        sha = put(direct, "m/a.onnx", body)
        through_proxy = S3Store(BUCKET, boto3.client("s3", endpoint_url=proxy.url), transfer_config(part_size=SMALL_PARTS))
        cache = make_cache(through_proxy, tmp_path / "disk")
        proxy.fault = faulty_s3.Fault("corrupt", match="m/a.onnx")
        with pytest.raises(IntegrityError, match="sha256") as info:
            cache.get_file("m/a.onnx", load_model_file, sha)
        assert "m/a.onnx" in info.value.detail and "m/a.onnx" not in info.value.message
        # one GET whose headers told the size (its body left unread), then the four ranged GETs
        assert sum(1 for method, path in proxy.requests if method == "GET" and "m/a.onnx" in path) == 5
        assert files_in(tmp_path / "disk") == set(), "neither the refused file nor its partial download is kept"
        assert cache.disk_bytes == 0 and cache.reserved_bytes == 0
        proxy.fault = None
        assert cache.get_file("m/a.onnx", load_model_file, sha).inputs[0].name == "x"
        assert files_in(tmp_path / "disk") == {sha}
    finally:
        proxy.close()


def test_a_download_that_breaks_halfway_leaves_no_file_in_tmp(s3_client: Any, tmp_path: Path) -> None:
    class Breaking(CountingStore):
        def download(self, key: str, out: Any, info: Any) -> Any:
            out.write(b"half of the model")
            raise StoreError("could not reach S3 (ReadTimeoutError)", detail=f"{key}: timed out")

    sha = put(s3_client, "m/a.onnx", onnx_model(1))
    cache = make_cache(Breaking(S3Store(BUCKET, s3_client)), tmp_path / "disk")
    with pytest.raises(StoreError, match="could not reach S3"):
        cache.get_file("m/a.onnx", load_model_file, sha)
    assert files_in(tmp_path / "disk") == set()
    assert cache.disk_bytes == 0 and cache.reserved_bytes == 0 and "m/a.onnx" not in cache


# -- the session comes from the file ----------------------------------------------------------


def test_the_session_is_created_from_the_files_path(
    store: CountingStore, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = put(s3_client, "m/a.onnx", onnx_model(1))
    real = inference.ort.InferenceSession
    sources: list[Any] = []

    def spy(source: Any, *args: Any, **kwargs: Any) -> Any:
        sources.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(inference.ort, "InferenceSession", spy)
    model = make_cache(store, tmp_path / "disk").get_file("m/a.onnx", load_model_file, sha)
    assert sources == [str(tmp_path / "disk" / sha)], "a str path, never the model's bytes"
    assert model.outputs[0].name == "y"
    assert store.downloads == ["m/a.onnx"]


@pytest.fixture
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server in its own process, so that its memory is not ours (tracemalloc)."""
    with MotoServer() as server:
        yield server


def test_loading_a_50_mb_model_holds_a_small_part_of_it_in_python_memory(moto_server: MotoServer,
                                                                          tmp_path: Path) -> None:
    client = moto_server.client()
    client.create_bucket(Bucket=BUCKET)
    body = onnx_model(50)
    size, sha = len(body), put(client, "m/big.onnx", body)
    del body
    store = CountingStore(S3Store(BUCKET, client))  # the production transfer settings
    cache = make_cache(store, tmp_path / "disk", stream_threshold=STREAM_THRESHOLD)
    tracemalloc.start()
    try:
        model = cache.get_file("m/big.onnx", load_model_file, sha)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\npeak Python memory while loading a {size / MB:.0f} MB model: {peak / MB:.1f} MB")
    assert store.downloads == ["m/big.onnx"], "streamed, not fetched whole"
    assert model.inputs[0].shape == (-1, int(((50 * MB - 4096) / 4) ** 0.5))
    # The in-order buffer (parts that arrive early) is bounded by the parts in flight.
    assert peak < PARALLEL_PARTS * PART_SIZE + 4 * MB
    assert peak < size / 2


# -- budgets ----------------------------------------------------------------------------------


def test_the_disk_lru_evicts_the_oldest_file_and_the_evicted_model_loads_again_from_s3(
    store: CountingStore, s3_client: Any, tmp_path: Path
) -> None:
    shas = {name: put(s3_client, f"m/{name}.onnx", onnx_model(1, seed=i)) for i, name in enumerate("abc")}
    disk = tmp_path / "disk"
    cache = make_cache(store, disk, disk_max_bytes=2 * MB + MB // 2, max_bytes=2 * MB)
    for name in "abc":
        cache.get_file(f"m/{name}.onnx", load_model_file, shas[name])
    assert files_in(disk) == {shas["b"], shas["c"]}, "a's file, the least recently used, made room for c's"
    assert cache.stats.disk_evictions == 1 and cache.disk_bytes <= 2 * MB + MB // 2
    assert "m/a.onnx" not in cache  # and out of memory too (its budget holds two)
    cache.get_file("m/a.onnx", load_model_file, shas["a"])
    assert store.downloads == ["m/a.onnx", "m/b.onnx", "m/c.onnx", "m/a.onnx"], "a came back from S3"
    assert files_in(disk) == {shas["c"], shas["a"]} and cache.stats.disk_evictions == 2


def test_the_memory_lru_evicts_the_oldest_session_and_it_comes_back_from_disk(
    store: CountingStore, s3_client: Any, tmp_path: Path
) -> None:
    shas = {name: put(s3_client, f"m/{name}.onnx", onnx_model(1, seed=i)) for i, name in enumerate("ab")}
    cache = make_cache(store, tmp_path / "disk", max_bytes=MB + MB // 2)
    cache.get_file("m/a.onnx", load_model_file, shas["a"])
    cache.get_file("m/b.onnx", load_model_file, shas["b"])
    assert "m/a.onnx" not in cache and "m/b.onnx" in cache and cache.stats.evictions == 1
    assert cache.size_bytes <= MB + MB // 2
    cache.get_file("m/a.onnx", load_model_file, shas["a"])
    assert cache.stats.disk_loads == 1 and store.downloads == ["m/a.onnx", "m/b.onnx"], "no second download"


@pytest.mark.parametrize(
    ("budget", "message"),
    [({"disk_max_bytes": 2 * MB}, "it needs 3 MB of /tmp, the function has 2 MB for models"),
     ({"max_bytes": 2 * MB}, "it needs 3 MB of memory, the cache has 2 MB")],
    ids=["tmp", "memory"],
)
def test_a_file_that_cannot_fit_is_refused_before_it_downloads(
    store: CountingStore, s3_client: Any, tmp_path: Path, budget: dict[str, int], message: str
) -> None:
    sha = put(s3_client, "m/big.onnx", onnx_model(3))
    cache = make_cache(store, tmp_path / "disk", **budget)
    with pytest.raises(CapacityError) as info:
        cache.get_file("m/big.onnx", load_model_file, sha)
    assert info.value.message == message and info.value.http_status == 500
    assert "m/big.onnx" in info.value.detail and "m/big.onnx" not in info.value.message
    assert store.heads == ["m/big.onnx"] and store.fetches == [], "decided on the headers: its body never read"
    assert files_in(tmp_path / "disk") == set()


def test_a_file_being_loaded_is_never_evicted(s3_client: Any, tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    class SlowA(CountingStore):
        def download(self, key: str, out: Any, info: Any) -> Any:
            if key == "m/a.onnx":
                started.set()
                release.wait(10)
            return super().download(key, out, info)

    shas = {name: put(s3_client, f"m/{name}.onnx", onnx_model(1, seed=i)) for i, name in enumerate("ab")}
    cache = make_cache(SlowA(S3Store(BUCKET, s3_client)), tmp_path / "disk", disk_max_bytes=MB + MB // 2)
    loading = threading.Thread(target=cache.get_file, args=("m/a.onnx", load_model_file, shas["a"]))
    loading.start()
    try:
        assert started.wait(10)
        with pytest.raises(CapacityError, match="it needs 1 MB of /tmp and 1 MB are held by models loading now"):
            cache.get_file("m/b.onnx", load_model_file, shas["b"])
    finally:
        release.set()
        loading.join()
    assert files_in(tmp_path / "disk") == {shas["a"]}
    cache.get_file("m/b.onnx", load_model_file, shas["b"])  # a is loaded now: its file may go
    assert files_in(tmp_path / "disk") == {shas["b"]} and "m/a.onnx" in cache


def test_space_others_use_in_tmp_is_made_room_for_or_refused(
    store: CountingStore, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """shutil.disk_usage is the second guard: the budget allows a file, the disk does not."""
    disk = tmp_path / "disk"
    capacity = [MB + MB // 2]  # the file system's size, as disk_usage reports it

    def usage(path: Any) -> Any:
        used = sum(p.stat().st_size for p in Path(path).iterdir())
        return shutil._ntuple_diskusage(capacity[0], used, max(capacity[0] - used, 0))  # type: ignore[attr-defined]

    monkeypatch.setattr("prediction_service.storage.files.shutil.disk_usage", usage)
    shas = {name: put(s3_client, f"m/{name}.onnx", onnx_model(1, seed=i)) for i, name in enumerate("ab")}
    cache = make_cache(store, disk)
    cache.get_file("m/a.onnx", load_model_file, shas["a"])
    cache.get_file("m/b.onnx", load_model_file, shas["b"])
    assert files_in(disk) == {shas["b"]} and cache.stats.disk_evictions == 1
    capacity[0] = MB // 2
    cache.invalidate("m/a.onnx")
    with pytest.raises(CapacityError, match=r"it needs 1 MB of /tmp, 0 MB are free"):
        cache.get_file("m/a.onnx", load_model_file, shas["a"])
    assert files_in(disk) == set(), "b's file went first, and still there was no room"


def test_concurrent_requests_for_a_cold_big_model_download_it_once(
    store: CountingStore, s3_client: Any, tmp_path: Path
) -> None:
    sha = put(s3_client, "m/big.onnx", onnx_model(4))
    cache = make_cache(store, tmp_path / "disk")
    barrier = threading.Barrier(8)
    models: list[Any] = []

    def worker() -> None:
        barrier.wait()
        models.append(cache.get_file("m/big.onnx", load_model_file, sha))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(models) == 8 and all(m is models[0] for m in models)
    assert store.heads == ["m/big.onnx"] and store.downloads == ["m/big.onnx"]


# -- verification on reuse --------------------------------------------------------------------


def test_a_file_is_hashed_once_per_process(
    store: CountingStore, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written by this process: hashed as it streamed, then trusted (its size checked). Left by an
    earlier process of the environment: hashed on its first reuse, then trusted."""
    hashed: list[str] = []
    real = hashlib.file_digest

    def counting(f: Any, digest: str) -> Any:
        hashed.append(Path(f.name).name)
        return real(f, digest)

    monkeypatch.setattr("prediction_service.storage.files.hashlib.file_digest", counting)
    shas = {name: put(s3_client, f"m/{name}.onnx", onnx_model(1, seed=i)) for i, name in enumerate("ab")}
    disk = tmp_path / "disk"

    def churn(cache: ArtifactCache) -> None:  # a memory budget of one model: every other get is a reuse
        for name in "abab":
            cache.get_file(f"m/{name}.onnx", load_model_file, shas[name])

    first = make_cache(store, disk, max_bytes=MB)
    churn(first)
    assert first.stats.disk_loads == 2 and hashed == []
    second = make_cache(store, disk, max_bytes=MB)  # a new process, the same /tmp
    churn(second)
    assert second.stats.disk_loads == 4 and sorted(hashed) == sorted(shas.values())
    assert store.downloads == ["m/a.onnx", "m/b.onnx"]


def test_a_truncated_disk_copy_is_noticed_and_downloaded_again(
    store: CountingStore, s3_client: Any, tmp_path: Path
) -> None:
    shas = {name: put(s3_client, f"m/{name}.onnx", onnx_model(1, seed=i)) for i, name in enumerate("ab")}
    cache = make_cache(store, tmp_path / "disk", max_bytes=MB)  # memory for one model
    cache.get_file("m/a.onnx", load_model_file, shas["a"])
    cache.get_file("m/b.onnx", load_model_file, shas["b"])
    with (tmp_path / "disk" / shas["a"]).open("r+b") as f:
        f.truncate(1000)
    assert cache.get_file("m/a.onnx", load_model_file, shas["a"]).inputs[0].name == "x"
    assert store.downloads == ["m/a.onnx", "m/b.onnx", "m/a.onnx"] and cache.stats.disk_loads == 0


# -- settings, and the answer a caller gets ------------------------------------------------------


def test_the_tmp_budget_comes_from_the_functions_ephemeral_storage() -> None:
    assert Settings.from_env({"MODEL_BUCKET": "b"}).disk_max_bytes == (512 - 64) * MB
    assert Settings.from_env({"MODEL_BUCKET": "b", "EPHEMERAL_STORAGE_MB": "1024"}).disk_max_bytes == 960 * MB
    explicit = {"MODEL_BUCKET": "b", "EPHEMERAL_STORAGE_MB": "1024", "MODEL_DISK_MAX_BYTES": "12345"}
    assert Settings.from_env(explicit).disk_max_bytes == 12345


@pytest.mark.parametrize(
    ("variable", "message"),
    [("MODEL_DISK_MAX_BYTES", "model 'big' could not be loaded: it needs 3 MB of /tmp, the function has 2 MB"),
     ("MODEL_CACHE_MAX_BYTES", "model 'big' could not be loaded: it needs 3 MB of memory, the cache has 2 MB")],
    ids=["tmp", "memory"],
)
def test_a_model_too_big_answers_500_and_the_other_models_keep_serving(
    s3: Any, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, message: str
) -> None:
    from prediction_service.composition import components

    body = onnx_model(3)
    s3.put_object(Bucket=MODELS_BUCKET, Key="models/big.onnx", Body=body)
    manifest = yaml.safe_load(s3.get_object(Bucket=MODELS_BUCKET, Key="models/manifest.yaml")["Body"].read())
    manifest["models"].append({"name": "big", "file": "big.onnx", "sha256": hashlib.sha256(body).hexdigest()})
    s3.put_object(Bucket=MODELS_BUCKET, Key="models/manifest.yaml", Body=yaml.safe_dump(manifest).encode())
    monkeypatch.setenv(variable, str(2 * MB))
    components.cache_clear()
    v2 = load_function("inference")

    def answer(path: str) -> tuple[int, str]:
        result = v2.handler(http_event("GET", path), lambda_context())
        return result["statusCode"], json.loads(result["body"]).get("error", "")

    code, error = answer("/v2/models/big")
    assert code == 500 and error.startswith(message), error
    assert answer("/v2/models/digits")[0] == 200
    models = load_function("models")
    forecast = models.handler(http_event("GET", "/v1/models/drive_stats_a/predict"), lambda_context())
    assert forecast["statusCode"] == 200
    assert not any(p.name.startswith(".download-") for p in cache_dir.iterdir())
    assert hashlib.sha256(body).hexdigest() not in files_in(cache_dir)
