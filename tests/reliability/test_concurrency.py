"""Concurrency: one download per cold model under many threads, the byte bound under churn,
and the cache's shared state consistent after concurrent loads, evictions and invalidations."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from local_s3 import in_process_s3
from prediction_service.composition import build_components
from prediction_service.protocols.v1.schemas import PredictRequest
from prediction_service.settings import Settings
from prediction_service.storage.cache import ArtifactCache
from prediction_service.storage.s3 import S3Store
from support import BUCKET as BUCKET_OF_MODELS
from support import CountingStore

BUCKET = "churn-test"


def test_many_threads_predicting_with_cold_models_download_each_once(s3: Any) -> None:
    store = CountingStore(S3Store(BUCKET_OF_MODELS, s3))
    service = build_components(Settings.from_env(), store=store).service
    names = ["drive_stats_a", "drive_stats_b"] * 16
    with ThreadPoolExecutor(max_workers=16) as pool:
        predictions = list(pool.map(lambda n: service.predict(n, PredictRequest(), time.perf_counter()), names))
    assert all(p.value.status.value == "Success" for p in predictions)
    fetched = [key for key, _ in store.fetches]
    models = [k for k in fetched if k.endswith(".onnx")]
    assert sorted(models) == ["models/drive_stats_a.onnx", "models/drive_stats_b.onnx"]
    assert fetched.count("models/data/drive_stats_daily.csv") == 1


def test_churn_keeps_the_cache_within_its_bound_and_its_books_balanced(tmp_path: Any) -> None:
    with in_process_s3(BUCKET, publish=False) as client:
        objects = {}
        for i in range(12):
            body = bytes([i]) * (100 + 10 * i)
            client.put_object(Bucket=BUCKET, Key=f"k/{i}", Body=body)
            objects[f"k/{i}"] = (hashlib.sha256(body).hexdigest(), body)
        cache = ArtifactCache(S3Store(BUCKET, client), max_bytes=600, cache_dir=tmp_path, revalidate_seconds=60)
        errors: list[BaseException] = []
        peak = 0

        def churn(seed: int) -> None:
            nonlocal peak
            rng = random.Random(seed)
            for _ in range(150):
                key = rng.choice(list(objects))
                sha, body = objects[key]
                try:
                    if rng.random() < 0.1:
                        cache.invalidate(key)
                    else:
                        assert cache.get(key, bytes, sha) == body
                    peak = max(peak, cache.size_bytes)
                except BaseException as exc:  # collected, so a failing thread fails the test
                    errors.append(exc)

        threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert peak <= 600
        assert cache.size_bytes <= 600
        assert cache.books_balance(), "the bytes counted are the sum of the entries' and the files' sizes"
        assert cache.loads_in_flight == 0 and cache.reserved_bytes == 0
        assert cache.stats.evictions > 0 and cache.stats.disk_loads > 0


@pytest.mark.parametrize("threads", [8])
def test_feature_table_index_is_built_once_under_concurrent_lookups(threads: int) -> None:
    from prediction_service.storage.tables import Table

    table = Table.parse(b"user_id,a\n" + b"".join(f"{i},{i / 2}\n".encode() for i in range(1, 2001)))
    barrier = threading.Barrier(threads)
    results: list[list[float]] = []

    def lookup() -> None:
        barrier.wait()
        results.append(table.rows_for_ids("user_id", [1, 1000, 2000], ("a",))[:, 0].tolist())

    workers = [threading.Thread(target=lookup) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == [[0.5, 500.0, 1000.0]] * threads
    assert len(table._indexes) == 1
