"""A process-wide cache of parsed artifacts (ONNX sessions, tables, the manifest).

- Memory: an LRU of parsed artifacts bounded by `max_bytes`, each counted at the size of its
  file (`memory.MemoryLRU`).
- Disk: every checksummed file under `cache_dir` (Lambda's /tmp), named by its sha256, in an
  LRU bounded by `disk_max_bytes`, so an entry evicted from memory comes back without a
  download while the execution environment lives (`files.FileLRU`). Only files this cache
  wrote or verified count, and a file being downloaded, verified or opened is never evicted;
  `shutil.disk_usage` guards against space that others use.
- Loading a pinned file: one GET (`ObjectStore.fetch_small`) brings a file smaller than
  `stream_threshold` whole; for a larger one its headers give the size and its body is left
  unread. A file that cannot fit the memory or the /tmp budget is refused before its body
  downloads (`CapacityError`: "it needs N MB of /tmp, the function has M MB for models"). Large
  files stream into a temporary file with their sha256 computed on the way
  (`ObjectStore.download`: parallel ranged GETs). The file takes its sha256 as its name only once the
  digest matches the manifest; a failed, corrupt or refused download leaves nothing behind.
  `get_file` hands the parser the file's path (an ONNX session is built from the file, so the
  model's bytes are never all in Python memory); `get` hands it the bytes (small files).
- Verification: a file is hashed once per process: as it streams from S3, or, for a copy this
  process did not write (left in /tmp by an earlier process of the environment), the first time
  it is reused. Later reuses check its size only: re-hashing a 400 MB file would cost a full
  read on every load. A copy that no longer opens is deleted and downloaded again.
- Single flight: however many threads ask for the same key, one loads it and the
  others wait for that result.
- Pinned keys (the caller passes the sha256 the manifest expects) are valid for as
  long as the manifest names that checksum. Unpinned keys (the manifest itself) are
  fetched into memory and revalidated with a conditional GET (If-None-Match on the ETag)
  once they are older than `revalidate_seconds`.
- Stale if error: when revalidation fails (S3 fails, or the new bytes do not verify or
  parse, as a manifest that breaks its schema), the cached value is served, a warning
  logged, and the next try waits one revalidation period. A failed load is never cached.

Locks: the cache's own guards the loads in flight and its counters; the memory LRU and the
/tmp files each have theirs. The cache's may be held while taking either of the others (so
that looking a key up and joining its load in flight are one step), never the other way round.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from prediction_service.errors import CapacityError, IntegrityError, PredictionError, StoreError
from prediction_service.settings import DEFAULT_DISK_MAX_BYTES
from prediction_service.storage.files import FileLRU, whole_mb
from prediction_service.storage.memory import Entry, MemoryLRU
from prediction_service.storage.s3 import (
    STREAM_THRESHOLD,
    HashingWriter,
    ObjectInfo,
    ObjectStore,
    StoredObject,
    Streamed,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass
class CacheStats:
    hits: int = 0
    s3_loads: int = 0
    disk_loads: int = 0
    stale_served: int = 0
    evictions: int = 0  # from memory (the CacheEvictions metric)
    disk_evictions: int = 0  # files deleted from /tmp to make room
    load_seconds: dict[str, float] = field(default_factory=dict)  # key -> total seconds spent loading it


class ArtifactCache:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_bytes: int,
        cache_dir: str | os.PathLike[str] | None,
        revalidate_seconds: float,
        disk_max_bytes: int = DEFAULT_DISK_MAX_BYTES,
        stream_threshold: int = STREAM_THRESHOLD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._memory = MemoryLRU(max_bytes)
        directory = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "model-cache"
        self._files = FileLRU(directory, disk_max_bytes)
        self._stream_threshold = stream_threshold
        self._revalidate_seconds = revalidate_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[Any]] = {}
        self._counts = CacheStats()  # but evictions, which the two LRUs count

    @property
    def stats(self) -> CacheStats:
        """The counters so far (a copy)."""
        with self._lock:
            return replace(
                self._counts,
                evictions=self._memory.evictions,
                disk_evictions=self._files.evictions,
                load_seconds=dict(self._counts.load_seconds),
            )

    @property
    def size_bytes(self) -> int:
        return self._memory.size_bytes

    @property
    def disk_bytes(self) -> int:
        return self._files.size_bytes

    @property
    def reserved_bytes(self) -> int:
        """The bytes of /tmp promised to downloads in flight."""
        return self._files.reserved_bytes

    @property
    def loads_in_flight(self) -> int:
        """How many keys are loading now."""
        with self._lock:
            return len(self._inflight)

    def books_balance(self) -> bool:
        """Whether the bytes the memory and /tmp LRUs count are the sums of their entries' sizes."""
        return self._memory.books_balance() and self._files.books_balance()

    def __contains__(self, key: str) -> bool:
        return key in self._memory

    def get(self, key: str, parse: Callable[[bytes], T], sha256: str | None = None) -> T:
        """The parsed artifact at `key`, loading it at most once at a time. Pinned by `sha256`,
        it comes through /tmp like any model file and `parse` gets the verified file's bytes."""
        if sha256 is None:
            return self._single_flight(key, None, lambda entry: self._load_unpinned(key, parse, entry))
        return self.get_file(key, lambda path: parse(path.read_bytes()), sha256)

    def get_file(self, key: str, open_file: Callable[[Path], T], sha256: str) -> T:
        """The artifact at `key` as `open_file` builds it from the path of the verified file."""
        return self._single_flight(key, sha256, lambda _: self._load_pinned(key, open_file, sha256))

    def expire(self, key: str) -> None:
        """Make the next `get` of an unpinned key revalidate it (a conditional GET) whatever its
        age: the copy stays, and serves again if S3 answers 'not modified' (or fails)."""
        entry = self._memory.get(key)
        if entry is not None:
            entry.checked_at = float("-inf")

    def invalidate(self, key: str, sha256: str | None = None) -> None:
        """Forget `key` in memory and its disk copy, so the next `get` downloads it again (a copy
        a load is reading right now stays: that load is as fresh as a new download)."""
        entry = self._memory.pop(key)
        for digest in {sha256, entry.sha256 if entry else None} - {None}:
            self._files.delete_unless_in_use(str(digest))

    # -- internals -------------------------------------------------------------------

    def _single_flight(self, key: str, sha256: str | None, load: Callable[[Entry | None], T]) -> T:
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None and self._is_fresh(entry, sha256):
                self._memory.touch(key)
                self._files.touch(entry.sha256)  # a model in use keeps its file recent too
                self._counts.hits += 1
                return entry.value
            flight = self._inflight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._inflight[key] = Future()
        if not leader:
            return flight.result()
        try:
            value = load(entry)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            with self._lock:
                del self._inflight[key]

    def _is_fresh(self, entry: Entry, sha256: str | None) -> bool:
        if sha256 is not None:
            return entry.sha256 == sha256
        return self._clock() - entry.checked_at < self._revalidate_seconds

    # -- unpinned keys: in memory, revalidated by ETag --------------------------------

    def _load_unpinned(self, key: str, parse: Callable[[bytes], T], entry: Entry | None) -> T:
        if entry is not None:
            return self._revalidate(key, parse, entry)
        started = time.perf_counter()
        obj = self._store.fetch(key)
        if obj is None:
            raise StoreError("S3 answered 'not modified' to an unconditional GET", detail=key)
        value = self._admit_bytes(key, obj, parse)
        self._count_s3_load(key, started)
        return value

    def _revalidate(self, key: str, parse: Callable[[bytes], T], entry: Entry) -> T:
        try:
            obj = self._store.fetch(key, if_none_match=entry.etag)
            if obj is None:
                entry.checked_at = self._clock()
                return entry.value
            return self._admit_bytes(key, obj, parse)
        except PredictionError as exc:
            logger.warning("serving cached %s: could not revalidate it: %s", key, exc.detail)
            with self._lock:
                self._counts.stale_served += 1
            # Back off for one revalidation period instead of retrying on every request.
            entry.checked_at = self._clock()
            return entry.value

    def _admit_bytes(self, key: str, obj: StoredObject, parse: Callable[[bytes], T]) -> T:
        value = _parse(key, lambda: parse(obj.body))
        return self._remember(key, value, obj.etag, hashlib.sha256(obj.body).hexdigest(), len(obj.body))

    # -- pinned keys: files under cache_dir ------------------------------------------

    def _load_pinned(self, key: str, open_file: Callable[[Path], T], sha256: str) -> T:
        path = self._files.path(sha256)
        with self._files.in_use(sha256):
            size = self._files.verified_size(sha256)
            if size is not None:
                self._check_memory(key, size)
                try:
                    value = self._open(key, path, open_file, size)
                except PredictionError as exc:
                    logger.warning("discarding the disk copy of %s (%s): %s", key, sha256[:12], exc.detail)
                    self._files.delete(sha256)
                else:
                    with self._lock:
                        self._counts.disk_loads += 1
                    return self._remember(key, value, "", sha256, size)
            started = time.perf_counter()
            first = self._store.fetch_small(key, self._stream_threshold)
            info = first if isinstance(first, ObjectInfo) else ObjectInfo(len(first.body), first.etag)
            self._check_memory(key, info.size)
            got = self._download(key, sha256, info, first if isinstance(first, StoredObject) else None)
            try:
                value = self._open(key, path, open_file, got.size)
            except PredictionError:
                self._files.delete(sha256)  # verified, yet it does not open: keep nothing of it
                raise
            self._count_s3_load(key, started)
            return self._remember(key, value, info.etag, sha256, got.size)

    def _download(self, key: str, sha256: str, info: ObjectInfo, fetched: StoredObject | None) -> Streamed:
        """The file at `<cache_dir>/<sha256>`, checked against the manifest's sha256 as it arrived:
        written from `fetched` (a small file, already read), else streamed from S3."""

        def write(out: BinaryIO) -> Streamed:
            if fetched is None:
                return self._store.download(key, out, info)
            writer = HashingWriter(out)
            writer.write(fetched.body)
            return writer.result()

        return self._files.write_verified(key, sha256, info.size, write)

    def _open(self, key: str, path: Path, open_file: Callable[[Path], T], size: int) -> T:
        self._memory.make_room(size)
        return _parse(key, lambda: open_file(path))

    def _check_memory(self, key: str, size: int) -> None:
        """Refuse a file larger than the memory budget (compared in the whole MB the message gives)."""
        budget = self._memory.max_bytes
        if whole_mb(size) > whole_mb(budget):
            raise CapacityError(
                f"it needs {whole_mb(size)} MB of memory, the cache has {whole_mb(budget)} MB",
                detail=f"{key} has {size} bytes; MODEL_CACHE_MAX_BYTES is {budget}",
            )

    # -- bookkeeping -----------------------------------------------------------------

    def _remember(self, key: str, value: T, etag: str, sha256: str, size: int) -> T:
        self._memory.put(key, Entry(value, etag, sha256, size, self._clock()))
        return value

    def _count_s3_load(self, key: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        with self._lock:
            self._counts.s3_loads += 1
            self._counts.load_seconds[key] = self._counts.load_seconds.get(key, 0.0) + elapsed


def _parse(key: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except PredictionError:
        raise
    except Exception as exc:
        raise IntegrityError(f"the file could not be parsed ({type(exc).__name__})", detail=f"{key}: {exc}") from exc
