"""Parsed artifacts in memory: an LRU bounded by bytes, each entry counted at the size of its
file (an ONNX session holds about its file's size once built: 100 MB for a 90 MB file, measured).

Room for a new entry is made before it is built (`make_room`), and an entry added beyond the
bound evicts the least recently used others (`put`). Its lock guards only its own books: it
calls nothing else while holding it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class Entry:
    """A parsed artifact and what the cache knows of the bytes it came from."""

    value: Any
    etag: str  # "" for a file pinned by its sha256 (never revalidated)
    sha256: str
    size: int  # the file's size: what the entry counts against the bound
    checked_at: float  # when S3 last confirmed it (the cache's clock)


class MemoryLRU:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._evictions = 0

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def evictions(self) -> int:
        """Entries dropped to make room so far (the CacheEvictions metric)."""
        return self._evictions

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: str) -> Entry | None:
        """The entry at `key`, leaving its place in the LRU as it is (see `touch`)."""
        with self._lock:
            return self._entries.get(key)

    def touch(self, key: str) -> None:
        """Mark `key` most recently used, if it is here."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)

    def put(self, key: str, entry: Entry) -> None:
        """Add or replace the entry at `key`, then evict the least recently used others beyond the bound."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = entry
            self._bytes += entry.size
            self._evict(room=0, keep=key)

    def pop(self, key: str) -> Entry | None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry.size
            return entry

    def make_room(self, size: int) -> None:
        """Evict least recently used entries before a new one of `size` bytes is built."""
        with self._lock:
            self._evict(room=size)

    def books_balance(self) -> bool:
        """Whether the bytes counted are the sum of the entries' sizes."""
        with self._lock:
            return self._bytes == sum(entry.size for entry in self._entries.values())

    def _evict(self, room: int, keep: str | None = None) -> None:
        """Drop least recently used entries but `keep` until `room` more bytes fit (caller holds the lock)."""
        for key in list(self._entries):
            if self._bytes + room <= self._max_bytes:
                break
            if key == keep:
                continue
            self._bytes -= self._entries.pop(key).size
            self._evictions += 1
