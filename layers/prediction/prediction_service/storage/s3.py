"""Where artifacts come from: S3 objects fetched with boto3, with conditional GETs, and large
files streamed to disk with boto3's managed transfer (parallel ranged GETs), hashed as they stream."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError
from s3transfer.exceptions import RetriesExceededError
from s3transfer.subscribers import BaseSubscriber

from prediction_service.errors import IntegrityError, ObjectNotFoundError, StoreError
from prediction_service.storage.aws import client as aws_client

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

    from prediction_service.settings import Settings

MB = 1024 * 1024

# Files from STREAM_THRESHOLD up stream to disk in ranged GETs of PART_SIZE, PARALLEL_PARTS at a
# time (smaller ones take one GET, `fetch`). Why these values (bench/model_loading.py measures them):
# - S3 serves one connection at about 90 MB/s, after about 20 ms to the first byte: throughput
#   comes from parallel connections, and a part must be long enough to amortise its first byte
#   (4 MB: about 45 ms of transfer per 20 ms wait).
# - The sha256 must see the bytes in order, so the file object is not seekable, and s3transfer
#   holds the parts that arrive early in memory until the parts before them are written. Parts
#   download at the same pace, so that buffer reaches about (PARALLEL_PARTS - 1) x PART_SIZE:
#   boto3's defaults (8 MB x 10) or 8 MB x 8 would hold 57 MB of a 90 MB model (measured), most
#   of what streaming is meant to keep out of memory. 4 MB x 5 holds about 16 MB whatever the
#   model's size, for about 75% of 8 MB x 8's throughput on the benchmark's simulated S3.
STREAM_THRESHOLD = 8 * MB
PART_SIZE = 4 * MB
PARALLEL_PARTS = 5


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD request says about an object."""

    size: int
    etag: str


@dataclass(frozen=True)
class Streamed:
    """What `download` wrote: the sha256 of the bytes, computed as they streamed, and their count."""

    sha256: str
    size: int


class ObjectStore(Protocol):
    def fetch(self, key: str, if_none_match: str | None = None) -> StoredObject | None:
        """The object's bytes and ETag, or None when `if_none_match` still matches."""

    def fetch_small(self, key: str, limit: int) -> StoredObject | ObjectInfo:
        """The object's bytes and ETag if it is smaller than `limit` bytes, in one GET; else only its
        size and ETag, from that GET's headers, its body left unread."""

    def head(self, key: str) -> ObjectInfo:
        """The object's size and ETag, without its bytes."""

    def download(self, key: str, out: BinaryIO, info: ObjectInfo) -> Streamed:
        """Write the object (as `head` described it) to `out` in order, hashing it on the way."""


class HashingWriter:
    """A write-only file object that hashes what it passes on to `out`.

    It has no `seek` or `tell` and says it is not seekable, so s3transfer's
    DownloadNonSeekableOutputManager writes the parts to it strictly in order (buffering
    parts that arrive early): the digest is the object's, with no second read of the file."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sha.update(data)  # hashlib releases the GIL for large buffers
        self._out.write(data)
        self.size += len(data)
        return len(data)

    def seekable(self) -> bool:
        return False

    def result(self) -> Streamed:
        return Streamed(self._sha.hexdigest(), self.size)


class _KnownObject(BaseSubscriber):
    """Hands s3transfer the size and ETag from our HEAD, so it does not send one of its own;
    it then sends every ranged GET with If-Match on that ETag (a file replaced mid-download fails)."""

    def __init__(self, info: ObjectInfo) -> None:
        self._info = info

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._info.size)
        future.meta.provide_object_etag(self._info.etag)


def transfer_config(attempts: int = 2, part_size: int = PART_SIZE, parallel: int = PARALLEL_PARTS) -> TransferConfig:
    """The managed transfer's settings: `parallel` ranged GETs of `part_size` for an object of
    two parts or more; `attempts` per part whose stream breaks (S3_MAX_ATTEMPTS). boto3's
    transfer module is imported here, for the first large file: small models never need it."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=2 * part_size,
        multipart_chunksize=part_size,
        max_concurrency=parallel,
        num_download_attempts=max(1, attempts),
        preferred_transfer_client="classic",  # the CRT client writes out of order: it could not hash in order
    )
    config.max_in_memory_download_chunks = parallel  # the in-order buffer: see PARALLEL_PARTS
    return config


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client with the settings' timeouts and retries."""
    config = Config(
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
        # Room for the transfer's parallel GETs beside the requests of the batch's threads.
        max_pool_connections=PARALLEL_PARTS + settings.batch_workers + 2,
    )
    return aws_client("s3", endpoint_url=settings.s3_endpoint_url, config=config)


class S3Store:
    """Reads objects from one bucket; every failure becomes a `StoreError`."""

    def __init__(self, bucket: str, client: Any, transfer: TransferConfig | None = None, attempts: int = 2) -> None:
        self.bucket = bucket
        self._client = client
        self._transfer = transfer
        self._attempts = attempts
        self._manager: Any = None
        self._manager_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        return cls(settings.model_bucket, s3_client(settings), attempts=settings.s3_max_attempts)

    def renew(self, client: Any) -> None:
        """Use `client` from now on (new connections, freshly resolved credentials): after a
        SnapStart restore, the snapshot's client must not be reused."""
        with self._manager_lock:
            manager, self._manager = self._manager, None
            self._client = client
        if manager is not None:
            manager.shutdown()

    def fetch(self, key: str, if_none_match: str | None = None) -> StoredObject | None:
        params = {"Bucket": self.bucket, "Key": key}
        if if_none_match:
            params["IfNoneMatch"] = if_none_match
        with self._failures("read", key):
            try:
                response = self._client.get_object(**params)
            except ClientError as exc:
                if _code(exc) in ("304", "NotModified"):
                    return None
                raise
            return StoredObject(body=response["Body"].read(), etag=response["ETag"])

    def fetch_small(self, key: str, limit: int) -> StoredObject | ObjectInfo:
        """One GET instead of a HEAD and a GET for the small files most models and tables are; a
        large one's GET is closed once its headers have told its size (the caller streams it)."""
        with self._failures("read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            size, etag = int(response["ContentLength"]), response["ETag"]
            if size >= limit:
                response["Body"].close()
                return ObjectInfo(size=size, etag=etag)
            return StoredObject(body=response["Body"].read(), etag=etag)

    def head(self, key: str) -> ObjectInfo:
        with self._failures("read", key):
            response = self._client.head_object(Bucket=self.bucket, Key=key)
            return ObjectInfo(size=int(response["ContentLength"]), etag=response["ETag"])

    def download(self, key: str, out: BinaryIO, info: ObjectInfo) -> Streamed:
        """Stream the object into `out` with the managed transfer; errors writing `out` (OSError)
        are the caller's and pass through."""
        writer = HashingWriter(out)
        with self._failures("read", key):
            try:
                future = self._transfer_manager().download(self.bucket, key, writer, subscribers=[_KnownObject(info)])
                future.result()
            except ClientError as exc:
                if _code(exc) in ("412", "PreconditionFailed"):
                    raise StoreError("the file changed in S3 while it downloaded",
                                     detail=f"s3://{self.bucket}/{key}: ETag {info.etag} no longer matches") from exc
                raise
            except RetriesExceededError as exc:
                raise self._error("read", key, "", exc.last_exception or exc) from exc
        return writer.result()

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        with self._failures("write", key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    @contextlib.contextmanager
    def _failures(self, action: str, key: str) -> Iterator[None]:
        """botocore's errors raised inside, as the StoreError `_error` makes of each (others pass through)."""
        try:
            yield
        except ClientError as exc:
            raise self._error(action, key, _code(exc), exc) from exc
        except BotoCoreError as exc:
            raise self._error(action, key, "", exc) from exc

    def _transfer_manager(self) -> Any:
        """One transfer manager per store: its threads and its in-order buffer bound every
        download of this process together, however many models load at once."""
        with self._manager_lock:
            if self._manager is None:
                from boto3.s3.transfer import create_transfer_manager

                self._transfer = self._transfer or transfer_config(self._attempts)
                self._manager = create_transfer_manager(self._client, self._transfer)
            return self._manager

    def _error(self, action: str, key: str, code: str, exc: BaseException) -> StoreError | IntegrityError:
        """A StoreError whose message says what failed but not where (no bucket, key or
        endpoint reaches a caller); its detail names the object, for the log."""
        where = f"s3://{self.bucket}/{key}"
        if isinstance(exc, FlexibleChecksumError):  # botocore checked the bytes against S3's own checksum
            return IntegrityError("the downloaded file does not match S3's checksum of it", detail=f"{where}: {exc}")
        if isinstance(exc, (BotoCoreError, OSError)):
            return StoreError(f"could not reach S3 ({type(exc).__name__})", detail=f"{where}: {exc}")
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFoundError("the file does not exist in the model bucket", detail=f"{where} does not exist")
        if code in ("AccessDenied", "403"):
            return StoreError(f"S3 denied access to {action} the file", detail=f"{action} {where}: access denied")
        return StoreError(f"S3 could not {action} the file ({code or 'error'})", detail=f"{action} {where}: {exc}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
