"""The artifact cache against moto's S3: hits, single flight, checksums, ETags, bounds, faults."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_s3 import in_process_s3
from prediction_service.errors import IntegrityError, ObjectNotFoundError, StoreError
from prediction_service.storage.cache import ArtifactCache
from prediction_service.storage.s3 import S3Store
from support import CountingStore

BUCKET = "cache-test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def s3() -> Iterator[Any]:
    with in_process_s3(BUCKET, publish=False) as client:
        yield client


@pytest.fixture
def store(s3: Any) -> CountingStore:
    return CountingStore(S3Store(BUCKET, s3))


def make_cache(store: CountingStore, tmp_path: Path, **overrides: Any) -> ArtifactCache:
    options: dict[str, Any] = {"max_bytes": 1 << 20, "cache_dir": tmp_path / "disk", "revalidate_seconds": 60}
    options.update(overrides)
    return ArtifactCache(store, **options)


def put(s3: Any, key: str, body: bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return hashlib.sha256(body).hexdigest()


def test_second_get_is_a_memory_hit(s3: Any, store: CountingStore, tmp_path: Path) -> None:
    sha = put(s3, "m/a.bin", b"model-a")
    cache = make_cache(store, tmp_path)
    assert cache.get("m/a.bin", bytes.upper, sha) == b"MODEL-A"
    assert cache.get("m/a.bin", bytes.upper, sha) == b"MODEL-A"
    assert len(store.fetches) == 1
    assert cache.stats.hits == 1 and cache.stats.s3_loads == 1
    assert "m/a.bin" in cache


def test_many_threads_asking_for_a_cold_key_download_it_once(s3: Any, tmp_path: Path) -> None:
    sha = put(s3, "m/cold.bin", b"x" * 1000)
    slow = CountingStore(S3Store(BUCKET, s3), delay=0.2)
    cache = make_cache(slow, tmp_path)
    parses = []
    barrier = threading.Barrier(16)
    results: list[bytes] = []

    def parse(raw: bytes) -> bytes:
        parses.append(1)
        return raw

    def worker() -> None:
        barrier.wait()
        results.append(cache.get("m/cold.bin", parse, sha))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and all(r == b"x" * 1000 for r in results)
    assert len(slow.fetches) == 1 and len(parses) == 1


def test_waiting_threads_get_the_leaders_error_and_nothing_is_cached(s3: Any, tmp_path: Path) -> None:
    slow = CountingStore(S3Store(BUCKET, s3), delay=0.2)
    cache = make_cache(slow, tmp_path)
    errors: list[Exception] = []

    def worker() -> None:
        try:
            cache.get("m/missing.bin", bytes, "0" * 64)
        except ObjectNotFoundError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8 and slow.heads == ["m/missing.bin"] and not slow.fetches
    assert "m/missing.bin" not in cache


def test_checksum_mismatch_is_refused_and_not_cached(s3: Any, store: CountingStore, tmp_path: Path) -> None:
    good = put(s3, "m/a.bin", b"tampered bytes")
    cache = make_cache(store, tmp_path)
    with pytest.raises(IntegrityError, match="sha256"):
        cache.get("m/a.bin", bytes, hashlib.sha256(b"original bytes").hexdigest())
    assert "m/a.bin" not in cache and cache.size_bytes == 0
    assert not any((tmp_path / "disk").glob("*")), "a refused file must not be kept on disk"
    assert cache.get("m/a.bin", bytes, good) == b"tampered bytes"  # the manifest's checksum decides


def test_parse_failure_becomes_integrity_error_and_is_not_cached(s3: Any, store: CountingStore, tmp_path: Path) -> None:
    sha = put(s3, "m/bad.onnx", b"not onnx")
    cache = make_cache(store, tmp_path)

    def parse(raw: bytes) -> None:
        raise ValueError("cannot parse")

    with pytest.raises(IntegrityError, match="could not be parsed") as info:
        cache.get("m/bad.onnx", parse, sha)
    assert "m/bad.onnx" in info.value.detail and "m/bad.onnx" not in info.value.message
    assert "m/bad.onnx" not in cache


def test_etag_change_reloads_an_unpinned_key_after_the_revalidation_period(
    s3: Any, store: CountingStore, tmp_path: Path
) -> None:
    clock = Clock()
    cache = make_cache(store, tmp_path, clock=clock, revalidate_seconds=60)
    put(s3, "m/manifest.yaml", b"v1")
    assert cache.get("m/manifest.yaml", bytes) == b"v1"
    put(s3, "m/manifest.yaml", b"v2")
    clock.now += 30
    assert cache.get("m/manifest.yaml", bytes) == b"v1"  # still within the period: no S3 call
    assert len(store.fetches) == 1
    clock.now += 31
    assert cache.get("m/manifest.yaml", bytes) == b"v2"
    assert store.fetches[-1][1] is not None, "revalidation must be a conditional GET"


def test_unchanged_etag_is_a_cheap_revalidation(s3: Any, store: CountingStore, tmp_path: Path) -> None:
    clock = Clock()
    cache = make_cache(store, tmp_path, clock=clock)
    put(s3, "m/manifest.yaml", b"v1")
    parses: list[bytes] = []
    cache.get("m/manifest.yaml", lambda raw: parses.append(raw) or raw)
    clock.now += 61
    assert cache.get("m/manifest.yaml", lambda raw: parses.append(raw) or raw) == b"v1"
    assert len(parses) == 1 and len(store.fetches) == 2 and store.fetches[-1][1] is not None


def test_stale_copy_is_served_when_s3_fails(s3: Any, store: CountingStore, tmp_path: Path) -> None:
    clock = Clock()
    cache = make_cache(store, tmp_path, clock=clock)
    put(s3, "m/manifest.yaml", b"v1")
    cache.get("m/manifest.yaml", bytes)
    store.fail = StoreError("could not reach S3")
    clock.now += 61
    assert cache.get("m/manifest.yaml", bytes) == b"v1"
    assert cache.stats.stale_served == 1


def test_a_new_copy_that_does_not_parse_leaves_the_cached_one_serving_with_back_off(
    s3: Any, store: CountingStore, tmp_path: Path
) -> None:
    """Bug a: a manifest that breaks its schema once in S3 must not take every route down, nor
    be fetched again on every request."""
    from prediction_service.errors import ManifestError

    def parse(raw: bytes) -> bytes:
        if raw != b"v1":
            raise ManifestError("it is not a valid manifest", detail=f"schema error in {raw!r}")
        return raw

    clock = Clock()
    cache = make_cache(store, tmp_path, clock=clock)
    put(s3, "m/manifest.yaml", b"v1")
    cache.get("m/manifest.yaml", parse)
    put(s3, "m/manifest.yaml", b"broken")
    clock.now += 61
    assert cache.get("m/manifest.yaml", parse) == b"v1"
    fetches = len(store.fetches)
    for _ in range(5):
        assert cache.get("m/manifest.yaml", parse) == b"v1"
    assert len(store.fetches) == fetches, "within the back-off period S3 is not asked again"
    assert cache.stats.stale_served == 1
    put(s3, "m/manifest.yaml", b"v1")
    clock.now += 61
    assert cache.get("m/manifest.yaml", parse) == b"v1" and len(store.fetches) == fetches + 1


def test_a_cold_load_fails_cleanly_when_s3_fails(store: CountingStore, tmp_path: Path) -> None:
    store.fail = StoreError("could not reach S3")
    cache = make_cache(store, tmp_path)
    with pytest.raises(StoreError):
        cache.get("m/a.bin", bytes, "0" * 64)
    assert "m/a.bin" not in cache


def test_memory_stays_within_its_byte_bound_and_evicted_entries_return_from_disk(
    s3: Any, store: CountingStore, tmp_path: Path
) -> None:
    cache = make_cache(store, tmp_path, max_bytes=250)
    shas = {f"m/{i}.bin": put(s3, f"m/{i}.bin", bytes([i]) * 100) for i in range(5)}
    for key, sha in shas.items():
        cache.get(key, bytes, sha)
        assert cache.size_bytes <= 250
    assert cache.stats.evictions == 3
    assert "m/0.bin" not in cache and "m/4.bin" in cache
    assert cache.get("m/0.bin", bytes, shas["m/0.bin"]) == bytes([0]) * 100
    assert cache.stats.disk_loads == 1 and len(store.fetches) == 5


def test_a_corrupt_disk_copy_is_discarded_and_downloaded_again(
    s3: Any, store: CountingStore, tmp_path: Path
) -> None:
    sha = put(s3, "m/a.bin", b"model-a")
    make_cache(store, tmp_path).get("m/a.bin", bytes, sha)
    (tmp_path / "disk" / sha).write_bytes(b"garbage")
    assert make_cache(store, tmp_path).get("m/a.bin", bytes, sha) == b"model-a"
    assert len(store.fetches) == 2


def test_a_new_checksum_in_the_manifest_loads_the_new_file(s3: Any, store: CountingStore, tmp_path: Path) -> None:
    cache = make_cache(store, tmp_path)
    old = put(s3, "m/a.bin", b"version 1")
    assert cache.get("m/a.bin", bytes, old) == b"version 1"
    new = put(s3, "m/a.bin", b"version 2")
    assert cache.get("m/a.bin", bytes, new) == b"version 2"
    assert cache.size_bytes == len(b"version 2")
