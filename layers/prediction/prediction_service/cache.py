"""A process-wide cache of parsed artifacts (ONNX sessions, tables, the manifest).

- Memory: an LRU bounded by the bytes of the downloaded files.
- Disk: a copy of every checksummed file under `cache_dir` (Lambda's /tmp), named
  by its sha256 and verified again when read, so an entry evicted from memory
  comes back without a download while the execution environment lives.
- Single flight: however many threads ask for the same key, one loads it and the
  others wait for that result.
- Pinned keys (the caller passes the sha256 the manifest expects) are valid for as
  long as the manifest names that checksum. Unpinned keys (the manifest itself)
  are revalidated with a conditional GET (If-None-Match on the ETag) once they
  are older than `revalidate_seconds`.
- Stale if error: when revalidation fails (S3 fails, or the new bytes do not verify or
  parse, as a manifest that breaks its schema), the cached value is served, a warning
  logged, and the next try waits one revalidation period. A failed load is never cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import IntegrityError, PredictionError, StoreError
from .store import ObjectStore, StoredObject

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
    evictions: int = 0
    load_seconds: dict[str, float] = field(default_factory=dict)  # key -> total seconds spent loading it


class ArtifactCache:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_bytes: int,
        cache_dir: str | os.PathLike[str] | None,
        revalidate_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._dir = Path(cache_dir) if cache_dir else None
        self._revalidate_seconds = revalidate_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, Future[Any]] = {}
        self._bytes = 0
        self.stats = CacheStats()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: str, parse: Callable[[bytes], T], sha256: str | None = None) -> T:
        """The parsed artifact at `key`, loading it at most once at a time."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._is_fresh(entry, sha256):
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return entry.value
            flight = self._inflight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._inflight[key] = Future()
        if not leader:
            return flight.result()
        try:
            value = self._load(key, parse, sha256, entry)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            with self._lock:
                del self._inflight[key]

    def invalidate(self, key: str, sha256: str | None = None) -> None:
        """Forget `key` in memory and its disk copy, so the next `get` downloads it again."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry.size
        for digest in {sha256, entry.sha256 if entry else None} - {None}:
            if self._dir is not None:
                (self._dir / str(digest)).unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------

    def _is_fresh(self, entry: _Entry, sha256: str | None) -> bool:
        if sha256 is not None:
            return entry.sha256 == sha256
        return self._clock() - entry.checked_at < self._revalidate_seconds

    def _load(self, key: str, parse: Callable[[bytes], T], sha256: str | None, entry: _Entry | None) -> T:
        if entry is not None and sha256 is None:
            return self._revalidate(key, parse, entry)
        if sha256 is not None:
            body = self._read_disk(sha256)
            if body is not None:
                self.stats.disk_loads += 1
                return self._admit(key, StoredObject(body, etag=""), parse, sha256).value
        started = time.perf_counter()
        obj = self._store.fetch(key)
        if obj is None:
            raise StoreError("S3 answered 'not modified' to an unconditional GET", detail=key)
        value = self._admit(key, obj, parse, sha256).value
        self.stats.s3_loads += 1
        self.stats.load_seconds[key] = self.stats.load_seconds.get(key, 0.0) + time.perf_counter() - started
        return value

    def _revalidate(self, key: str, parse: Callable[[bytes], T], entry: _Entry) -> T:
        try:
            obj = self._store.fetch(key, if_none_match=entry.etag)
            if obj is None:
                entry.checked_at = self._clock()
                return entry.value
            return self._admit(key, obj, parse, None).value
        except PredictionError as exc:
            logger.warning("serving cached %s: could not revalidate it: %s", key, exc.detail)
            self.stats.stale_served += 1
            # Back off for one revalidation period instead of retrying on every request.
            entry.checked_at = self._clock()
            return entry.value

    def _admit(self, key: str, obj: StoredObject, parse: Callable[[bytes], T], sha256: str | None) -> _Entry:
        digest = hashlib.sha256(obj.body).hexdigest()
        if sha256 is not None and digest != sha256:
            raise IntegrityError(
                "the downloaded file's sha256 does not match the manifest",
                detail=f"{key} has sha256 {digest[:12]}..., the manifest expects {sha256[:12]}...",
            )
        try:
            value = parse(obj.body)
        except PredictionError:
            raise
        except Exception as exc:
            raise IntegrityError(f"the file could not be parsed ({type(exc).__name__})", detail=f"{key}: {exc}") from exc
        if sha256 is not None:
            self._write_disk(sha256, obj.body)
        entry = _Entry(value, obj.etag, digest, len(obj.body), self._clock())
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = entry
            self._bytes += entry.size
            self._evict(keep=key)
        return entry

    def _evict(self, keep: str) -> None:
        """Drop least recently used entries until within the byte bound (caller holds the lock)."""
        for key in list(self._entries):
            if self._bytes <= self._max_bytes:
                break
            if key == keep:
                continue
            self._bytes -= self._entries.pop(key).size
            self.stats.evictions += 1

    def _read_disk(self, sha256: str) -> bytes | None:
        if self._dir is None:
            return None
        try:
            body = (self._dir / sha256).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(body).hexdigest() != sha256:
            logger.warning("discarding corrupt disk copy %s", sha256[:12])
            return None
        return body

    def _write_disk(self, sha256: str, body: bytes) -> None:
        if self._dir is None:
            return
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._dir, delete=False) as tmp:
                tmp.write(body)
            os.replace(tmp.name, self._dir / sha256)
        except OSError as exc:  # a full /tmp must not fail the request
            logger.warning("could not keep a disk copy of %s: %s", sha256[:12], exc)
