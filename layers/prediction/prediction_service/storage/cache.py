"""A process-wide cache of parsed artifacts (ONNX sessions, tables, the manifest).

- Memory: an LRU of parsed artifacts bounded by `max_bytes`, each counted at the size of its
  file (an ONNX session holds about its file's size once built: 100 MB for a 90 MB file, measured).
- Disk: every checksummed file under `cache_dir` (Lambda's /tmp), named by its sha256, in an
  LRU bounded by `disk_max_bytes`, so an entry evicted from memory comes back without a
  download while the execution environment lives. Only files this cache wrote or verified
  count, and a file being downloaded, verified or opened is never evicted;
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
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prediction_service.errors import CapacityError, IntegrityError, PredictionError, StoreError
from prediction_service.settings import DEFAULT_DISK_MAX_BYTES, MB
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
class _Entry:
    value: Any
    etag: str
    sha256: str
    size: int
    checked_at: float


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
        self._max_bytes = max_bytes
        self._dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "model-cache"
        self._disk_max_bytes = disk_max_bytes
        self._stream_threshold = stream_threshold
        self._revalidate_seconds = revalidate_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, Future[Any]] = {}
        self._bytes = 0
        # /tmp: sha256 -> size of the files this process wrote or verified, least recently used first.
        self._files: OrderedDict[str, int] = OrderedDict()
        self._disk_bytes = 0
        self._reserved = 0  # bytes of /tmp promised to downloads in flight
        self._busy: Counter[str] = Counter()  # sha256 -> loads downloading, verifying or opening it now
        self.stats = CacheStats()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

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
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.checked_at = float("-inf")

    def invalidate(self, key: str, sha256: str | None = None) -> None:
        """Forget `key` in memory and its disk copy, so the next `get` downloads it again (a copy
        a load is reading right now stays: that load is as fresh as a new download)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry.size
            for digest in {sha256, entry.sha256 if entry else None} - {None}:
                if not self._busy[str(digest)]:
                    self._delete_file(str(digest))

    # -- internals -------------------------------------------------------------------

    def _single_flight(self, key: str, sha256: str | None, load: Callable[[_Entry | None], T]) -> T:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._is_fresh(entry, sha256):
                self._entries.move_to_end(key)
                if entry.sha256 in self._files:
                    self._files.move_to_end(entry.sha256)  # a model in use keeps its file recent too
                self.stats.hits += 1
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

    def _is_fresh(self, entry: _Entry, sha256: str | None) -> bool:
        if sha256 is not None:
            return entry.sha256 == sha256
        return self._clock() - entry.checked_at < self._revalidate_seconds

    # -- unpinned keys: in memory, revalidated by ETag --------------------------------

    def _load_unpinned(self, key: str, parse: Callable[[bytes], T], entry: _Entry | None) -> T:
        if entry is not None:
            return self._revalidate(key, parse, entry)
        started = time.perf_counter()
        obj = self._store.fetch(key)
        if obj is None:
            raise StoreError("S3 answered 'not modified' to an unconditional GET", detail=key)
        value = self._admit_bytes(key, obj, parse)
        self._count_s3_load(key, started)
        return value

    def _revalidate(self, key: str, parse: Callable[[bytes], T], entry: _Entry) -> T:
        try:
            obj = self._store.fetch(key, if_none_match=entry.etag)
            if obj is None:
                entry.checked_at = self._clock()
                return entry.value
            return self._admit_bytes(key, obj, parse)
        except PredictionError as exc:
            logger.warning("serving cached %s: could not revalidate it: %s", key, exc.detail)
            self.stats.stale_served += 1
            # Back off for one revalidation period instead of retrying on every request.
            entry.checked_at = self._clock()
            return entry.value

    def _admit_bytes(self, key: str, obj: StoredObject, parse: Callable[[bytes], T]) -> T:
        value = _parse(key, lambda: parse(obj.body))
        return self._remember(key, value, obj.etag, hashlib.sha256(obj.body).hexdigest(), len(obj.body))

    # -- pinned keys: files under cache_dir ------------------------------------------

    def _load_pinned(self, key: str, open_file: Callable[[Path], T], sha256: str) -> T:
        path = self._dir / sha256
        with self._pinned(sha256):
            size = self._disk_copy(sha256)
            if size is not None:
                self._check_memory(key, size)
                try:
                    value = self._open(key, path, open_file, size)
                except PredictionError as exc:
                    logger.warning("discarding the disk copy of %s (%s): %s", key, sha256[:12], exc.detail)
                    self._drop_file(sha256)
                else:
                    self.stats.disk_loads += 1
                    return self._remember(key, value, "", sha256, size)
            started = time.perf_counter()
            first = self._store.fetch_small(key, self._stream_threshold)
            info = first if isinstance(first, ObjectInfo) else ObjectInfo(len(first.body), first.etag)
            self._check_memory(key, info.size)
            got = self._download(key, sha256, info, first if isinstance(first, StoredObject) else None)
            try:
                value = self._open(key, path, open_file, got.size)
            except PredictionError:
                self._drop_file(sha256)  # verified, yet it does not open: keep nothing of it
                raise
            self._count_s3_load(key, started)
            return self._remember(key, value, info.etag, sha256, got.size)

    def _download(self, key: str, sha256: str, info: ObjectInfo, fetched: StoredObject | None) -> Streamed:
        """The file at `<cache_dir>/<sha256>`, checked against the manifest's sha256 as it arrived:
        written from `fetched` (a small file, already read), else streamed from S3."""
        self._reserve_disk(key, info.size)
        temporary: Path | None = None
        try:
            fd, name = tempfile.mkstemp(dir=self._dir, prefix=".download-")
            temporary = Path(name)
            with os.fdopen(fd, "wb") as out:
                if fetched is not None:
                    writer = HashingWriter(out)
                    writer.write(fetched.body)
                    got = writer.result()
                else:
                    got = self._store.download(key, out, info)
            if got.sha256 != sha256:
                raise IntegrityError(
                    "the downloaded file's sha256 does not match the manifest",
                    detail=f"{key} has sha256 {got.sha256[:12]}..., the manifest expects {sha256[:12]}...",
                )
            os.replace(temporary, self._dir / sha256)
            temporary = None
            with self._lock:
                self._add_file(sha256, got.size)
            return got
        except OSError as exc:
            raise PredictionError(
                f"the file could not be written to /tmp ({exc.strerror or type(exc).__name__})",
                detail=f"{key}: writing under {self._dir}: {exc}",
            ) from exc
        finally:
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            with self._lock:
                self._reserved -= info.size

    def _open(self, key: str, path: Path, open_file: Callable[[Path], T], size: int) -> T:
        self._make_room(size)
        return _parse(key, lambda: open_file(path))

    def _disk_copy(self, sha256: str) -> int | None:
        """The size of a usable copy of the file in /tmp, or None (the caller has it pinned)."""
        path = self._dir / sha256
        try:
            actual = path.stat().st_size
        except OSError:
            actual = None
        with self._lock:
            known = self._files.get(sha256)
            if known is not None and known == actual:
                self._files.move_to_end(sha256)
                return known
            if known is not None:  # gone, or changed under us: forget it
                self._delete_file(sha256)
                return None
        if actual is None:
            return None
        try:  # left by an earlier process: hashed once, then trusted
            with path.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            return None
        if digest != sha256:
            logger.warning("discarding corrupt disk copy %s", sha256[:12])
            path.unlink(missing_ok=True)
            return None
        with self._lock:
            self._add_file(sha256, actual)
        return actual

    # -- budgets ---------------------------------------------------------------------

    def _check_memory(self, key: str, size: int) -> None:
        """Refuse a file larger than the memory budget (compared in the whole MB the message gives)."""
        if _mb(size) > _mb(self._max_bytes):
            raise CapacityError(
                f"it needs {_mb(size)} MB of memory, the cache has {_mb(self._max_bytes)} MB",
                detail=f"{key} has {size} bytes; MODEL_CACHE_MAX_BYTES is {self._max_bytes}",
            )

    def _make_room(self, size: int) -> None:
        """Evict least recently used entries from memory before a new one of `size` is built."""
        with self._lock:
            for key in list(self._entries):
                if self._bytes + size <= self._max_bytes:
                    break
                self._bytes -= self._entries.pop(key).size
                self.stats.evictions += 1

    def _reserve_disk(self, key: str, size: int) -> None:
        """Room in /tmp for a download of `size` bytes, evicting least recently used files
        that nothing is reading; refused when the file cannot fit (the caller releases it)."""
        if _mb(size) > _mb(self._disk_max_bytes):
            raise CapacityError(
                f"it needs {_mb(size)} MB of /tmp, the function has {_mb(self._disk_max_bytes)} MB for models",
                detail=f"{key} has {size} bytes; MODEL_DISK_MAX_BYTES is {self._disk_max_bytes}",
            )
        with self._lock:
            while self._disk_bytes + self._reserved + size > self._disk_max_bytes and self._disk_bytes + self._reserved:
                if not self._evict_file():
                    held = _mb(self._disk_bytes + self._reserved)
                    raise CapacityError(
                        f"it needs {_mb(size)} MB of /tmp and {held} MB are held by models loading now",
                        detail=f"{key} has {size} bytes; files in use: {sorted(self._busy)}",
                    )
            self._reserved += size
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            while (free := shutil.disk_usage(self._dir).free) < size:
                with self._lock:
                    evicted = self._evict_file()
                if not evicted:
                    raise CapacityError(
                        f"it needs {_mb(size)} MB of /tmp, {free // MB} MB are free",
                        detail=f"{key} has {size} bytes; {self._dir} has {free} bytes free",
                    )
        except BaseException:
            with self._lock:
                self._reserved -= size
            raise

    def _evict_file(self) -> bool:
        """Delete the least recently used file nothing is using (caller holds the lock)."""
        for digest in self._files:
            if not self._busy[digest]:
                logger.info("removing %s (%d bytes) from %s to make room", digest[:12], self._files[digest], self._dir)
                self._delete_file(digest)
                self.stats.disk_evictions += 1
                return True
        return False

    # -- bookkeeping -----------------------------------------------------------------

    @contextmanager
    def _pinned(self, sha256: str) -> Iterator[None]:
        with self._lock:
            self._busy[sha256] += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[sha256] -= 1
                if not self._busy[sha256]:
                    del self._busy[sha256]

    def _add_file(self, sha256: str, size: int) -> None:
        """Count a verified file under its name (caller holds the lock)."""
        self._disk_bytes += size - self._files.pop(sha256, 0)
        self._files[sha256] = size

    def _delete_file(self, sha256: str) -> None:
        """Delete a file and forget it (caller holds the lock)."""
        self._disk_bytes -= self._files.pop(sha256, 0)
        (self._dir / sha256).unlink(missing_ok=True)

    def _drop_file(self, sha256: str) -> None:
        with self._lock:
            self._delete_file(sha256)

    def _remember(self, key: str, value: T, etag: str, sha256: str, size: int) -> T:
        entry = _Entry(value, etag, sha256, size, self._clock())
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = entry
            self._bytes += entry.size
            self._evict(keep=key)
        return value

    def _evict(self, keep: str) -> None:
        """Drop least recently used entries until within the byte bound (caller holds the lock)."""
        for key in list(self._entries):
            if self._bytes <= self._max_bytes:
                break
            if key == keep:
                continue
            self._bytes -= self._entries.pop(key).size
            self.stats.evictions += 1

    def _count_s3_load(self, key: str, started: float) -> None:
        self.stats.s3_loads += 1
        self.stats.load_seconds[key] = self.stats.load_seconds.get(key, 0.0) + time.perf_counter() - started


def _parse(key: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except PredictionError:
        raise
    except Exception as exc:
        raise IntegrityError(f"the file could not be parsed ({type(exc).__name__})", detail=f"{key}: {exc}") from exc


def _mb(size: int) -> int:
    """Whole MB, rounded up: the figure a capacity message gives."""
    return -(-size // MB)
