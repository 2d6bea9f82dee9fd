"""Checksummed copies of files in /tmp, so that an artifact evicted from memory comes back
without a download while the execution environment lives.

- Every file is named by its sha256, in an LRU bounded by `max_bytes` (MODEL_DISK_MAX_BYTES).
  Only files this process wrote or verified count; `shutil.disk_usage` guards against space
  that others use.
- A download reserves its size before it starts (`write_verified`), evicting least recently
  used files; a file in use (being downloaded, verified or opened: `in_use`) is never evicted.
  A file that cannot fit is refused (`CapacityError`) before anything is written.
- A download goes to a temporary file, hashed as it is written, which takes its sha256 as its
  name only once the digest matches: a failed, corrupt or refused download leaves nothing behind.
- A copy this process did not write (left in /tmp by an earlier process of the environment) is
  hashed the first time it is reused, then trusted: later reuses check its size only.

Its lock guards only its own books (files, reservations, files in use): it calls nothing else
while holding it but the file system."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from prediction_service.errors import CapacityError, IntegrityError, PredictionError
from prediction_service.settings import MB
from prediction_service.storage.s3 import Streamed

logger = logging.getLogger(__name__)


class FileLRU:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self._dir = directory
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()  # sha256 -> size, least recently used first
        self._bytes = 0
        self._reserved = 0  # bytes promised to downloads in flight
        self._users: Counter[str] = Counter()  # sha256 -> loads downloading, verifying or opening it now
        self._evictions = 0

    @property
    def size_bytes(self) -> int:
        """The bytes of the files this process wrote or verified."""
        return self._bytes

    @property
    def reserved_bytes(self) -> int:
        """The bytes promised to downloads in flight."""
        return self._reserved

    @property
    def evictions(self) -> int:
        """Files deleted to make room so far."""
        return self._evictions

    def path(self, sha256: str) -> Path:
        return self._dir / sha256

    @contextmanager
    def in_use(self, sha256: str) -> Iterator[None]:
        """Keep the file named `sha256` from eviction while the block downloads, verifies or opens it."""
        with self._lock:
            self._users[sha256] += 1
        try:
            yield
        finally:
            with self._lock:
                self._users[sha256] -= 1
                if not self._users[sha256]:
                    del self._users[sha256]

    def touch(self, sha256: str) -> None:
        """Mark the file most recently used, if it is here (a model in use keeps its file recent)."""
        with self._lock:
            if sha256 in self._files:
                self._files.move_to_end(sha256)

    def verified_size(self, sha256: str) -> int | None:
        """The size of a usable copy of the file, or None (the caller has it `in_use`)."""
        path = self.path(sha256)
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
                self._delete(sha256)
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
            self._add(sha256, actual)
        return actual

    def write_verified(self, key: str, sha256: str, size: int, write: Callable[[BinaryIO], Streamed]) -> Streamed:
        """The file named `sha256`, of `size` bytes, as `write` puts it into a temporary file and
        hashes it on the way; kept only once that digest is `sha256` (the caller has it `in_use`)."""
        self._reserve(key, size)
        temporary: Path | None = None
        try:
            fd, name = tempfile.mkstemp(dir=self._dir, prefix=".download-")
            temporary = Path(name)
            with os.fdopen(fd, "wb") as out:
                got = write(out)
            if got.sha256 != sha256:
                raise IntegrityError(
                    "the downloaded file's sha256 does not match the manifest",
                    detail=f"{key} has sha256 {got.sha256[:12]}..., the manifest expects {sha256[:12]}...",
                )
            os.replace(temporary, self.path(sha256))
            temporary = None
            with self._lock:
                self._add(sha256, got.size)
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
                self._reserved -= size

    def delete(self, sha256: str) -> None:
        """Delete the file and forget it."""
        with self._lock:
            self._delete(sha256)

    def delete_unless_in_use(self, sha256: str) -> None:
        """Delete the file and forget it, unless a load is reading it right now."""
        with self._lock:
            if not self._users[sha256]:
                self._delete(sha256)

    def books_balance(self) -> bool:
        """Whether the bytes counted are the sum of the files' sizes."""
        with self._lock:
            return self._bytes == sum(self._files.values())

    # -- room in /tmp ----------------------------------------------------------------

    def _reserve(self, key: str, size: int) -> None:
        """Room for a download of `size` bytes, evicting least recently used files that nothing
        is using; refused when the file cannot fit (the caller releases it)."""
        if whole_mb(size) > whole_mb(self._max_bytes):
            raise CapacityError(
                f"it needs {whole_mb(size)} MB of /tmp, the function has {whole_mb(self._max_bytes)} MB for models",
                detail=f"{key} has {size} bytes; MODEL_DISK_MAX_BYTES is {self._max_bytes}",
            )
        with self._lock:
            while self._bytes + self._reserved + size > self._max_bytes and self._bytes + self._reserved:
                if not self._evict_one():
                    held = whole_mb(self._bytes + self._reserved)
                    raise CapacityError(
                        f"it needs {whole_mb(size)} MB of /tmp and {held} MB are held by models loading now",
                        detail=f"{key} has {size} bytes; files in use: {sorted(self._users)}",
                    )
            self._reserved += size
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            while (free := shutil.disk_usage(self._dir).free) < size:
                with self._lock:
                    evicted = self._evict_one()
                if not evicted:
                    raise CapacityError(
                        f"it needs {whole_mb(size)} MB of /tmp, {free // MB} MB are free",
                        detail=f"{key} has {size} bytes; {self._dir} has {free} bytes free",
                    )
        except BaseException:
            with self._lock:
                self._reserved -= size
            raise

    def _evict_one(self) -> bool:
        """Delete the least recently used file nothing is using (caller holds the lock)."""
        for digest in self._files:
            if not self._users[digest]:
                logger.info("removing %s (%d bytes) from %s to make room", digest[:12], self._files[digest], self._dir)
                self._delete(digest)
                self._evictions += 1
                return True
        return False

    def _add(self, sha256: str, size: int) -> None:
        """Count a verified file under its name (caller holds the lock)."""
        self._bytes += size - self._files.pop(sha256, 0)
        self._files[sha256] = size

    def _delete(self, sha256: str) -> None:
        """Delete a file and forget it (caller holds the lock)."""
        self._bytes -= self._files.pop(sha256, 0)
        self.path(sha256).unlink(missing_ok=True)


def whole_mb(size: int) -> int:
    """Whole MB, rounded up: the figure a capacity message gives."""
    return -(-size // MB)
