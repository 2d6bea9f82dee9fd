"""Where artifacts come from: S3 objects fetched with boto3, with conditional GETs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import ObjectNotFoundError, StoreError

if TYPE_CHECKING:
    from .settings import Settings


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str


class ObjectStore(Protocol):
    def fetch(self, key: str, if_none_match: str | None = None) -> StoredObject | None:
        """The object's bytes and ETag, or None when `if_none_match` still matches."""


class S3Store:
    """Reads objects from one bucket; every failure becomes a `StoreError`."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        config = Config(
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
            retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
        )
        client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
        return cls(settings.model_bucket, client)

    def fetch(self, key: str, if_none_match: str | None = None) -> StoredObject | None:
        params = {"Bucket": self.bucket, "Key": key}
        if if_none_match:
            params["IfNoneMatch"] = if_none_match
        try:
            response = self._client.get_object(**params)
            return StoredObject(body=response["Body"].read(), etag=response["ETag"])
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("304", "NotModified"):
                return None
            raise self._error("read", key, code, exc) from exc
        except BotoCoreError as exc:
            raise self._error("read", key, "", exc) from exc

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as exc:
            raise self._error("write", key, str(exc.response.get("Error", {}).get("Code", "")), exc) from exc
        except BotoCoreError as exc:
            raise self._error("write", key, "", exc) from exc

    def _error(self, action: str, key: str, code: str, exc: Exception) -> StoreError:
        """A StoreError whose message says what failed but not where (no bucket, key or
        endpoint reaches a caller); its detail names the object, for the log."""
        where = f"s3://{self.bucket}/{key}"
        if isinstance(exc, BotoCoreError):
            return StoreError(f"could not reach S3 ({type(exc).__name__})", detail=f"{where}: {exc}")
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFoundError("the file does not exist in the model bucket", detail=f"{where} does not exist")
        if code in ("AccessDenied", "403"):
            return StoreError(f"S3 denied access to {action} the file", detail=f"{action} {where}: access denied")
        return StoreError(f"S3 could not {action} the file ({code or 'error'})", detail=f"{action} {where}: {exc}")
